"""Engine name -> factory, the way diffusers maps pipeline names and datasette finds plugins.

Built-in engines register exactly like third-party ones: through an entry-point group
(``hyperlocal.engines`` for media, ``hyperlocal.chat_engines`` for chat; see pyproject.toml).
A factory is loaded and called on first use only, so an engine's heavy imports never slow
down the API's start.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from importlib.metadata import entry_points
from typing import Any, Generic, Protocol, TypeVar

from hyperlocal.engines.base import Engine, EngineContext, EngineFactory
from hyperlocal.errors import EngineUnavailableError

__all__ = [
    "ENTRY_POINT_GROUP",
    "EngineRegistry",
    "Registry",
    "discover",
    "discover_factories",
]

ENTRY_POINT_GROUP = "hyperlocal.engines"


class _Closeable(Protocol):
    async def aclose(self) -> None: ...


E = TypeVar("E", bound=_Closeable)


def discover(group: str) -> dict[str, Callable[[EngineContext], Any]]:
    """Every factory installed in an entry-point group, by name, loaded only when called."""
    return {ep.name: _lazy(ep.load) for ep in entry_points(group=group)}


def _lazy(load: Callable[[], Any]) -> Callable[[EngineContext], Any]:
    def factory(context: EngineContext) -> Any:
        return load()(context)

    return factory


def discover_factories() -> dict[str, EngineFactory]:
    return discover(ENTRY_POINT_GROUP)


class Registry(Generic[E]):
    """Creates each engine once, on first request, and closes them all at shutdown."""

    def __init__(
        self, context: EngineContext, factories: Mapping[str, Callable[[EngineContext], E]]
    ) -> None:
        self._context = context
        self._factories = dict(factories)
        self._engines: dict[str, E] = {}
        self._lock = asyncio.Lock()

    @property
    def context(self) -> EngineContext:
        """What every engine here was (or will be) built from: the process's settings, its
        load observer, and so the key to its device manager (``local.runtime.devices_for``)."""
        return self._context

    def names(self) -> list[str]:
        return sorted(self._factories)

    def available(self, name: str) -> bool:
        return name in self._factories

    async def get(self, name: str) -> E:
        engine = self._engines.get(name)
        if engine is not None:
            return engine
        if name not in self._factories:
            raise EngineUnavailableError(name)
        async with self._lock:
            if name not in self._engines:
                self._engines[name] = await self._create(name)
        return self._engines[name]

    async def _create(self, name: str) -> E:
        started = time.perf_counter()
        engine = await asyncio.to_thread(self._factories[name], self._context)
        if self._context.loads is not None:
            self._context.loads.model_loaded(name, time.perf_counter() - started)
        return engine

    async def aclose(self) -> None:
        engines, self._engines = list(self._engines.values()), {}
        for engine in engines:
            await engine.aclose()


EngineRegistry = Registry[Engine]
