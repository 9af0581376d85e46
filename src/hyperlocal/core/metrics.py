"""What ``core`` tells an operator: the facts that metrics count, reported where each is decided.

``Metrics`` is the interface, and records nothing: a process with metrics off (or a test that
builds a lifecycle by hand) gets this one. ``hyperlocal.prometheus.PrometheusMetrics`` records
them. Each method is called once per fact, after the fact is written where it can be (a charge
once its transaction committed); a refund is counted as its ledger line is written, so a
transaction that then fails to commit (the database gone) is counted anyway: the ledger is the
account, these are for watching it.

What the database already knows across every process (jobs queued and running by model, the
webhook backlog) is not counted here but read when scraped: ``snapshot``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from hyperlocal.engines.base import DeviceMemory
from hyperlocal.store import metrics as store
from hyperlocal.store.db import Database

__all__ = ["Metrics", "QueueSnapshot", "snapshot"]


class Metrics:
    """The facts ``core``, ``queue`` and ``engines`` report (see the module's docstring)."""

    def submitted(self, model: str, category: str, credits: int) -> None:
        """A job (or a chat) was created and charged ``credits``."""

    def insufficient_credits(self) -> None:
        """A submit was refused for want of credits (402)."""

    def rate_limited(self) -> None:
        """A request was refused by its key's rolling-hour limit (429)."""

    def started(self, model: str, queued_s: float) -> None:
        """A job's first run began ``queued_s`` after it was created."""

    def finished(self, model: str, status: str, run_s: float | None) -> None:
        """A job ended in ``status``, after ``run_s`` of running (None: it never ran)."""

    def refunded(self, model: str, credits: int) -> None:
        """``credits`` of a job's charge were given back."""

    def chat_tokens(self, model: str, prompt: int | None, completion: int) -> None:
        """A chat ended having used these tokens (``prompt`` None: the engine did not say)."""

    def first_token(self, model: str, seconds: float) -> None:
        """A chat's first token arrived ``seconds`` after it was opened."""

    def webhook_attempt(self, outcome: str, seconds: float) -> None:
        """One webhook request was made: ``outcome`` is the delivery's state after it."""

    def model_loaded(self, engine: str, seconds: float) -> None:
        """A load, in ``seconds``: an engine started, or an engine loaded other weights."""

    def resident(self, device: str, change: int) -> None:
        """A model was loaded onto (``change`` 1) or released from (-1) ``device``."""

    def watch_devices(self, source: Callable[[], Sequence[DeviceMemory]]) -> None:
        """Where the device manager's budgets are read from, when metrics are collected."""


@dataclass(frozen=True, slots=True)
class QueueSnapshot:
    """Jobs queued and running by model, and the webhook outbox, as the database has them."""

    queued: dict[str, int]
    running: dict[str, int]
    webhooks_due: int
    webhooks_pending: int


async def snapshot(db: Database, models: Iterable[str] = ()) -> QueueSnapshot:
    """What the database has now; each of ``models`` (the catalogue's) shown, at 0 if idle,
    so that a model's gauges exist before its first job and an alert can tell 0 from absent."""
    async with db.read() as session:
        counts = await store.active_jobs(session)
        due, pending = await store.webhook_backlog(session, time.time())
    idle = dict.fromkeys(models, 0)
    queued, running = dict(idle), dict(idle)
    for model, status, n in counts:
        (queued if status == "queued" else running)[model] = n
    return QueueSnapshot(queued, running, due, pending)
