"""Providers, seen from the API: their verified webhooks, and what the operator sees of them."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass

from hyperlocal.core.services import Services
from hyperlocal.engines.providers.base import FailureKind, ProviderError
from hyperlocal.errors import (
    JobNotFoundError,
    NotFoundError,
    ProviderUnavailableError,
    WebhookSignatureError,
)
from hyperlocal.store import usage as usage_store

__all__ = [
    "ModelUsage",
    "ProviderStatus",
    "attempts_of",
    "provider_statuses",
    "receive_webhook",
    "usage",
]

log = logging.getLogger(__name__)


async def receive_webhook(
    svc: Services, name: str, headers: Mapping[str, str], body: bytes
) -> None:
    """Verify a provider's webhook and wake the job waiting for it, with the request's final
    answer where the signed body carries one. Unknown or unconfigured providers are not found;
    a bad signature is refused."""
    providers = svc.router.providers
    if not providers.configured(name):
        raise NotFoundError(f"No provider '{name}' is configured here")
    provider = await providers.get(name)
    try:
        notice = await provider.verify_webhook(headers, body)
    except ProviderError as exc:
        log.warning("provider webhook refused", extra={"provider": name, "error": exc.message})
        if exc.kind is FailureKind.UNAVAILABLE:  # its keys could not be fetched: retry later
            raise ProviderUnavailableError(f"{name}: {exc.message}") from exc
        raise WebhookSignatureError(f"{name}: {exc.message}") from exc
    svc.router.hub.notify(name, notice.request_id, notice.answer)


@dataclass(frozen=True, slots=True)
class ProviderStatus:
    name: str
    configured: bool
    key_env: str
    key: str  # masked
    base_url: str | None
    circuit: str  # closed | open | half-open


def provider_statuses(svc: Services) -> list[ProviderStatus]:
    router = svc.router
    return [
        ProviderStatus(
            name=config.name,
            configured=config.configured,
            key_env=config.key_env,
            key=config.masked_key(),
            base_url=config.base_url,
            circuit=router.breaker.state(config.name),
        )
        for config in router.providers.configs()
    ]


@dataclass(frozen=True, slots=True)
class ModelUsage:
    model: str
    jobs: int
    completed: int
    credits: int  # kept, of completed jobs (100 credits = 1 USD on the hosted price list)
    routed: int  # jobs that went through provider routes
    provider_cost_usd: float | None  # what the providers reported, where they did


async def usage(svc: Services, since: float) -> list[ModelUsage]:
    async with svc.db.read() as session:
        rows = await usage_store.usage_by_model(session, since)
    return [
        ModelUsage(
            model=row.model,
            jobs=int(row.jobs),
            completed=int(row.completed),
            credits=int(row.credits),
            routed=int(row.routed),
            provider_cost_usd=None
            if row.provider_cost_usd is None
            else float(row.provider_cost_usd),
        )
        for row in rows
    ]


async def attempts_of(svc: Services, job_id: str) -> list[dict[str, object]]:
    async with svc.db.read() as session:
        found = await usage_store.route_attempts(session, job_id)
    if found is None:
        raise JobNotFoundError
    return found
