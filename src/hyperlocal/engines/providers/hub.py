"""Verified provider webhooks wake the job that waits for them.

The API's ``POST /v1/providers/{name}/webhook`` verifies the signature (the adapter's
``verify_webhook``) and then calls :meth:`WebhookHub.notify`; the adapter's poll loop, asleep
in ``Watch.wait``, wakes. A notice whose signed body carries the request's final answer (fal's
``payload``) hands that answer to the waiting adapter, which may end the job on it: two round
trips fewer than a status poll and a result fetch. Any other notice is only a wake-up, and the
adapter polls at once. A replayed notice can only repeat what the provider already said of that
request, and a lost one costs only the wait until the next poll.

The hub is per process. In the embedded shape the API and the runner share it; in a fleet, a
webhook reaches an API process while the job runs in a worker, so there the poll catches it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

__all__ = ["WebhookHub"]

Answer = Mapping[str, Any]


class _Notice:
    """One request's notices: an event that stays set until a wait takes it, and the last
    answer one carried."""

    __slots__ = ("answer", "event")

    def __init__(self) -> None:
        self.event = asyncio.Event()
        self.answer: Answer | None = None


class WebhookHub:
    def __init__(self, keep: int = 10_000) -> None:
        # A notice may arrive before its job starts waiting (a provider that finishes at once
        # notifies while the submit's answer is still on its way): it is kept, set, for the
        # wait to find. The oldest are dropped past ``keep`` (jobs of other processes).
        self._notices: dict[tuple[str, str], _Notice] = {}
        self._keep = keep
        self.received = 0  # verified notices, for tests and the operator

    def notify(self, provider: str, request_id: str, answer: Answer | None = None) -> None:
        """Wake the job waiting on ``provider``'s ``request_id``, now or when it next waits,
        with ``answer`` if the notice carried the request's final answer."""
        self.received += 1
        notice = self._notice(provider, request_id)
        if answer is not None:
            notice.answer = answer
        notice.event.set()

    async def wait(self, provider: str, request_id: str, seconds: float) -> Answer | None:
        """Sleep ``seconds`` or until notified; the answer a notice carried, if any."""
        notice = self._notice(provider, request_id)
        try:
            await asyncio.wait_for(notice.event.wait(), seconds)
        except TimeoutError:
            return None
        notice.event.clear()
        return notice.answer

    def forget(self, provider: str, request_id: str) -> None:
        self._notices.pop((provider, request_id), None)

    def _notice(self, provider: str, request_id: str) -> _Notice:
        key = (provider, request_id)
        notice = self._notices.get(key)
        if notice is None:
            while len(self._notices) >= self._keep:
                del self._notices[next(iter(self._notices))]
            notice = self._notices[key] = _Notice()
        return notice
