"""What ``core`` needs from the processes that run jobs and send webhooks.

``queue`` implements these (the in-process queue, Celery, the webhook dispatcher); ``core``
knows only the protocols, so dependencies point one way: queue -> core.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from hyperlocal.core.jobs import JobView
    from hyperlocal.store.tables import Job, WebhookDelivery

__all__ = ["JobQueue", "OutboxSender", "WorkerSlot"]


class WorkerSlot(Protocol):
    """Room to run one job in the caller's task now, reserved in this process's worker pool.

    The caller creates the job already claimed (``claim_values``), then either ``run``s it or
    ``release``s the slot. Running a synchronous request here saves the hand-off to a worker
    task, a claim transaction and reading the finished job back.
    """

    def claim_values(self, now: float) -> dict[str, object]:
        """The job columns that mark it running under a new lease of this slot's worker."""
        ...

    async def run(self, job: Job, timeout: float) -> JobView | None:
        """Run the claimed job; the terminal job, or None if it is still running after
        ``timeout`` seconds (it goes on) or ended without this run (its lease was lost).
        Releases the slot."""
        ...

    def release(self) -> None:
        """Give the slot back unused."""
        ...


class JobQueue(Protocol):
    async def start(self) -> None:
        """Begin taking work, after resuming whatever a previous process left behind."""
        ...

    async def enqueue(self, job_id: str, model: str | None = None, priority: int = 0) -> None:
        """Hand a committed, queued job to a worker. Enqueuing a job twice is harmless.
        ``model``, when the caller knows it, saves a queue that routes by model a read;
        ``priority`` is the job's (its key's): with ``model``, it saves that read too."""
        ...

    async def wait(self, job_id: str, timeout: float) -> JobView | None:
        """Return once the job is terminal, or after ``timeout`` seconds: with the terminal
        job when this process ran it (saving a read), else None."""
        ...

    async def reserve_slot(self, wait: float) -> WorkerSlot | None:
        """A slot to run one job in the caller's task, if one of this process's worker slots
        frees within ``wait`` seconds (first come, first served with queued jobs); None
        otherwise, and always where workers are other processes."""
        ...

    async def aclose(self) -> None:
        """Stop taking work; give running jobs a grace period, then queue them again."""
        ...


class OutboxSender(Protocol):
    """Sends the webhook outbox's rows after their transactions commit."""

    async def start(self) -> None: ...

    def poke(self) -> None:
        """Rows may be due now: look at once instead of at the next poll."""
        ...

    def holds_for(self) -> float | None:
        """How far ahead a new row's first attempt is set when it is to be handed to this
        sender (``hand``), which then sends it without claiming it: the hold is a claim made
        in the row's own transaction, and should this process die, the row is due once it
        ends. None when this sender is not running here: the row is written due now."""
        ...

    def hand(self, delivery: WebhookDelivery) -> None:
        """Send ``delivery``, written held (``holds_for``), now that its transaction has
        committed."""
        ...

    async def aclose(self) -> None: ...
