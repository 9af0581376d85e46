"""The app factory. Nothing happens at import: ``create_app`` builds, the lifespan opens."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager

from fastapi import FastAPI

from hyperlocal import __version__, console
from hyperlocal.api.errors import install_error_handlers
from hyperlocal.api.middleware import BodyLimitMiddleware
from hyperlocal.api.routes import account, admin, chat, files, health, images, jobs, media, models
from hyperlocal.engines.base import EngineFactory
from hyperlocal.runtime import close_services, open_services
from hyperlocal.settings import Settings

__all__ = ["create_app"]

_DESCRIPTION = "A self-hosted media-generation server that speaks the Hypereal API."


# Each surface's router goes straight onto the app under both prefixes (no router of routers:
# every level of nesting costs each request another pass of route matching). The chat relay
# and images, whose per-request cost is what the benchmarks judge, are tried first.
_API_ROUTERS = (chat, images, media, jobs, account, models)


def _freeze_long_lived() -> None:
    """What exists once the app has started (modules, the app, its services) lives as long as the
    process. Left to the collector, every full collection walks all of it again: about 80 ms on
    a loaded app, one every few hundred requests. Collected first, so no garbage is kept."""
    gc.collect()
    gc.freeze()


def create_app(
    settings: Settings | None = None, *, engines: Mapping[str, EngineFactory] | None = None
) -> FastAPI:
    """Build the ASGI app. ``engines`` adds or replaces engine factories by name."""
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.services = await open_services(settings, engines)
        if settings.gc_freeze:
            _freeze_long_lived()
        try:
            yield
        finally:
            if settings.gc_freeze:
                gc.unfreeze()
            await close_services(app.state.services)

    app = FastAPI(
        title="hyperlocal", version=__version__, description=_DESCRIPTION, lifespan=lifespan
    )
    app.add_middleware(BodyLimitMiddleware, limit=settings.max_body_bytes)
    install_error_handlers(app)
    for prefix, in_schema in (("/v1", True), ("/api/v1", False)):
        for module in _API_ROUTERS:
            app.include_router(module.router, prefix=prefix, include_in_schema=in_schema)
    for module in (admin, health, files, console):
        app.include_router(module.router)
    app.include_router(media.legacy_router)
    return app
