"""The app factory. Nothing happens at import: ``create_app`` builds, the lifespan opens."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager

from fastapi import APIRouter, FastAPI

from hyperlocal import __version__, console
from hyperlocal.api.errors import install_error_handlers
from hyperlocal.api.middleware import BodyLimitMiddleware
from hyperlocal.api.routes import account, admin, chat, files, health, images, jobs, media, models
from hyperlocal.engines.base import EngineFactory
from hyperlocal.runtime import close_services, open_services
from hyperlocal.settings import Settings

__all__ = ["create_app"]

_DESCRIPTION = "A self-hosted media-generation server that speaks the Hypereal API."


def _api_router() -> APIRouter:
    router = APIRouter()
    for module in (images, media, jobs, account, models, chat):
        router.include_router(module.router)
    return router


def create_app(
    settings: Settings | None = None, *, engines: Mapping[str, EngineFactory] | None = None
) -> FastAPI:
    """Build the ASGI app. ``engines`` adds or replaces engine factories by name."""
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.services = await open_services(settings, engines)
        try:
            yield
        finally:
            await close_services(app.state.services)

    app = FastAPI(
        title="hyperlocal", version=__version__, description=_DESCRIPTION, lifespan=lifespan
    )
    app.add_middleware(BodyLimitMiddleware, limit=settings.max_body_bytes)
    install_error_handlers(app)
    api = _api_router()
    app.include_router(api, prefix="/v1")
    app.include_router(api, prefix="/api/v1", include_in_schema=False)
    for module in (admin, health, files, console):
        app.include_router(module.router)
    app.include_router(media.legacy_router)
    return app
