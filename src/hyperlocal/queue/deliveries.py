"""The webhook dispatcher: sends due outbox rows, records every attempt, schedules retries.

Sends run concurrently with a per-request timeout, apart from job execution. Each receiver
(the endpoint's scheme, host and port: one host is one receiver, however many paths it
answers on) may hold at most ``per_receiver`` of the ``concurrency`` slots, and rows for a
receiver at its cap are not claimed, so a slow or dead receiver delays only its own
deliveries. A claimed row is held for ``timeout + 5`` s; if this process
dies mid-send, any dispatcher sends it again later.

A job that completes in this process has its row written already held for this dispatcher
(``holds_for``) and handed to it after the commit (``hand``): it is sent at once, without a
claim's transaction. A handed row waits in memory while the caps are full; one whose hold
would run out before a send could end is left to the claim, which finds it due.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter, deque
from collections.abc import Sequence
from urllib.parse import urlsplit

import httpx

from hyperlocal import tracing
from hyperlocal.core import keys, webhooks
from hyperlocal.core.metrics import Metrics
from hyperlocal.inputs import AddressGuardError, AddressPolicy, GuardedTransport
from hyperlocal.store import webhooks as store
from hyperlocal.store.db import Database
from hyperlocal.store.tables import WebhookAttempt, WebhookDelivery

__all__ = ["WebhookDispatcher", "receiver_of"]

log = logging.getLogger(__name__)


_DEFAULT_PORTS = {"http": 80, "https": 443}
SECRETS_KEPT = 4096  # webhook signing secrets held in memory, by key id

# The metrics' name for where an attempt left its delivery: a failed attempt with tries left
# is "retrying"; "failed" means the schedule ran out.
_OUTCOMES = {
    webhooks.DeliveryStatus.DELIVERED: "delivered",
    webhooks.DeliveryStatus.PENDING: "retrying",
    webhooks.DeliveryStatus.FAILED: "failed",
    webhooks.DeliveryStatus.GONE: "gone",
}


def receiver_of(url: str) -> str:
    """The receiver, the unit a slow receiver can occupy: ``scheme://host:port``, with the
    default port filled in and the host in lower case, so every spelling of it is one."""
    parts = urlsplit(url)
    try:
        port = parts.port or _DEFAULT_PORTS.get(parts.scheme, 0)
    except ValueError:  # not a port: the URL was refused at submit; keep it apart
        return f"{parts.scheme}://{parts.netloc}"
    return f"{parts.scheme}://{(parts.hostname or '').lower()}:{port}"


def _prefix_of(url: str) -> str:
    """How the stored URLs to this spelling of a receiver begin, for the claim query to skip
    them: a receiver at its cap is skipped under every spelling it has in flight."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}/"


class WebhookDispatcher:
    def __init__(
        self,
        db: Database,
        *,
        policy: AddressPolicy,
        schedule: Sequence[float] = webhooks.DEFAULT_SCHEDULE,
        jitter: float = 0.1,
        timeout: float = 10.0,
        concurrency: int = 64,
        per_receiver: int = 8,
        poll_interval: float = 0.5,
        metrics: Metrics | None = None,
    ) -> None:
        self._db, self._schedule, self._jitter = db, tuple(schedule), jitter
        self._metrics = metrics or Metrics()
        self._timeout, self._poll = timeout, poll_interval
        self._concurrency, self._per_receiver = concurrency, min(per_receiver, concurrency)
        self._in_flight: Counter[str] = Counter()  # by receiver
        self._spellings: Counter[tuple[str, str]] = Counter()  # (receiver, URL prefix)
        self._client = httpx.AsyncClient(
            transport=GuardedTransport(policy, max_connections=concurrency),
            timeout=timeout,
            trust_env=False,
        )
        self._secrets: dict[str, str] = {}  # by key id: see ``_secret``
        self._wake = asyncio.Event()
        self._look = True  # claim due rows at the next turn of the loop
        self._starved = False  # the last claim left due rows behind (no slot, or a cap)
        self._handed: deque[WebhookDelivery] = deque()
        self._sending: set[asyncio.Task[None]] = set()
        self._loop_task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._loop_task = asyncio.create_task(self._run())

    def poke(self) -> None:
        """A new outbox row was committed in this process: look now, not at the next poll."""
        self._look = True
        self._wake.set()

    def holds_for(self) -> float | None:
        """How far ahead a row to be handed here is held: as long as a claim holds one."""
        running = self._loop_task is not None and not self._loop_task.done()
        return self._hold_s if running else None

    def hand(self, delivery: WebhookDelivery) -> None:
        """Send a row written held for this dispatcher, now that it has committed."""
        self._handed.append(delivery)
        self._wake.set()

    @property
    def _hold_s(self) -> float:
        return self._timeout + 5

    async def _run(self) -> None:
        while True:
            self._send_handed()
            due = await self._claim_if_wanted()
            for delivery in due:
                self._spawn(delivery)
            if not due:
                await self._sleep()

    async def _sleep(self) -> None:
        try:
            await asyncio.wait_for(self._wake.wait(), self._poll)
        except TimeoutError:
            self._look = True  # the poll: retries come due, other processes' rows
        self._wake.clear()

    def _spawn(self, delivery: WebhookDelivery) -> None:
        self._take(delivery.url)
        task = asyncio.create_task(self._send(delivery))
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    def _send_handed(self) -> None:
        """Send the handed rows that the caps allow now; keep the others, in order."""
        kept: deque[WebhookDelivery] = deque()
        while self._handed:
            delivery = self._handed.popleft()
            if (delivery.next_attempt_at or 0.0) - time.time() < self._timeout:
                self._look = True  # its hold ends before a send could: the claim takes it
            elif self._has_room(receiver_of(delivery.url)):
                self._spawn(delivery)
            else:
                kept.append(delivery)
        self._handed = kept

    def _has_room(self, receiver: str) -> bool:
        free = len(self._sending) < self._concurrency
        return free and self._in_flight[receiver] < self._per_receiver

    async def _claim_if_wanted(self) -> list[WebhookDelivery]:
        if not self._look:
            return []
        self._look = False
        try:
            return await self._claim()
        except Exception:
            log.exception("webhook claim failed")
            return []

    async def _claim(self) -> list[WebhookDelivery]:
        free = self._concurrency - len(self._sending)
        if free <= 0:
            self._starved = True
            return []
        full = {r for r, n in self._in_flight.items() if n >= self._per_receiver}
        skip = [prefix for receiver, prefix in self._spellings if receiver in full]
        async with self._db.transaction() as session:
            limit = free * 4
            rows = await store.claim_due(session, time.time(), limit, self._hold_s, skip)
            chosen = self._within_caps(rows, free)
            for row in rows:
                if row not in chosen:
                    row.next_attempt_at = time.time()  # not taken: due again at once
        self._starved = bool(skip) or len(rows) >= limit or len(chosen) < len(rows)
        return chosen

    def _within_caps(self, rows: Sequence[WebhookDelivery], free: int) -> list[WebhookDelivery]:
        taken: Counter[str] = Counter()
        chosen: list[WebhookDelivery] = []
        for row in rows:
            receiver = receiver_of(row.url)
            held = self._in_flight[receiver] + taken[receiver]
            if len(chosen) < free and held < self._per_receiver:
                taken[receiver] += 1
                chosen.append(row)
        return chosen

    async def _send(self, delivery: WebhookDelivery) -> None:
        started = time.monotonic()
        try:
            code, error = await tracing.delivery_span(delivery, self._post(delivery))
        finally:
            self._release(delivery.url)
        latency_ms = (time.monotonic() - started) * 1000
        try:
            status = await self._record(delivery, code, error, latency_ms)
        except Exception:
            log.exception("recording a webhook attempt failed", extra={"job_id": delivery.job_id})
            return
        self._metrics.webhook_attempt(_OUTCOMES[status], latency_ms / 1000)

    def _take(self, url: str) -> None:
        receiver = receiver_of(url)
        self._in_flight[receiver] += 1
        self._spellings[receiver, _prefix_of(url)] += 1

    def _release(self, url: str) -> None:
        receiver = receiver_of(url)
        self._in_flight -= Counter({receiver: 1})  # drops what reaches 0
        self._spellings -= Counter({(receiver, _prefix_of(url)): 1})
        if self._starved or self._handed:  # a slot is free for what waits: look now
            self._look = self._look or self._starved
            self._wake.set()

    async def _post(self, delivery: WebhookDelivery) -> tuple[int | None, str | None]:
        try:
            headers = await self._headers(delivery)
            response = await self._client.post(
                delivery.url, content=delivery.payload, headers=headers
            )
        except AddressGuardError:
            return None, "refused: the URL resolves to a private or loopback address"
        except httpx.TimeoutException:
            return None, f"timed out after {self._timeout:g} s"
        except httpx.HTTPError as exc:
            return None, f"connection failed: {type(exc).__name__}"
        ok = 200 <= response.status_code < 300
        return response.status_code, None if ok else f"HTTP {response.status_code}"

    async def _headers(self, delivery: WebhookDelivery) -> dict[str, str]:
        secret = await self._secret(delivery.key_id)
        timestamp = int(time.time())
        signature = webhooks.sign(secret, delivery.message_id, timestamp, delivery.payload)
        return {
            "content-type": "application/json",
            "webhook-id": delivery.message_id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": signature,
            "user-agent": "hyperlocal-webhooks/1",
        }

    async def _secret(self, key_id: str) -> str:
        """The key's webhook signing secret. A key's secret is written once, with the key, and
        never changed (``store.keys``), so the dispatcher keeps the last ``SECRETS_KEPT`` it
        read: a delivery costs no read of its key."""
        secret = self._secrets.get(key_id)
        if secret is None:
            secret = await keys.webhook_secret(self._db, key_id)
            while len(self._secrets) >= SECRETS_KEPT:
                del self._secrets[next(iter(self._secrets))]
            self._secrets[key_id] = secret
        return secret

    async def _record(
        self, delivery: WebhookDelivery, code: int | None, error: str | None, latency_ms: float
    ) -> webhooks.DeliveryStatus:
        now = time.time()
        attempts = delivery.attempts + 1
        status, delay = webhooks.next_step(attempts, code, self._schedule, self._jitter)
        async with self._db.transaction() as session:
            await store.add_attempt(
                session,
                WebhookAttempt(
                    delivery_id=delivery.id,
                    attempted_at=now,
                    status_code=code,
                    latency_ms=latency_ms,
                    error=error,
                ),
            )
            await store.update_delivery(
                session,
                delivery.id,
                attempts=attempts,
                status=status.value,
                next_attempt_at=None if delay is None else now + delay,
                last_status_code=code,
                last_error=error,
                delivered_at=now if status is webhooks.DeliveryStatus.DELIVERED else None,
            )
        return status

    async def aclose(self, grace: float = 5.0) -> None:
        if self._loop_task is not None:
            self._loop_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop_task
        if self._sending:
            await asyncio.wait(self._sending, timeout=grace)
        for task in self._sending:
            task.cancel()
        await self._client.aclose()
