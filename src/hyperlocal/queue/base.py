"""What the API needs from a job queue."""

from __future__ import annotations

from typing import Protocol

__all__ = ["JobQueue"]


class JobQueue(Protocol):
    async def start(self) -> None:
        """Begin taking work, after resuming whatever a previous process left behind."""
        ...

    async def enqueue(self, job_id: str) -> None:
        """Hand a committed, queued job to a worker. Enqueuing a job twice is harmless."""
        ...

    async def wait(self, job_id: str, timeout: float) -> None:
        """Return once the job is terminal, or after ``timeout`` seconds."""
        ...

    async def aclose(self) -> None:
        """Stop taking work and let running jobs finish for a grace period."""
        ...
