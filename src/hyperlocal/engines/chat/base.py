"""The small interface that every chat backend implements.

A chat engine turns a typed :class:`ChatRequest` into an async stream of :class:`ChatDelta`
values, one per token (or per upstream chunk) as soon as it exists, never buffered. The last
delta carries ``finish_reason``. Any delta may carry ``usage``: the tokens counted so far, so a
stream cut short by the client still has an exact count up to that point.

Closing the iterator early (``aclose()``, or cancelling the task awaiting it) must stop the
backend's work: the local engines stop their generation thread, the upstream engine closes the
upstream connection. An engine raises ``GenerationError`` (or a subclass) for a backend failure
and ``InputError`` for a request the backend cannot serve; anything else counts as a bug.

Engines register under the ``hyperlocal.chat_engines`` entry-point group, exactly like the
media engines of ``engines/base.py``; a catalogue entry names one in ``engine = "..."``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from hyperlocal.engines.base import EngineContext

__all__ = [
    "ChatDelta",
    "ChatEngine",
    "ChatEngineFactory",
    "ChatMessage",
    "ChatRequest",
    "ChatUsage",
    "ContentPart",
    "ImagePart",
    "OptionValue",
    "TextPart",
    "message_text",
]

OptionValue = str | int | float | bool


@dataclass(frozen=True, slots=True)
class TextPart:
    text: str


@dataclass(frozen=True, slots=True)
class ImagePart:
    """An ``image_url`` content part, as given: an http(s) URL or a ``data:`` URI, unfetched."""

    url: str
    detail: str | None = None


ContentPart = TextPart | ImagePart


@dataclass(frozen=True, slots=True)
class ChatMessage:
    """One turn. ``content`` keeps the shape it arrived in, so a relay can pass parts on."""

    role: str
    content: str | tuple[ContentPart, ...]
    name: str | None = None


def message_text(message: ChatMessage) -> str:
    """The message's text: a string as is, or its text parts joined by newlines."""
    if isinstance(message.content, str):
        return message.content
    return "\n".join(p.text for p in message.content if isinstance(p, TextPart))


@dataclass(frozen=True, slots=True)
class ChatRequest:
    model: str
    messages: Sequence[ChatMessage]
    temperature: float
    max_tokens: int
    stop: tuple[str, ...] = ()
    # A hint: the caller wants the whole reply at once. A relay may then make one
    # non-streaming upstream call; local engines stream either way.
    stream: bool = True
    options: Mapping[str, OptionValue] = field(default_factory=dict)  # catalogue engine_options
    # The engine calls this once the backend has the request: a relay once the request is
    # written to the upstream, a local engine as it starts. The caller's own work (the chat's
    # charge) then overlaps the backend's instead of delaying the request. Calling it again
    # does nothing; an engine that never calls it only makes that work wait for its first delta.
    started: Callable[[], None] = field(default=lambda: None, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class ChatUsage:
    prompt_tokens: int | None
    completion_tokens: int

    @property
    def total_tokens(self) -> int | None:
        if self.prompt_tokens is None:
            return None
        return self.prompt_tokens + self.completion_tokens


@dataclass(frozen=True, slots=True)
class ChatDelta:
    content: str = ""
    finish_reason: str | None = None  # "stop" or "length" on the last delta
    usage: ChatUsage | None = None
    # The next delta is already here (it came in the same read from an upstream): the server
    # may send both in one write. Never set when the next one could still be waited for.
    more: bool = False


@runtime_checkable
class ChatEngine(Protocol):
    """Streams a reply. Must be safe to call concurrently, or serialise itself."""

    def stream(self, request: ChatRequest) -> AsyncIterator[ChatDelta]: ...

    async def aclose(self) -> None: ...


ChatEngineFactory = Callable[[EngineContext], ChatEngine]
