"""The one small interface that every engine implements.

An engine is found through the registry (``registry.py``) by the name that a catalogue entry
gives in ``engine = "..."``. It receives a fully validated :class:`GenerationRequest`, with input
media already fetched and checked, and returns a :class:`GenerationResult`. Heavy imports
(torch, diffusers, ...) belong inside the engine module's functions, never at its top level.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol, runtime_checkable

from hyperlocal.settings import Settings

__all__ = [
    "Artifact",
    "Category",
    "Engine",
    "EngineContext",
    "EngineFactory",
    "GenerationRequest",
    "GenerationResult",
    "InputValue",
    "MediaInput",
    "MediaKind",
    "ProgressCallback",
    "Segment",
    "Word",
]

InputValue = str | int | float | bool | list[str] | None
ProgressCallback = Callable[[float, str | None], Awaitable[None]]


class Category(StrEnum):
    IMAGE = "image"
    IMAGE_EDIT = "image_edit"
    VIDEO = "video"
    AUDIO = "audio"
    THREE_D = "3d"
    CHAT = "chat"


class MediaKind(StrEnum):
    IMAGE = "image"
    AUDIO = "audio"
    VIDEO = "video"


@dataclass(frozen=True, slots=True)
class MediaInput:
    """One input medium, fetched (or decoded from a data URI) and checked to be what it claims."""

    field: str
    kind: MediaKind
    content_type: str
    data: bytes
    source: str  # the URL as given, or "data:" for inline media


@dataclass(frozen=True, slots=True)
class GenerationRequest:
    job_id: str
    model: str
    category: Category
    params: Mapping[str, InputValue]
    media: Mapping[str, Sequence[MediaInput]] = field(default_factory=dict)
    options: Mapping[str, InputValue] = field(
        default_factory=dict
    )  # the catalogue's engine options


@dataclass(frozen=True, slots=True)
class Artifact:
    """One output file. ``extension`` has no dot: ``png``, ``mp4``, ``glb``."""

    data: bytes
    content_type: str
    extension: str


@dataclass(frozen=True, slots=True)
class Word:
    word: str
    start: float
    end: float


@dataclass(frozen=True, slots=True)
class Segment:
    text: str
    start: float
    end: float
    words: tuple[Word, ...] = ()


@dataclass(frozen=True, slots=True)
class GenerationResult:
    artifacts: Sequence[Artifact]
    duration: float | None = None  # seconds of audio or video produced (or heard, for ASR)
    text: str | None = None
    segments: Sequence[Segment] = ()
    extra: Mapping[str, float | str] = field(default_factory=dict)  # engine facts, e.g. similarity


@runtime_checkable
class Engine(Protocol):
    """Turns a request into a result. Must be safe to call concurrently, or serialise itself."""

    async def generate(
        self, request: GenerationRequest, progress: ProgressCallback
    ) -> GenerationResult: ...

    async def aclose(self) -> None: ...


@dataclass(frozen=True, slots=True)
class EngineContext:
    settings: Settings


EngineFactory = Callable[[EngineContext], Engine]
