"""The composition root: open every resource a process needs, and close them in reverse."""

from __future__ import annotations

import os
import secrets
import socket
import time
from collections.abc import Callable, Mapping
from functools import partial
from pathlib import Path
from urllib.parse import urlparse
from urllib.request import url2pathname

from hyperlocal.core.catalog import Catalog, load_catalog
from hyperlocal.core.chat_recorder import ChatRecorder
from hyperlocal.core.events import EventBus, open_event_bus
from hyperlocal.core.keycache import KeyCache
from hyperlocal.core.lifecycle import JobLifecycle
from hyperlocal.core.metrics import Metrics
from hyperlocal.core.ratelimit import RateLimiter
from hyperlocal.core.retention import ExpirySweeper
from hyperlocal.core.services import Services
from hyperlocal.core.streams import StreamSlots
from hyperlocal.core.work import JobQueue
from hyperlocal.engines.base import EngineContext, EngineFactory
from hyperlocal.engines.chat.registry import ChatEngineRegistry, discover_chat_factories
from hyperlocal.engines.local.runtime import device_memory
from hyperlocal.engines.providers.hub import WebhookHub
from hyperlocal.engines.providers.registry import ProviderRegistry
from hyperlocal.engines.providers.router import Router
from hyperlocal.engines.registry import EngineRegistry, discover_factories
from hyperlocal.inputs import AddressPolicy, MediaFetcher
from hyperlocal.prometheus import open_metrics
from hyperlocal.queue.deliveries import WebhookDispatcher
from hyperlocal.queue.inprocess import InProcessQueue
from hyperlocal.queue.runner import JobRunner
from hyperlocal.settings import Settings
from hyperlocal.storage.base import Storage
from hyperlocal.storage.local import LocalStorage
from hyperlocal.storage.private import PrivateStorage, private_prefix
from hyperlocal.store.db import Database

__all__ = [
    "close_services",
    "open_database",
    "open_dispatcher",
    "open_private_storage",
    "open_queue",
    "open_router",
    "open_services",
    "open_storage",
    "worker_id",
]


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


async def open_database(settings: Settings) -> Database:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    db = Database(settings.resolved_database_url())
    if settings.migrate_on_start:
        await db.migrate()
    return db


def open_storage(settings: Settings) -> Storage:
    url = urlparse(settings.resolved_storage_url())
    if url.scheme == "file":
        return LocalStorage(Path(url2pathname(url.path)), settings.public_url)
    if url.scheme == "s3":
        from hyperlocal.storage.s3 import open_s3_storage  # boto3 loads only when configured

        return open_s3_storage(settings, url.netloc, url.path)
    raise ValueError(f"unsupported storage URL scheme: {url.scheme!r}")


def open_private_storage(settings: Settings) -> Storage:
    """Where job inputs are kept, never served (``storage.private``): beside the outputs' S3
    prefix, or in ``<data_dir>/private``, which must not lie in the served files folder."""
    url = urlparse(settings.resolved_storage_url())
    if url.scheme == "s3":
        from hyperlocal.storage.s3 import open_s3_storage

        return PrivateStorage(open_s3_storage(settings, url.netloc, private_prefix(url.path)))
    root = (settings.data_dir / "private").resolve()
    served = Path(url2pathname(url.path)).resolve()
    if root.is_relative_to(served):
        raise ValueError(f"{root} holds job inputs: HYPERLOCAL_STORAGE_URL must not contain it")
    return PrivateStorage(LocalStorage(root, settings.public_url))


async def open_services(
    settings: Settings,
    extra_engines: Mapping[str, EngineFactory] | None = None,
    *,
    start_queue: bool = True,
    clock: Callable[[], float] = time.time,
    metrics: Metrics | None = None,
) -> Services:
    """Open everything a process needs; with ``start_queue`` (an API process), start its
    background work too: the queue, webhook delivery and the retention sweep. ``clock`` is
    the retention sweep's (and the 410 check's) time, for tests to step. ``metrics``: the
    app's, when its factory made them (``prometheus.open_metrics``)."""
    metrics = metrics or open_metrics(settings)
    db = await open_database(settings)
    catalog = load_catalog(settings.catalog)
    router = open_router(settings, metrics, extra_engines)
    storage = open_storage(settings)
    private = open_private_storage(settings)
    events = open_event_bus(_redis_url(settings))
    await events.start()
    dispatcher = open_dispatcher(settings, db, metrics)
    lifecycle = JobLifecycle(
        db,
        events,
        dispatcher,
        input_retention_s=settings.input_retention,
        metrics=metrics,
    )
    runner = open_runner(settings, lifecycle, catalog, router, storage, private=private)
    services = Services(
        settings=settings,
        db=db,
        catalog=catalog,
        engines=router.engines,
        router=router,
        chat=ChatEngineRegistry(router.engines.context, discover_chat_factories()),
        storage=storage,
        private=private,
        fetcher=_fetcher(settings),
        limiter=RateLimiter(_redis_url(settings)),
        queue=open_queue(settings, db, runner, events),
        events=events,
        webhooks=dispatcher,
        key_cache=KeyCache(settings.auth_cache_seconds),
        chat_recorder=ChatRecorder(db, lifecycle),
        lifecycle=lifecycle,
        streams=StreamSlots(settings.sse_streams_per_key),
        expiry=ExpirySweeper(
            db, storage, private, clock=clock, interval=settings.retention_sweep_interval
        ),
        clock=clock,
        metrics=metrics,
    )
    if start_queue:
        await _start_background(services)
    return services


def open_router(
    settings: Settings, metrics: Metrics, extra_engines: Mapping[str, EngineFactory] | None
) -> Router:
    """The process's engines (found by entry point, plus ``extra_engines``) and its provider
    adapters behind one router; the device manager's budgets feed ``metrics``."""
    context = EngineContext(settings, metrics)
    engines = EngineRegistry(context, discover_factories() | dict(extra_engines or {}))
    metrics.watch_devices(partial(device_memory, context))
    return Router(settings, engines, ProviderRegistry(settings), WebhookHub())


async def _start_background(services: Services) -> None:
    """An API process's background work: the queue, webhook delivery, the retention sweep."""
    services.db.start_background()
    await services.queue.start()
    await services.webhooks.start()
    await services.expiry.start()


def open_runner(
    settings: Settings,
    lifecycle: JobLifecycle,
    catalog: Catalog,
    router: Router,
    storage: Storage,
    *,
    private: Storage,
) -> JobRunner:
    """A job runner of this process: models served by ``router`` (their provider routes, or
    their engines), outputs to ``storage``, inputs from ``private``."""
    return JobRunner(
        lifecycle,
        catalog,
        router,
        storage,
        private=private,
        worker=worker_id(),
        lease_s=settings.job_lease_seconds,
        max_attempts=settings.job_max_attempts,
    )


def _fetcher(settings: Settings) -> MediaFetcher:
    return MediaFetcher(
        allow_private=settings.allow_private_urls,
        max_bytes=settings.fetch_max_bytes,
        timeout=settings.fetch_timeout,
    )


def open_queue(settings: Settings, db: Database, runner: JobRunner, events: EventBus) -> JobQueue:
    """Celery on Redis when the database is PostgreSQL and Redis is set (scale-out: separate
    ``hyperlocal worker`` processes run the jobs); otherwise the embedded in-process queue."""
    redis_url = _redis_url(settings)
    if redis_url and not db.is_sqlite:
        from hyperlocal.queue.dispatch import CeleryQueue  # Celery loads only when configured

        return CeleryQueue(db, events, redis_url=redis_url, namespace=settings.queue_namespace)
    return InProcessQueue(
        db,
        runner,
        concurrency=settings.worker_concurrency,
        grace=settings.shutdown_grace_seconds,
    )


def _redis_url(settings: Settings) -> str | None:
    return settings.redis_url.get_secret_value() if settings.redis_url else None


def open_dispatcher(
    settings: Settings, db: Database, metrics: Metrics | None = None
) -> WebhookDispatcher:
    return WebhookDispatcher(
        db,
        metrics=metrics,
        policy=AddressPolicy(allow_private=settings.allow_private_urls),
        schedule=settings.webhook_schedule,
        jitter=settings.webhook_jitter,
        timeout=settings.webhook_timeout,
        concurrency=settings.webhook_concurrency,
        per_receiver=settings.webhook_per_receiver,
        poll_interval=settings.webhook_poll_interval,
    )


async def close_services(services: Services) -> None:
    await services.expiry.aclose()
    await services.queue.aclose()
    await services.chat_recorder.aclose()
    await services.webhooks.aclose()
    await services.events.aclose()
    await services.router.aclose()
    await services.engines.aclose()
    await services.chat.aclose()
    await services.fetcher.aclose()
    await services.limiter.aclose()
    await services.storage.aclose()
    await services.private.aclose()
    await services.db.aclose()
