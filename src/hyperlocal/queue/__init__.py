"""Dispatch and execution of jobs: the runner (one job, start to end), the in-process queue
(embedded mode), and Celery dispatch (scale-out)."""
