"""The caps on input media, one by one, on real containers (``engines.media.bounded``).

The compressed bombs themselves, their memory and their charges, are tested against a real
server in ``tests/reliability/test_media_bounds.py``.
"""

from __future__ import annotations

import io

import av
import numpy as np
import pytest

from hyperlocal.engines.base import MediaCaps
from hyperlocal.engines.media.audio_codec import decode
from hyperlocal.engines.media.bounded import audio_length, video_length
from hyperlocal.errors import MediaInputError
from tests.flac import silent_flac


def _mp4(seconds: float, size: tuple[int, int] = (160, 96), fps: int = 12) -> bytes:
    buf = io.BytesIO()
    with av.open(buf, "w", format="mp4") as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = *size, "yuv420p"
        black = np.zeros((size[1], size[0], 3), dtype=np.uint8)
        for _ in range(round(fps * seconds)):
            out.mux(stream.encode(av.VideoFrame.from_ndarray(black, format="rgb24")))
        out.mux(stream.encode())
    return buf.getvalue()


def test_audio_caps_are_checked_from_the_header() -> None:
    flac = silent_flac(10, 8000, channels=2)
    assert audio_length(flac, "audio") == 10.0
    refusals = {
        MediaCaps(audio_seconds=9): "10 s long; the most this model takes is 9 s",
        MediaCaps(audio_channels=1): "more than 1 channels",
        MediaCaps(audio_sample_rate=4000): "sample rate over 4000 Hz",
        MediaCaps(audio_decoded_bytes=600_000): "decodes to more than 0.0006 GB",
    }
    for caps, message in refusals.items():
        with pytest.raises(MediaInputError, match=message):
            audio_length(flac, "audio", caps)


def test_an_unstated_length_is_counted_and_capped() -> None:
    assert audio_length(silent_flac(90, 8000, stated=0), "audio") == 90.0
    with pytest.raises(MediaInputError, match="longer than 60 s"):
        audio_length(silent_flac(90, 8000, stated=0), "audio", MediaCaps(audio_seconds=60))


def test_decoding_goes_to_the_asked_rate_and_stops_where_asked() -> None:
    flac = silent_flac(40, 8000, channels=2)
    audio = decode(flac, rate=16000)
    assert (audio.rate, audio.samples.shape, audio.samples.dtype) == (16000, (640_000,), np.float32)
    start = decode(flac, rate=16000, first_s=2.5)
    assert start.samples.shape == (40_000,)


def test_video_caps_are_checked_from_the_header() -> None:
    clip = _mp4(2.0)
    assert video_length(clip, "video") == pytest.approx(2.0, abs=0.1)
    refusals = {
        MediaCaps(video_seconds=1): "the most this model takes is 1 s",
        MediaCaps(video_frames=10): "more than 10 frames",
        MediaCaps(video_pixels=160 * 96 - 1): "larger than 15359 pixels",
    }
    for caps, message in refusals.items():
        with pytest.raises(MediaInputError, match=message):
            video_length(clip, "video", caps)
