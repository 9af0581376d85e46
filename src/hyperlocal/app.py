"""The app factory. Nothing happens at import: ``create_app`` builds, the lifespan opens."""

from __future__ import annotations

import gc
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager

from fastapi import FastAPI

from hyperlocal import __version__, console, tracing
from hyperlocal.api.errors import install_error_handlers
from hyperlocal.api.metrics import RequestMetrics
from hyperlocal.api.middleware import BodyLimitMiddleware
from hyperlocal.api.routes import (
    account,
    admin,
    chat,
    files,
    health,
    images,
    jobs,
    media,
    models,
    providers,
)
from hyperlocal.api.routes import metrics as metrics_route
from hyperlocal.engines.base import EngineFactory
from hyperlocal.prometheus import PrometheusMetrics, open_metrics, serve_bind
from hyperlocal.runtime import close_services, open_services
from hyperlocal.settings import Settings

__all__ = ["create_app"]

_DESCRIPTION = "A self-hosted media-generation server that speaks the Hypereal API."


# Each surface's router goes straight onto the app under both prefixes (no router of routers:
# every level of nesting costs each request another pass of route matching). The chat relay
# and images, whose per-request cost is what the benchmarks judge, are tried first.
_API_ROUTERS = (chat, images, media, jobs, account, models, providers)


def _freeze_long_lived() -> None:
    """What exists once the app has started (modules, the app, its services) lives as long as the
    process. Left to the collector, every full collection walks all of it again: about 80 ms on
    a loaded app, one every few hundred requests. Collected first, so no garbage is kept."""
    gc.collect()
    gc.freeze()


def create_app(
    settings: Settings | None = None,
    *,
    engines: Mapping[str, EngineFactory] | None = None,
    clock: Callable[[], float] | None = None,
) -> FastAPI:
    """Build the ASGI app. ``engines`` adds or replaces engine factories by name; ``clock``
    replaces the wall clock that retention expires outputs by (a test steps its own)."""
    settings = settings or Settings()
    time_now = clock or time.time
    metrics = open_metrics(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        services = await open_services(settings, engines, clock=time_now, metrics=metrics)
        app.state.services = services
        models = [entry.id for entry in services.catalog]
        bound = serve_bind(metrics, settings.metrics_bind, services.db, models)
        if settings.gc_freeze:
            _freeze_long_lived()
        try:
            yield
        finally:
            if settings.gc_freeze:
                gc.unfreeze()
            if bound is not None:
                bound.close()
            await close_services(services)

    app = FastAPI(
        title="hyperlocal", version=__version__, description=_DESCRIPTION, lifespan=lifespan
    )
    app.add_middleware(BodyLimitMiddleware, limit=settings.max_body_bytes)
    if isinstance(metrics, PrometheusMetrics):  # outermost: it times everything inside
        app.add_middleware(RequestMetrics, metrics=metrics)
    install_error_handlers(app)
    for prefix, in_schema in (("/v1", True), ("/api/v1", False)):
        for module in _API_ROUTERS:
            app.include_router(module.router, prefix=prefix, include_in_schema=in_schema)
    for module in (admin, health, metrics_route, files, console):
        app.include_router(module.router)
    app.include_router(media.legacy_router)
    tracing.trace_app(app)  # nothing unless OTEL_EXPORTER_OTLP_ENDPOINT is set
    return app
