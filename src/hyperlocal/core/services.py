"""The resources a request or a job needs, opened once per process by ``runtime.open_services``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from hyperlocal.core.catalog import Catalog
from hyperlocal.core.chat_recorder import ChatRecorder
from hyperlocal.core.events import EventBus
from hyperlocal.core.keycache import KeyCache
from hyperlocal.core.lifecycle import JobLifecycle
from hyperlocal.core.metrics import Metrics
from hyperlocal.core.ratelimit import RateLimiter
from hyperlocal.core.retention import ExpirySweeper
from hyperlocal.core.streams import StreamSlots
from hyperlocal.core.work import JobQueue, OutboxSender
from hyperlocal.engines.chat.registry import ChatEngineRegistry
from hyperlocal.engines.providers.router import Router
from hyperlocal.engines.registry import EngineRegistry
from hyperlocal.inputs import MediaFetcher
from hyperlocal.settings import Settings
from hyperlocal.storage.base import Storage
from hyperlocal.store.db import Database

__all__ = ["Services"]


@dataclass(slots=True)
class Services:
    settings: Settings
    db: Database
    catalog: Catalog
    engines: EngineRegistry
    router: Router  # serves each model through its provider routes, or its engine
    chat: ChatEngineRegistry
    storage: Storage
    private: Storage  # job inputs: never served (storage.private)
    fetcher: MediaFetcher
    limiter: RateLimiter
    queue: JobQueue
    events: EventBus
    webhooks: OutboxSender
    key_cache: KeyCache
    chat_recorder: ChatRecorder
    lifecycle: JobLifecycle
    streams: StreamSlots
    expiry: ExpirySweeper
    clock: Callable[[], float]  # wall-clock seconds (time.time); tests step their own
    metrics: Metrics  # what core reports for an operator (core.metrics)
