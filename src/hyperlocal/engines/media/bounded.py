"""Reading untrusted audio and video within a model's caps (:class:`MediaCaps`).

A small file can hold hours of decoded audio (a FLAC of silence compresses a thousandfold), so
nothing here decodes before the container's headers are checked against the caps: length,
sample rate, channels and the decoded bytes they imply for audio; length, frames and pixels for
video. Headers can lie or say nothing, so decoding then runs in chunks, counting as it goes,
and stops with a :class:`MediaInputError` the moment the count passes the caps or, by more than
``SLACK_S``, the length the headers stated. Audio is mixed to mono and resampled to the
caller's rate chunk by chunk, so only the result is ever held whole.

PyAV (FFmpeg) reads every container here. It and numpy are imported on first use: the submit
path of the API server calls these too.
"""

from __future__ import annotations

import io
import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

from hyperlocal.engines.base import MediaCaps
from hyperlocal.errors import MediaInputError

if TYPE_CHECKING:
    import av
    import numpy as np
    import numpy.typing as npt

__all__ = [
    "SLACK_S",
    "AudioHeader",
    "VideoHeader",
    "audio_length",
    "check_frame",
    "read_audio",
    "video_length",
]

SLACK_S = 1.0
"""How much longer than its headers state a file may decode: rounding, a codec's padding."""

_FLOAT_BYTES = 4
_DEFAULT_CAPS = MediaCaps()


@dataclass(frozen=True, slots=True)
class AudioHeader:
    seconds: float | None  # None: the headers do not say
    rate: int
    channels: int


@dataclass(frozen=True, slots=True)
class VideoHeader:
    seconds: float | None
    frames: int | None
    width: int
    height: int


# --- audio ------------------------------------------------------------------------------------


def audio_length(data: bytes, field: str, caps: MediaCaps = _DEFAULT_CAPS) -> float:
    """The length of the audio in ``data``, in seconds, once checked against ``caps``: its
    headers' length, or where they do not say, a count of the samples decoded (nothing kept)."""
    with _opened(data, field, "audio") as container:
        stream = _audio_stream(container, field)
        header = _audio_header(container, stream)
        _check_audio(header, caps, field)
        if header.seconds is not None:
            return header.seconds
        tally = _Tally(header, caps, field)
        for frame in container.decode(stream):
            tally.add(frame)
        tally.check_total()
        return tally.seconds


def read_audio(
    data: bytes,
    field: str,
    caps: MediaCaps = _DEFAULT_CAPS,
    *,
    rate: int | None = None,
    first_s: float | None = None,
) -> tuple[npt.NDArray[np.float32], int] | None:
    """The first audio stream of ``data`` as mono float32 at ``rate`` (default: its own), and
    that rate; None when ``data`` has no audio stream. Only the first ``first_s`` seconds are
    decoded when given; the whole stream otherwise, within ``caps``."""
    with _opened(data, field, "audio") as container:
        if not container.streams.audio:
            return None
        stream = container.streams.audio[0]
        header = _audio_header(container, stream)
        _check_audio(header, caps, field)
        out_rate = rate or header.rate
        if out_rate <= 0:
            raise MediaInputError(field, "could not decode the audio")
        return _decode_audio(container, stream, _Tally(header, caps, field), out_rate, first_s)


def _decode_audio(
    container: av.container.InputContainer,
    stream: av.AudioStream,
    tally: _Tally,
    rate: int,
    first_s: float | None,
) -> tuple[npt.NDArray[np.float32], int]:
    import av

    # FFmpeg frames come planar or packed, int or float: let it mix them down for us
    mixer = av.AudioResampler(format="flt", layout="mono", rate=rate)
    out = _Samples(rate, first_s or tally.expected_s)
    for frame in container.decode(stream):
        tally.add(frame)
        out.extend(mixer.resample(frame))
        if first_s is not None and tally.seconds >= first_s:
            return out.first(first_s), rate
    out.extend(mixer.resample(None))
    return out.first(first_s), rate


def _audio_stream(container: av.container.InputContainer, field: str) -> av.AudioStream:
    if not container.streams.audio:
        raise MediaInputError(field, "the file has no audio stream")
    return container.streams.audio[0]


def _audio_header(container: av.container.InputContainer, stream: av.AudioStream) -> AudioHeader:
    context = stream.codec_context
    return AudioHeader(
        _stated_seconds(container, stream), int(context.sample_rate or 0), context.channels
    )


def _check_audio(header: AudioHeader, caps: MediaCaps, field: str) -> None:
    if header.rate > caps.audio_sample_rate:
        raise MediaInputError(field, f"sample rate over {caps.audio_sample_rate} Hz")
    if header.channels > caps.audio_channels:
        raise MediaInputError(field, f"more than {caps.audio_channels} channels")
    if header.seconds is None:
        return  # counted while decoding instead
    if header.seconds > caps.audio_seconds:
        raise _too_long(field, header.seconds, caps.audio_seconds)
    decoded = header.seconds * header.rate * header.channels * _FLOAT_BYTES
    if decoded > caps.audio_decoded_bytes:
        raise _too_big(field, caps.audio_decoded_bytes)


class _Tally:
    """Counts what the decoder has produced, and stops it past the caps or the headers."""

    def __init__(self, header: AudioHeader, caps: MediaCaps, field: str) -> None:
        self.header, self.caps, self.field = header, caps, field
        # The headers were checked against the caps already; the counts get the slack.
        stated = math.inf if header.seconds is None else header.seconds
        self.limit_s = min(caps.audio_seconds, stated) + SLACK_S
        slack_bytes = SLACK_S * header.rate * header.channels * _FLOAT_BYTES
        self.limit_bytes = caps.audio_decoded_bytes + slack_bytes
        self.bytes = 0
        self.samples: dict[int, int] = {}  # by sample rate: whole numbers, summed exactly

    @property
    def seconds(self) -> float:
        return sum(count / rate for rate, count in self.samples.items())

    @property
    def expected_s(self) -> float:
        return self.limit_s if self.header.seconds is not None else 60.0

    def add(self, frame: av.AudioFrame) -> None:
        if frame.sample_rate <= 0 or frame.sample_rate > self.caps.audio_sample_rate:
            raise MediaInputError(self.field, f"sample rate over {self.caps.audio_sample_rate} Hz")
        self.samples[frame.sample_rate] = self.samples.get(frame.sample_rate, 0) + frame.samples
        self.bytes += frame.samples * len(frame.layout.channels) * _FLOAT_BYTES
        if self.seconds > self.limit_s:
            raise self._over()
        if self.bytes > self.limit_bytes:
            raise _too_big(self.field, self.caps.audio_decoded_bytes)

    def check_total(self) -> None:
        """At the end of a count: within the cap itself, not only within its slack."""
        if self.seconds > self.caps.audio_seconds:
            raise self._over()

    def _over(self) -> MediaInputError:
        stated = self.header.seconds
        if stated is not None:
            return MediaInputError(
                self.field, f"holds more audio than the {stated:.1f} s its header states"
            )
        return MediaInputError(
            self.field, f"longer than {self.caps.audio_seconds:g} s, the most this model takes"
        )


class _Samples:
    """A growing mono buffer, sized for the expected length up front (pages that are never
    written are never resident), doubled when a stream runs past it."""

    def __init__(self, rate: int, expected_s: float) -> None:
        import numpy as np

        self.rate, self.size = rate, 0
        self.data = np.empty(int(expected_s * rate) + rate, dtype=np.float32)

    def extend(self, frames: list[av.AudioFrame]) -> None:
        for frame in frames:
            chunk = frame.to_ndarray().reshape(-1)
            if self.size + chunk.size > self.data.size:
                self._grow(self.size + chunk.size)
            self.data[self.size : self.size + chunk.size] = chunk
            self.size += chunk.size

    def _grow(self, needed: int) -> None:
        import numpy as np

        grown = np.empty(max(2 * self.data.size, needed), dtype=np.float32)
        grown[: self.size] = self.data[: self.size]
        self.data = grown

    def first(self, seconds: float | None) -> npt.NDArray[np.float32]:
        end = self.size if seconds is None else min(self.size, int(seconds * self.rate))
        return self.data[:end].copy() if end < self.data.size // 2 else self.data[:end]


# --- video ------------------------------------------------------------------------------------


def video_length(data: bytes, field: str, caps: MediaCaps = _DEFAULT_CAPS) -> float | None:
    """The length of the video in ``data`` by its headers, once they are checked against
    ``caps``; None when they do not say (a decoder still stops at the caps)."""
    with _opened(data, field, "video") as container:
        if not container.streams.video:
            raise MediaInputError(field, "the file has no video stream")
        header = _video_header(container, container.streams.video[0])
    check_frame(header.width, header.height, caps, field)
    if header.seconds is not None and header.seconds > caps.video_seconds:
        raise _too_long(field, header.seconds, caps.video_seconds)
    if header.frames is not None and header.frames > caps.video_frames:
        raise MediaInputError(field, f"more than {caps.video_frames} frames")
    return header.seconds


def check_frame(width: int, height: int, caps: MediaCaps, field: str) -> None:
    """Refuse a video frame over ``caps.video_pixels``: call it for each decoded frame too,
    since a stream may change its size midway."""
    if width * height > caps.video_pixels:
        raise MediaInputError(field, f"video frames larger than {caps.video_pixels} pixels")


def _video_header(container: av.container.InputContainer, stream: av.VideoStream) -> VideoHeader:
    frames = int(stream.frames) or None
    return VideoHeader(
        _stated_seconds(container, stream), frames, stream.width or 0, stream.height or 0
    )


# --- shared -----------------------------------------------------------------------------------


def _stated_seconds(
    container: av.container.InputContainer, stream: av.stream.Stream
) -> float | None:
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    if container.duration:
        return float(container.duration) / 1_000_000  # AV_TIME_BASE
    return None


@contextmanager
def _opened(data: bytes, field: str, kind: str) -> Iterator[av.container.InputContainer]:
    """``av.open`` on the bytes; FFmpeg's errors, opening or decoding, become "could not
    decode" for ``field``."""
    import av

    try:
        with av.open(io.BytesIO(data), mode="r") as container:
            yield container
    except (av.FFmpegError, IndexError, ValueError) as exc:
        raise MediaInputError(field, f"could not decode the {kind}") from exc


def _too_long(field: str, seconds: float, cap: float) -> MediaInputError:
    return MediaInputError(field, f"{seconds:.0f} s long; the most this model takes is {cap:g} s")


def _too_big(field: str, cap: int) -> MediaInputError:
    return MediaInputError(field, f"decodes to more than {cap / 1e9:g} GB of samples")
