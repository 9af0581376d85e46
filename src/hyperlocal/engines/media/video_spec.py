"""What a video request asks for, in pixels, frames and seconds."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from hyperlocal.engines.base import InputValue
from hyperlocal.errors import GenerationError

__all__ = ["FPS", "VideoSpec", "flag", "frame_size", "seconds", "text"]

Params = Mapping[str, InputValue]

FPS = 24
SHORT_SIDES = {"360p": 360, "480p": 480, "540p": 540, "720p": 720, "1080p": 1080}
DEFAULT_RESOLUTION = "720p"
DEFAULT_SECONDS = 5.0
MAX_SECONDS = 60.0
# Output shapes past these ratios come from odd inputs (panoramas, strips); crop them instead.
MIN_RATIO, MAX_RATIO = 9 / 21, 21 / 9


@dataclass(frozen=True, slots=True)
class VideoSpec:
    width: int
    height: int
    seconds: float
    fps: int = FPS

    @property
    def size(self) -> tuple[int, int]:
        return self.width, self.height

    @property
    def frames(self) -> int:
        return max(2, round(self.seconds * self.fps))


def text(params: Params, key: str) -> str:
    value = params.get(key)
    return value.strip() if isinstance(value, str) else ""


def flag(params: Params, *keys: str) -> bool:
    """True when any of ``keys`` is true: clients name one switch by several names."""
    return any(params.get(key) is True for key in keys)


def seconds(params: Params, default: float = DEFAULT_SECONDS) -> float:
    value = params.get("duration")
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise GenerationError(f"duration must be a positive number of seconds, not {value!r}")
    return min(float(value), MAX_SECONDS)


def frame_size(params: Params, source_ratio: float) -> tuple[int, int]:
    """Even width and height from ``aspect_ratio`` (else the source's shape) and ``resolution``.

    The resolution names the short side, as 720p does for both 1280x720 and 720x1280.
    """
    resolution = text(params, "resolution").lower() or DEFAULT_RESOLUTION
    if resolution not in SHORT_SIDES:
        raise GenerationError(f"resolution must be one of {', '.join(SHORT_SIDES)}")
    short = SHORT_SIDES[resolution]
    ratio = _ratio(text(params, "aspect_ratio")) or source_ratio
    ratio = min(max(ratio, MIN_RATIO), MAX_RATIO)
    if ratio >= 1:
        return _even(short * ratio), short
    return short, _even(short / ratio)


def _ratio(value: str) -> float | None:
    if value in ("", "auto", "adaptive", "match_input_image"):
        return None
    match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*:\s*(\d+(?:\.\d+)?)", value)
    if not match or float(match[2]) == 0 or float(match[1]) == 0:
        raise GenerationError(f"aspect_ratio must look like 16:9, not {value!r}")
    return float(match[1]) / float(match[2])


def _even(value: float) -> int:
    return max(2, 2 * round(value / 2))
