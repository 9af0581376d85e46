"""Chat engine name -> factory, found through the ``hyperlocal.chat_engines`` entry points.

The same shape as ``engines/registry.py``: a factory is loaded and called on first use only,
so a backend's imports (llama.cpp, torch) never slow down the API's start.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from importlib.metadata import entry_points

from hyperlocal.engines.base import EngineContext
from hyperlocal.engines.chat.base import ChatEngine, ChatEngineFactory
from hyperlocal.errors import EngineUnavailableError

__all__ = ["CHAT_ENTRY_POINT_GROUP", "ChatEngineRegistry", "discover_chat_factories"]

CHAT_ENTRY_POINT_GROUP = "hyperlocal.chat_engines"


def discover_chat_factories() -> dict[str, ChatEngineFactory]:
    """Every installed chat engine factory, by name. Loading one imports only its module."""
    return {ep.name: _lazy(ep.load) for ep in entry_points(group=CHAT_ENTRY_POINT_GROUP)}


def _lazy(load: object) -> ChatEngineFactory:
    def factory(context: EngineContext) -> ChatEngine:
        real: ChatEngineFactory = load()  # type: ignore[operator]
        return real(context)

    return factory


class ChatEngineRegistry:
    """Creates each chat engine once, on first request, and closes them all at shutdown."""

    def __init__(self, context: EngineContext, factories: Mapping[str, ChatEngineFactory]) -> None:
        self._context = context
        self._factories = dict(factories)
        self._engines: dict[str, ChatEngine] = {}
        self._lock = asyncio.Lock()

    def names(self) -> list[str]:
        return sorted(self._factories)

    def available(self, name: str) -> bool:
        return name in self._factories

    async def get(self, name: str) -> ChatEngine:
        engine = self._engines.get(name)
        if engine is not None:
            return engine
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
