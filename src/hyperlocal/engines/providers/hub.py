"""Verified provider webhooks wake the job that waits for them.

The API's ``POST /v1/providers/{name}/webhook`` verifies the signature (the adapter's
``verify_webhook``) and then calls :meth:`WebhookHub.notify`; the adapter's poll loop, asleep
in ``Watch.wait``, wakes and polls at once. A webhook is only ever a wake-up: the job's state is
read from the provider's API, so a forged or replayed notice can do no more than cause a poll,
and a lost one costs only the wait until the next poll.

The hub is per process. In the embedded shape the API and the runner share it; in a fleet, a
webhook reaches an API process while the job runs in a worker, so there the poll catches it.
"""

from __future__ import annotations

import asyncio

__all__ = ["WebhookHub"]


class WebhookHub:
    def __init__(self, keep: int = 10_000) -> None:
        # A notice may arrive before its job starts waiting (a provider that finishes at once
        # notifies while the submit's answer is still on its way): it is kept, set, for the
        # wait to find. The oldest are dropped past ``keep`` (jobs of other processes).
        self._events: dict[tuple[str, str], asyncio.Event] = {}
        self._keep = keep
        self.received = 0  # verified notices, for tests and the operator

    def notify(self, provider: str, request_id: str) -> None:
        """Wake the job waiting on ``provider``'s ``request_id``, now or when it next waits."""
        self.received += 1
        self._event(provider, request_id).set()

    async def wait(self, provider: str, request_id: str, seconds: float) -> bool:
        """Sleep ``seconds`` or until notified; whether a notice woke it."""
        event = self._event(provider, request_id)
        try:
            await asyncio.wait_for(event.wait(), seconds)
        except TimeoutError:
            return False
        event.clear()
        return True

    def forget(self, provider: str, request_id: str) -> None:
        self._events.pop((provider, request_id), None)

    def _event(self, provider: str, request_id: str) -> asyncio.Event:
        key = (provider, request_id)
        event = self._events.get(key)
        if event is None:
            while len(self._events) >= self._keep:
                del self._events[next(iter(self._events))]
            event = self._events[key] = asyncio.Event()
        return event
