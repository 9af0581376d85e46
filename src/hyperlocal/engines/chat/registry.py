"""Chat engines, found through the ``hyperlocal.chat_engines`` entry points, held in the
same generic registry as media engines."""

from __future__ import annotations

from hyperlocal.engines.chat.base import ChatEngine, ChatEngineFactory
from hyperlocal.engines.registry import Registry, discover

__all__ = ["CHAT_ENTRY_POINT_GROUP", "ChatEngineRegistry", "discover_chat_factories"]

CHAT_ENTRY_POINT_GROUP = "hyperlocal.chat_engines"

ChatEngineRegistry = Registry[ChatEngine]


def discover_chat_factories() -> dict[str, ChatEngineFactory]:
    return discover(CHAT_ENTRY_POINT_GROUP)
