"""The ``motion-video`` engine's video edit mode: regrade and retime a clip, checked with PyAV."""

from __future__ import annotations

import io

import av
import numpy as np
import pytest
from PIL import Image, ImageDraw

from hyperlocal.engines.base import EngineContext, GenerationRequest, MediaInput, MediaKind
from hyperlocal.engines.builtin.video import MotionVideoEngine, create
from hyperlocal.errors import GenerationError
from hyperlocal.settings import Settings
from tests.engines.test_video_engine import Frame, Progress, decode, media, request


@pytest.fixture
def engine() -> MotionVideoEngine:
    return create(EngineContext(settings=Settings()))


def clip_mp4(seconds: float = 1.0, size: tuple[int, int] = (320, 240), tone: bool = True) -> bytes:
    """A yellow ball rolling right on blue, with a 440 Hz tone: a clip whose order is visible."""
    buffer = io.BytesIO()
    count = round(seconds * 24)
    with av.open(buffer, "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=24)
        stream.width, stream.height = size
        stream.pix_fmt = "yuv420p"
        sound = container.add_stream("aac", rate=48000, layout="mono") if tone else None
        for index in range(count):
            image = Image.new("RGB", size, (30, 60, 140))
            x = 10 + index * (size[0] - 80) // count
            ImageDraw.Draw(image).ellipse((x, 80, x + 60, 140), fill=(250, 210, 40))
            frame = av.VideoFrame.from_ndarray(np.asarray(image), format="rgb24")
            frame.pts = index
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
        if sound is not None:
            _write_tone(container, sound, seconds)
    return buffer.getvalue()


def _write_tone(
    container: av.container.OutputContainer, stream: av.AudioStream, seconds: float
) -> None:
    t = np.arange(int(seconds * 48000)) / 48000
    samples = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    for start in range(0, len(samples), 1024):
        frame = av.AudioFrame.from_ndarray(
            samples[None, start : start + 1024], format="fltp", layout="mono"
        )
        frame.sample_rate, frame.pts = 48000, start
        container.mux(stream.encode(frame))
    container.mux(stream.encode(None))


def edit(prompt: str, video: bytes | MediaInput) -> GenerationRequest:
    """A request to grok-imagine-video-edit, the catalogue's video edit model."""
    given = video if isinstance(video, MediaInput) else media("video", MediaKind.VIDEO, video)
    return request({"prompt": prompt}, {"video": [given]}, model="grok-imagine-video-edit")


def ball_x(frame: Frame) -> float:
    yellow = (frame[..., 0] > 180) & (frame[..., 2] < 120)
    return float(np.nonzero(yellow)[1].mean())


async def test_video_edit_grades_and_reverses_the_clip(engine: MotionVideoEngine) -> None:
    prompt = "make it black and white and play it in reverse"
    result = await engine.generate(edit(prompt, clip_mp4()), Progress())
    video = decode(result)
    assert result.extra["grade"] == "black-and-white"
    assert result.extra["timing"] == "reversed"
    assert video.size == (320, 240)
    assert video.seconds == pytest.approx(1.0, rel=0.1)
    spread = np.ptp(video.frames[10].astype(np.int16), axis=2)
    assert spread.mean() < 4  # grey: R, G and B agree
    # Grey now, so find the ball by brightness: it starts on the right and rolls left.
    bright = [float(np.nonzero(f.mean(axis=2) > 150)[1].mean()) for f in video.frames[::23]]
    assert bright[0] > bright[1] + 100
    assert video.audio_codec == "aac"


async def test_video_edit_speed_words_change_the_length(engine: MotionVideoEngine) -> None:
    clip = clip_mp4(tone=False)
    slow = await engine.generate(edit("sepia slow motion", clip), Progress())
    fast = await engine.generate(edit("speed it up", clip), Progress())
    assert decode(slow).seconds == pytest.approx(2.0, rel=0.1)
    assert decode(fast).seconds == pytest.approx(0.5, rel=0.15)
    assert slow.extra["grade"] == "sepia"
    sepia = decode(slow).frames[5].reshape(-1, 3).mean(axis=0)
    assert sepia[0] > sepia[2]  # warm, where the source was blue


async def test_video_edit_without_style_words_says_it_used_the_default(
    engine: MotionVideoEngine,
) -> None:
    result = await engine.generate(edit("add a dragon", clip_mp4(tone=False)), Progress())
    assert result.extra["grade"] == "cinematic (default)"
    assert "not added or removed" in str(result.extra["note"])
    assert ball_x(decode(result).frames[0]) < ball_x(decode(result).frames[-1])


async def test_an_undecodable_video_is_a_generation_error(engine: MotionVideoEngine) -> None:
    broken = MediaInput(
        "video", MediaKind.VIDEO, "video/mp4", b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 64, "data:"
    )
    with pytest.raises(GenerationError, match="video"):
        await engine.generate(edit("noir", broken), Progress())
