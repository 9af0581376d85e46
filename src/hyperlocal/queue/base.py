"""What the API needs from a job queue."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from hyperlocal.core.jobs import JobView
    from hyperlocal.store.tables import Job

__all__ = ["InlineSlot", "JobQueue"]


class InlineSlot(Protocol):
    """Room to run one job in the caller's task now, reserved in this process's worker pool.

    The caller creates the job already claimed (``claim_values``), then either ``run``s it or
    ``release``s the slot. Running a synchronous request here saves the hand-off to a worker
    task, a claim transaction and reading the finished job back.
    """

    def claim_values(self, now: float) -> dict[str, object]:
        """The job columns that mark it running under this slot's lease."""
        ...

    async def run(self, job: Job, timeout: float) -> JobView | None:
        """Run the claimed job; the terminal job, or None if it is still running after
        ``timeout`` seconds (it goes on) or was canceled meanwhile. Releases the slot."""
        ...

    def release(self) -> None:
        """Give the slot back unused."""
        ...


class JobQueue(Protocol):
    async def start(self) -> None:
        """Begin taking work, after resuming whatever a previous process left behind."""
        ...

    async def enqueue(self, job_id: str, model: str | None = None) -> None:
        """Hand a committed, queued job to a worker. Enqueuing a job twice is harmless.
        ``model``, when the caller knows it, saves a queue that routes by model a read."""
        ...

    async def wait(self, job_id: str, timeout: float) -> JobView | None:
        """Return once the job is terminal, or after ``timeout`` seconds: with the terminal
        job when this process ran it (saving a read), else None."""
        ...

    async def reserve_inline(self, wait: float) -> InlineSlot | None:
        """A slot to run one job in the caller's task, if one of this process's worker slots
        frees within ``wait`` seconds (first come, first served with queued jobs); None
        otherwise, and always where workers are other processes."""
        ...

    async def aclose(self) -> None:
        """Stop taking work and let running jobs finish for a grace period."""
        ...
