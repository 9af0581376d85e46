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
    "DeviceMemory",
    "Engine",
    "EngineContext",
    "EngineFactory",
    "GenerationRequest",
    "GenerationResult",
    "InputValue",
    "LoadObserver",
    "MediaCaps",
    "MediaInput",
    "MediaKind",
    "PositionCallback",
    "ProgressCallback",
    "Segment",
    "StepMessage",
    "Word",
]

InputValue = str | int | float | bool | list[str] | None
ProgressCallback = Callable[[float, str | None], Awaitable[None]]
"""``progress(fraction, message)``: how far the job is (0 to 1) and what it does now. The
message may be a :class:`StepMessage`, which says which step, in words and in numbers."""
PositionCallback = Callable[[int | None], Awaitable[None]]  # a place in a provider's queue


class StepMessage(str):
    """A progress message that reports one step of a model's loop: ``"step 3/40"``.

    It is the message itself, so every progress callback takes it as it takes any message;
    one that knows the type (the job runner) also reads ``step`` and ``steps`` (1-based, of
    this run) and ``preview``: a small ``data:image/jpeg;base64,...`` of the work so far, on
    the steps where the request asked for one, else None. A ``str`` subclass rather than a
    third argument so that the many two-argument callbacks need no change."""

    step: int
    steps: int
    preview: str | None

    def __new__(cls, step: int, steps: int, preview: str | None = None) -> StepMessage:
        message = super().__new__(cls, f"step {step}/{steps}")
        message.step, message.steps, message.preview = step, steps, preview
        return message


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
class MediaCaps:
    """The most of each input medium that one model takes (its catalogue entry's ``caps``).

    Checked against the container's headers at submit, before anything is decoded or charged,
    and again by every decoder while it decodes, so that a header that lies cannot make it
    decode more. ``audio_decoded_bytes`` bounds the PCM that a full decode would produce at the
    file's own rate and channels, as float32: the work of decoding, whatever is kept of it.
    """

    audio_seconds: float = 7200.0
    audio_sample_rate: int = 192_000
    audio_channels: int = 16
    audio_decoded_bytes: int = 4_000_000_000
    video_seconds: float = 300.0
    video_frames: int = 18_000  # five minutes at 60 frames a second
    video_pixels: int = 4096 * 2304  # in one frame; 4k UHD and DCI 4k fit


@dataclass(frozen=True, slots=True)
class MediaInput:
    """One input medium, fetched (or decoded from a data URI) and checked to be what it claims."""

    field: str
    kind: MediaKind
    content_type: str
    data: bytes
    source: str  # the URL as given, or "data:" for inline media
    seconds: float | None = None  # audio or video: its length, as checked at submit


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
    caps: MediaCaps = field(default_factory=MediaCaps)  # the catalogue's caps on input media


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
    # Seconds of audio or video produced; for ASR, the seconds of input decoded and heard,
    # which a ``per_minute`` price is settled on when the job completes.
    duration: float | None = None
    text: str | None = None
    segments: Sequence[Segment] = ()
    extra: Mapping[str, float | str] = field(default_factory=dict)  # engine facts, e.g. similarity
    # Through provider routes (engines/providers): every route tried, and the provider's cost.
    attempts: Sequence[Mapping[str, object]] = ()
    provider_cost_usd: float | None = None


@runtime_checkable
class Engine(Protocol):
    """Turns a request into a result. Must be safe to call concurrently, or serialise itself."""

    async def generate(
        self, request: GenerationRequest, progress: ProgressCallback
    ) -> GenerationResult: ...

    async def aclose(self) -> None: ...


@dataclass(frozen=True, slots=True)
class DeviceMemory:
    """One device as the device manager budgets it: bytes its models use, and its budget."""

    device: str  # "cuda:0", "cpu"
    used: int
    budget: int


class LoadObserver(Protocol):
    """Told of every load, for the operator's metrics (``core.metrics.Metrics`` is one)."""

    def model_loaded(self, engine: str, seconds: float) -> None: ...

    def resident(self, device: str, change: int) -> None:
        """A model was loaded onto (``change`` 1) or released from (-1) ``device``."""


@dataclass(frozen=True, slots=True)
class EngineContext:
    settings: Settings
    loads: LoadObserver | None = None


EngineFactory = Callable[[EngineContext], Engine]
