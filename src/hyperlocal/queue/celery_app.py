"""The Celery application shared by API servers (which only send) and workers (which consume).

One task, ``hyperlocal.run_job(job_id, deferrals)``, routed to one queue per model
(``<namespace>.<model id>``), so that a GPU machine consumes only the models it serves. The
message carries nothing but the job id: the database row is the job, and the runner's
conditional claim makes any duplicate or redelivered message a no-op.

Priorities: a message carries its job's key priority as kombu's Redis message priority.
kombu keeps one Redis list per step of ``priority_steps`` for each queue, and a worker's BRPOP
names them in step order, lowest first, for all its queues; so the lowest number is served
first. ``message_priority`` turns ours (2 highest) into theirs (0 first): a worker takes a
waiting job of a higher priority before any of a lower one, and within one priority it still
goes round its models' queues in turn.
"""

from __future__ import annotations

from typing import Any

from celery import Celery  # type: ignore[import-untyped]

__all__ = [
    "PRIORITY_STEPS",
    "TASK_NAME",
    "VISIBILITY_TIMEOUT_S",
    "make_celery",
    "message_priority",
    "queue_name",
]

TASK_NAME = "hyperlocal.run_job"
# How long Redis keeps a delivered but unacknowledged message before handing it out again (a
# worker killed mid-job). Longer than any job should run; a redelivery while the first worker
# still runs the job is harmless (the claim fails), and the lease sweep recovers a lost job much
# sooner than this anyway.
VISIBILITY_TIMEOUT_S = 3600
# One Redis list per key priority (0 normal, 1 high, 2 highest), in the order workers ask them.
PRIORITY_STEPS = [0, 1, 2]


def queue_name(namespace: str, model_id: str) -> str:
    return f"{namespace}.{model_id}"


def message_priority(priority: int) -> int:
    """The kombu message priority of a job of key priority ``priority`` (see the module's
    docstring): 0, served first, for the highest."""
    top = PRIORITY_STEPS[-1]
    return top - min(max(priority, 0), top)


def make_celery(redis_url: str, namespace: str) -> Celery:
    """A Celery app on Redis whose every key starts with ``<namespace>:``."""
    app = Celery(namespace, broker=redis_url, set_as_current=False)
    app.conf.update(_config(namespace))
    return app


def _config(namespace: str) -> dict[str, Any]:
    return {
        "broker_transport_options": {
            "global_keyprefix": f"{namespace}:",
            "visibility_timeout": VISIBILITY_TIMEOUT_S,
            "priority_steps": PRIORITY_STEPS,
        },
        "broker_connection_retry_on_startup": True,
        "task_serializer": "json",
        "accept_content": ["json"],
        "task_ignore_result": True,  # the jobs table is the result
        "task_create_missing_queues": True,
        "task_default_queue": f"{namespace}.default",
        # Acknowledge after the job ran, so a message held by a worker that dies is delivered
        # again; the database claim makes that redelivery safe.
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_cancel_long_running_tasks_on_connection_loss": False,
        "worker_prefetch_multiplier": 1,  # a long GPU job must not hold others back
        "worker_hijack_root_logger": False,
        "worker_redirect_stdouts": False,
        # No broadcast traffic: remote control, events, gossip and mingle are off.
        "worker_enable_remote_control": False,
        "worker_send_task_events": False,
        "enable_utc": True,
    }
