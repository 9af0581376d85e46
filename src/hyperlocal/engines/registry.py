"""Engine name -> factory, the way diffusers maps pipeline names and datasette finds plugins.

Built-in engines register exactly like third-party ones: through the ``hyperlocal.engines``
entry-point group (see pyproject.toml). A factory is loaded and called on first use only, so
an engine's heavy imports never slow down the API's start.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from importlib.metadata import entry_points

from hyperlocal.engines.base import Engine, EngineContext, EngineFactory
from hyperlocal.errors import EngineUnavailableError

__all__ = ["ENTRY_POINT_GROUP", "EngineRegistry", "discover_factories"]

ENTRY_POINT_GROUP = "hyperlocal.engines"


def discover_factories() -> dict[str, EngineFactory]:
    """Every installed engine factory, by name. Loading one imports only its module."""
    found: dict[str, EngineFactory] = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        found[ep.name] = _lazy(ep.load)
    return found


def _lazy(load: object) -> EngineFactory:
    def factory(context: EngineContext) -> Engine:
        real: EngineFactory = load()  # type: ignore[operator]
        return real(context)

    return factory


class EngineRegistry:
    """Creates each engine once, on first request, and closes them all at shutdown."""

    def __init__(self, context: EngineContext, factories: Mapping[str, EngineFactory]) -> None:
        self._context = context
        self._factories = dict(factories)
        self._engines: dict[str, Engine] = {}
        self._lock = asyncio.Lock()

    def names(self) -> list[str]:
        return sorted(self._factories)

    def available(self, name: str) -> bool:
        return name in self._factories

    async def get(self, name: str) -> Engine:
        if name in self._engines:
            return self._engines[name]
        if name not in self._factories:
            raise EngineUnavailableError(name)
        async with self._lock:
            if name not in self._engines:
                self._engines[name] = await asyncio.to_thread(self._factories[name], self._context)
        return self._engines[name]

    async def aclose(self) -> None:
        engines, self._engines = list(self._engines.values()), {}
        for engine in engines:
            await engine.aclose()
