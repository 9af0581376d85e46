"""The one small interface that every provider adapter implements.

A *provider* is a maker's or an aggregator's API that serves real models with the operator's
own key: fal, Replicate, OpenAI, Google Gemini, BFL, ... Each is one module in this package,
found through the ``hyperlocal.providers`` entry-point group, exactly like an engine.

The router (``router.py``) maps a job's inputs onto the route's provider fields
(``mapping.py``), then calls :meth:`Provider.run` with a :class:`ProviderCall`. The adapter
submits, follows the provider's job (polling with backoff, woken early by a verified webhook
through :class:`Watch`), and returns a :class:`ProviderResult`. Everything else (failover,
the circuit breaker, concurrency caps, downloading outputs through the address guard, the
attempt record, refunds) is the router's, so an adapter stays a thin translation of one wire
protocol.

Cancellation is an ``asyncio.CancelledError`` raised into :meth:`Provider.run`: the adapter
cancels at the provider (best effort, within a couple of seconds) and re-raises.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, ClassVar, Protocol, runtime_checkable

import httpx

from hyperlocal.engines.base import Category, MediaInput, Segment

__all__ = [
    "CANCEL_TIMEOUT_S",
    "MAX_POLL_S",
    "FailureKind",
    "Payload",
    "PayloadValue",
    "Provider",
    "ProviderCall",
    "ProviderContext",
    "ProviderError",
    "ProviderFactory",
    "ProviderOutput",
    "ProviderResult",
    "Watch",
    "WebhookNotice",
    "next_poll",
]

PayloadValue = str | int | float | bool | None | MediaInput | list[Any] | dict[str, Any]
Payload = Mapping[str, PayloadValue]


class FailureKind(StrEnum):
    """What a provider's failure means for the job."""

    UNAVAILABLE = "unavailable"  # 5xx, timeout, refused connection, 429 past its budget:
    #                              the next real route is tried
    INVALID = "invalid"  # the provider says the input is invalid (a 4xx): the job fails, E1004
    FAILED = "failed"  # the generation itself failed at the provider (its job status "failed")


class ProviderError(Exception):
    """A provider call that did not produce outputs, with the provider's own words."""

    def __init__(
        self,
        kind: FailureKind,
        message: str,
        *,
        status: int | None = None,
        request_id: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.status = status
        self.request_id = request_id
        self.retry_after = retry_after


@dataclass(frozen=True, slots=True)
class ProviderCall:
    """One job for one provider endpoint.

    ``payload`` holds the route's mapped inputs: scalars, lists, and :class:`MediaInput` values
    (the bytes fetched and checked at submit) that the adapter sends the provider's way: a
    ``data:`` URI, its upload API, inline data or a multipart file, never a public URL.
    """

    job_id: str
    model: str  # our catalogue id
    category: Category
    endpoint: str  # the provider's id for the model: "fal-ai/flux/dev", "gpt-image-2", ...
    payload: Payload
    webhook_url: str | None = None  # where the provider may notify us, when we are reachable


@dataclass(frozen=True, slots=True)
class ProviderOutput:
    """One output: a URL that the router downloads through the address guard (with
    ``headers``, for a provider whose file URLs need its key), or the bytes themselves."""

    url: str | None = None
    data: bytes | None = None
    content_type: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ProviderResult:
    outputs: Sequence[ProviderOutput]
    request_id: str | None = None
    cost_usd: float | None = None  # where the provider reports what the call cost
    text: str | None = None  # speech recognition
    segments: Sequence[Segment] = ()
    duration: float | None = None


@dataclass(frozen=True, slots=True)
class WebhookNotice:
    """A verified notification: the provider's request it is about and, where its signed
    body carries the request's final answer (fal's ``payload``), that answer. It is as
    trustworthy as the same answer read from the provider's API, since only the provider can
    sign it: the adapter that asked for it may end the job on it without polling."""

    request_id: str
    answer: Mapping[str, Any] | None = None


class Watch(Protocol):
    """What an adapter tells the router while it follows a provider job."""

    async def submitted(self, request_id: str) -> None:
        """The provider accepted the job under ``request_id`` (recorded, and webhooks for it
        wake :meth:`wait`)."""

    async def progress(
        self, fraction: float | None = None, queue_position: int | None = None
    ) -> None: ...

    async def wait(self, request_id: str, seconds: float) -> Mapping[str, Any] | None:
        """Sleep ``seconds``, or less when a verified webhook for ``request_id`` arrives; the
        answer that webhook carried, if any (``WebhookNotice.answer``)."""


@dataclass(frozen=True, slots=True)
class ProviderContext:
    """What a provider factory gets: its key and base URL (from the operator's settings) and
    one HTTP client for the provider's own API (trusted, like any configuration)."""

    name: str
    key: str
    base_url: str
    http: httpx.AsyncClient
    webhook_secret: str | None = None  # where the provider signs with a shared secret
    jwks_url: str | None = None  # where it signs with published keys (fal)
    poll_interval: float = 2.0  # the first pause between polls; adapters grow it to MAX_POLL_S
    stream_status: bool = True  # follow a job by its status stream, where the provider has one


MAX_POLL_S = 30.0
POLL_GROWTH = 1.5
CANCEL_TIMEOUT_S = 2.0  # a cancel at the provider is best effort, and this quick


def next_poll(delay: float) -> float:
    """The pause after ``delay``: polls back off to one every ``MAX_POLL_S``."""
    return min(delay * POLL_GROWTH, MAX_POLL_S)


@runtime_checkable
class Provider(Protocol):
    name: ClassVar[str]

    async def run(self, call: ProviderCall, watch: Watch) -> ProviderResult: ...

    async def verify_webhook(self, headers: Mapping[str, str], body: bytes) -> WebhookNotice:
        """The notice a webhook carries, once its signature is checked; raise
        :class:`ProviderError` (``INVALID``) when it does not verify."""

    async def aclose(self) -> None: ...


class ProviderFactory(Protocol):
    def __call__(self, context: ProviderContext) -> Provider: ...
