"""Server-Sent Events, decoded a line at a time, so the sync and async clients share it."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from hyperlocal.client._errors import GenerationFailed
from hyperlocal.client._models import ChatChunk

__all__ = ["DONE", "SSEDecoder", "ServerSentEvent", "chat_chunk"]

DONE = "[DONE]"


@dataclass(frozen=True, slots=True)
class ServerSentEvent:
    event: str
    data: str

    def json(self) -> Mapping[str, Any]:
        value = json.loads(self.data)
        if not isinstance(value, Mapping):
            raise ValueError(f"SSE data is not a JSON object: {self.data[:80]!r}")
        return value


class SSEDecoder:
    """Feed it lines without their newline; it returns an event at each blank line."""

    def __init__(self) -> None:
        self._event = ""
        self._data: list[str] = []

    def feed(self, line: str) -> ServerSentEvent | None:
        if not line:
            return self._dispatch()
        if line.startswith(":"):  # a comment, such as the server's heartbeat
            return None
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "event":
            self._event = value
        elif name == "data":
            self._data.append(value)
        return None

    def _dispatch(self) -> ServerSentEvent | None:
        event = ServerSentEvent(self._event or "message", "\n".join(self._data))
        had_data = bool(self._data)
        self._event, self._data = "", []
        return event if had_data else None


def chat_chunk(event: ServerSentEvent) -> ChatChunk:
    """One chunk; an ``{"error": ...}`` event (a failure after the first token) raises."""
    data = event.json()
    if "error" in data and "choices" not in data:
        raise GenerationFailed(str(data["error"]), status=None, body=data)
    return ChatChunk.from_json(data)
