"""Video edit: the input clip, regraded and retimed as its prompt asks.

What it can honestly do from words alone is whole-frame: colour grades and looks (see
``grades.py``), reversing, and half or double speed. It cannot add, remove or replace objects;
the result's ``extra`` lists exactly what was applied.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from fractions import Fraction

import av
import numpy as np
from PIL import Image

from hyperlocal.engines.base import GenerationRequest, MediaCaps, MediaInput
from hyperlocal.engines.builtin.video.grades import (
    DEFAULT_GRADE,
    Grade,
    apply_grades,
    choose_grades,
)
from hyperlocal.engines.media.bounded import check_frame
from hyperlocal.engines.media.mp4 import Clip
from hyperlocal.engines.media.soundtrack import AudioTrack, decode_audio
from hyperlocal.engines.media.video_spec import text
from hyperlocal.errors import GenerationError

__all__ = ["Timing", "choose_timing", "edit_clip"]

MAX_SECONDS = 30.0  # of input; the hosted edit model takes short clips too
MAX_LONG_SIDE = 1280  # larger inputs are scaled down: the grades gain nothing from 4k
DEFAULT_FPS = Fraction(24)


@dataclass(frozen=True, slots=True)
class Timing:
    reverse: bool = False
    speed: float = 1.0  # 0.5 is slow motion, 2 is double speed

    def describe(self) -> str:
        parts = (["reversed"] if self.reverse else []) + (
            [f"{self.speed:g}x speed"] if self.speed != 1 else []
        )
        return ", ".join(parts) or "unchanged"


@dataclass(frozen=True, slots=True)
class _Probe:
    fps: Fraction
    size: tuple[int, int]  # the even output size
    frames: int  # an estimate: containers do not always know


def choose_timing(prompt: str) -> Timing:
    lowered = prompt.lower()
    reverse = bool(re.search(r"revers|backwards?\b|rewind", lowered))
    if re.search(r"slow.?mo|slow motion|slower|slow(?:s|ed)? down|half.speed", lowered):
        return Timing(reverse, 0.5)
    if re.search(
        r"speed(?:s|ed)?\s+(?:it\s+|this\s+)?up|faster|fast.?forward|time.?lapse|double.speed|\b2x\b",
        lowered,
    ):
        return Timing(reverse, 2.0)
    return Timing(reverse)


def edit_clip(request: GenerationRequest, media: MediaInput) -> Clip:
    prompt = text(request.params, "prompt")
    named = choose_grades(prompt)
    grades, timing = named or [DEFAULT_GRADE], choose_timing(prompt)
    probe = _probe(media, request.caps)
    decoded = _decoded(media, probe, request.caps)
    frames = _retimed(_graded(decoded, grades, probe.size), timing)
    count = max(2, round(probe.frames / timing.speed))
    audio = decode_audio(media.data, media.field, max_seconds=MAX_SECONDS, caps=request.caps)
    facts: dict[str, float | str] = {
        "mode": "video-edit",
        "grade": " + ".join(g.name for g in grades) + ("" if named else " (default)"),
        "timing": timing.describe(),
        "note": "whole-frame grade and retime only; objects are not added or removed",
    }
    if audio is not None:
        facts["audio"] = "kept" if timing == Timing() else "kept, " + timing.describe()
    retimed_audio = _retime_audio(audio, timing) if audio is not None else None
    return Clip(frames, count, probe.size, probe.fps, retimed_audio, facts)


def _probe(media: MediaInput, caps: MediaCaps) -> _Probe:
    try:
        with av.open(io.BytesIO(media.data), mode="r") as container:
            if not container.streams.video:
                raise GenerationError(f"{media.field}: the file has no video stream")
            stream = container.streams.video[0]
            check_frame(stream.width, stream.height, caps, media.field)  # before any decoding
            rate = stream.average_rate or stream.guessed_rate or DEFAULT_FPS
            fps = Fraction(rate).limit_denominator(1001)
            fps = fps if 1 <= fps <= 60 else DEFAULT_FPS
            seconds = (container.duration or 0) / 1_000_000 or stream.frames / fps
            frames = stream.frames or round(seconds * fps)
            return _Probe(
                fps, _even_size(stream.width, stream.height), min(frames, round(MAX_SECONDS * fps))
            )
    except av.FFmpegError as exc:
        raise GenerationError(f"{media.field}: the video could not be decoded") from exc


def _even_size(width: int, height: int) -> tuple[int, int]:
    scale = min(1.0, MAX_LONG_SIDE / max(width, height))
    return max(2, round(width * scale / 2) * 2), max(2, round(height * scale / 2) * 2)


def _decoded(media: MediaInput, probe: _Probe, caps: MediaCaps) -> Iterator[Image.Image]:
    limit = min(round(MAX_SECONDS * probe.fps), caps.video_frames)
    with av.open(io.BytesIO(media.data), mode="r") as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        for index, frame in enumerate(container.decode(stream)):
            if index >= limit:
                break
            check_frame(frame.width, frame.height, caps, media.field)  # a size may change midway
            yield Image.fromarray(frame.to_ndarray(format="rgb24"))


def _graded(
    frames: Iterable[Image.Image], grades: list[Grade], size: tuple[int, int]
) -> Iterator[Image.Image]:
    for frame in frames:
        fitted = frame if frame.size == size else frame.resize(size, Image.Resampling.BILINEAR)
        yield apply_grades(fitted.convert("RGB"), grades)


def _retimed(frames: Iterator[Image.Image], timing: Timing) -> Iterator[Image.Image]:
    if timing.reverse:
        frames = _reversed(frames)
    if timing.speed > 1:
        return (frame for index, frame in enumerate(frames) if index % 2 == 0)
    if timing.speed < 1:
        return _doubled(frames)
    return frames


def _reversed(frames: Iterator[Image.Image]) -> Iterator[Image.Image]:
    """Buffers the clip as JPEG (about 100 kB a 720p frame, not 2.7 MB raw), then plays back."""
    stored: list[bytes] = []
    for frame in frames:
        buffer = io.BytesIO()
        frame.save(buffer, "JPEG", quality=93)
        stored.append(buffer.getvalue())
    for data in reversed(stored):
        with Image.open(io.BytesIO(data)) as opened:
            yield opened.convert("RGB")


def _doubled(frames: Iterator[Image.Image]) -> Iterator[Image.Image]:
    """Half speed with a blended in-between frame, smoother than showing each frame twice."""
    previous: Image.Image | None = None
    for frame in frames:
        if previous is not None:
            yield previous
            yield Image.blend(previous, frame, 0.5)
        previous = frame
    if previous is not None:
        yield previous
        yield previous


def _retime_audio(track: AudioTrack, timing: Timing) -> AudioTrack:
    """Reversed and resampled with the picture; the pitch moves with the speed, like tape."""
    samples = track.samples[:, ::-1] if timing.reverse else track.samples
    if timing.speed != 1:
        length = max(1, round(samples.shape[1] / timing.speed))
        where = np.linspace(0, samples.shape[1] - 1, length)
        samples = np.stack([np.interp(where, np.arange(samples.shape[1]), ch) for ch in samples])
    return AudioTrack(np.ascontiguousarray(samples, np.float32), track.rate)
