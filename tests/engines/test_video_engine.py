"""The ``motion-video`` engine end to end, checked with an independent decoder (PyAV)."""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any

import av
import numpy as np
import pytest
import soundfile  # type: ignore[import-untyped]
from numpy.typing import NDArray
from PIL import Image, ImageDraw

from hyperlocal.engines.base import (
    Category,
    Engine,
    EngineContext,
    GenerationRequest,
    GenerationResult,
    MediaInput,
    MediaKind,
)
from hyperlocal.engines.builtin.video import MotionVideoEngine, create
from hyperlocal.errors import GenerationError
from hyperlocal.inputs import check_media
from hyperlocal.settings import Settings

Frame = NDArray[np.uint8]


class Progress:
    def __init__(self) -> None:
        self.calls: list[tuple[float, str | None]] = []

    async def __call__(self, fraction: float, message: str | None) -> None:
        self.calls.append((fraction, message))


@dataclass
class Decoded:
    codec: str
    size: tuple[int, int]
    seconds: float
    frames: list[Frame]
    audio_codec: str | None
    audio_seconds: float | None


@pytest.fixture
def engine() -> MotionVideoEngine:
    return create(EngineContext(settings=Settings()))


def media(field: str, kind: MediaKind, data: bytes) -> MediaInput:
    """Checked the way the request pipeline checks fetched media before an engine sees it."""
    return MediaInput(field, kind, check_media(field, kind, data), data, source="data:")


def scene_png(
    size: tuple[int, int] = (640, 480), subject: tuple[int, int, int] = (210, 50, 40)
) -> bytes:
    """A striped backdrop with a round subject: something for parallax to separate."""
    image = Image.new("RGB", size, (196, 214, 236))
    draw = ImageDraw.Draw(image)
    for x in range(0, size[0], size[0] // 16):
        draw.line((x, 0, x, size[1]), fill=(120, 140, 180), width=3)
    w, h = size
    draw.ellipse((w * 0.35, h * 0.25, w * 0.65, h * 0.8), fill=subject)
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def flat_png(colour: tuple[int, int, int], size: tuple[int, int] = (400, 300)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, "PNG")
    return buffer.getvalue()


def request(
    params: Mapping[str, Any],  # test literals; the engine sees them as validated inputs
    files: Mapping[str, Sequence[MediaInput]] | None = None,
    model: str = "seedance-2-0-i2v",
) -> GenerationRequest:
    return GenerationRequest(
        job_id="job_video",
        model=model,
        category=Category.VIDEO,
        params={"prompt": "a red balloon", **params},
        media=files or {},
    )


def image_input(data: bytes | None = None, field: str = "image") -> dict[str, list[MediaInput]]:
    return {field: [media(field, MediaKind.IMAGE, data or scene_png())]}


def decode(result: GenerationResult) -> Decoded:
    (artifact,) = result.artifacts
    assert (artifact.content_type, artifact.extension) == ("video/mp4", "mp4")
    with av.open(io.BytesIO(artifact.data), mode="r") as container:
        video = container.streams.video[0]
        audio = container.streams.audio[0] if container.streams.audio else None
        seconds = float(video.duration * (video.time_base or 0)) if video.duration else 0.0
        audio_seconds = (
            float(audio.duration * (audio.time_base or 0)) if audio and audio.duration else None
        )
        info = (video.codec_context.name, (video.width, video.height), seconds)
        audio_codec = audio.codec_context.name if audio else None
        frames = [
            np.asarray(f.to_ndarray(format="rgb24"), np.uint8) for f in container.decode(video=0)
        ]
    return Decoded(*info, frames, audio_codec, audio_seconds)


def change(a: Frame, b: Frame) -> float:
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


async def test_factory_is_registered_and_builds_an_engine(engine: MotionVideoEngine) -> None:
    (entry,) = [e for e in entry_points(group="hyperlocal.engines") if e.name == "motion-video"]
    assert entry.load() is create
    assert isinstance(engine, Engine)


async def test_image_to_video_is_h264_of_the_asked_length_and_moves(
    engine: MotionVideoEngine,
) -> None:
    params = {"duration": 2, "resolution": "480p", "aspect_ratio": "16:9"}
    result = await engine.generate(request(params, image_input()), Progress())
    video = decode(result)
    assert video.codec == "h264"
    assert video.size == (854, 480)
    assert video.seconds == pytest.approx(2.0, rel=0.1)
    assert result.duration == pytest.approx(2.0, rel=0.1)
    assert len(video.frames) == 48  # 24 fps
    assert change(video.frames[0], video.frames[-1]) > 8
    assert video.audio_codec is None
    assert result.extra["camera"] == "ken-burns"
    assert result.extra["depth"] == "2-layer parallax"


async def test_the_first_frame_is_the_input_image(engine: MotionVideoEngine) -> None:
    source = np.asarray(Image.open(io.BytesIO(scene_png((854, 480)))).convert("RGB"))
    params = {"duration": 1, "resolution": "480p", "aspect_ratio": "16:9"}
    video = decode(
        await engine.generate(request(params, image_input(scene_png((854, 480)))), Progress())
    )
    assert change(video.frames[0], source) < 6  # compression, and a soft subject edge
    assert change(video.frames[-1], source) > 10


@pytest.mark.parametrize(
    ("ratio", "resolution", "size"),
    [
        ("9:16", "480p", (480, 854)),
        ("1:1", "480p", (480, 480)),
        ("4:3", "720p", (960, 720)),
        ("3:4", "480p", (480, 640)),
    ],
)
async def test_aspect_ratio_and_resolution_set_the_frame(
    engine: MotionVideoEngine, ratio: str, resolution: str, size: tuple[int, int]
) -> None:
    params = {"duration": 1, "resolution": resolution, "aspect_ratio": ratio}
    video = decode(await engine.generate(request(params, image_input()), Progress()))
    assert video.size == size


async def test_without_aspect_ratio_the_image_keeps_its_shape(engine: MotionVideoEngine) -> None:
    params = {"duration": 1, "resolution": "480p"}
    video = decode(
        await engine.generate(request(params, image_input(scene_png((600, 400)))), Progress())
    )
    assert video.size == (720, 480)


@pytest.mark.parametrize(
    ("prompt", "move"),
    [("slow pan left over the hills", "pan-left"), ("zoom out to reveal the city", "zoom-out")],
)
async def test_the_prompt_picks_the_camera_move(
    engine: MotionVideoEngine, prompt: str, move: str
) -> None:
    params = {"prompt": prompt, "duration": 1, "resolution": "480p"}
    result = await engine.generate(request(params, image_input()), Progress())
    assert result.extra["camera"] == move
    video = decode(result)
    assert change(video.frames[0], video.frames[-1]) > 5


async def test_text_to_video_moves_over_a_preview_still_with_sound(
    engine: MotionVideoEngine,
) -> None:
    params = {
        "prompt": "a castle at sunset",
        "duration": 2,
        "aspect_ratio": "9:16",
        "resolution": "480p",
        "generate_audio": True,
    }
    result = await engine.generate(request(params, model="seedance-2-0-t2v"), Progress())
    video = decode(result)
    assert result.extra["mode"] == "text-to-video (preview still)"
    assert video.size == (480, 854)
    assert change(video.frames[0], video.frames[-1]) > 5
    assert video.audio_codec == "aac"
    assert video.audio_seconds == pytest.approx(2.0, rel=0.1)
    assert "ambient" in str(result.extra["audio"])


async def test_the_sound_flag_adds_a_quiet_track(engine: MotionVideoEngine) -> None:
    params = {"duration": 1, "resolution": "480p", "sound": True}
    result = await engine.generate(
        request(params, image_input(), model="kling-3-0-std-i2v"), Progress()
    )
    (artifact,) = result.artifacts
    with av.open(io.BytesIO(artifact.data), mode="r") as container:
        samples = np.concatenate([f.to_ndarray().ravel() for f in container.decode(audio=0)])
    level = float(np.sqrt(np.mean(samples**2)))
    assert 0.001 < level < 0.1  # audible, and quiet


async def test_transition_runs_from_the_start_image_to_the_end_image(
    engine: MotionVideoEngine,
) -> None:
    files = {
        "start_image": [media("start_image", MediaKind.IMAGE, flat_png((220, 30, 30)))],
        "end_image": [media("end_image", MediaKind.IMAGE, flat_png((30, 30, 220)))],
    }
    params = {"prompt": "a smooth morph", "duration": 2, "resolution": "480p"}
    result = await engine.generate(
        request(params, files, model="pixverse-v6-transitions"), Progress()
    )
    video = decode(result)
    assert result.extra["mode"] == "transition"
    first, middle, last = (video.frames[i].reshape(-1, 3).mean(axis=0) for i in (0, 24, -1))
    assert first[0] > 180 and first[2] < 70
    assert last[2] > 180 and last[0] < 70
    assert 60 < middle[0] < 200 or 60 < middle[2] < 200  # mid-dissolve: neither pure colour


async def test_transition_length_defaults_to_five_seconds(engine: MotionVideoEngine) -> None:
    files = {
        "start_image": [media("start_image", MediaKind.IMAGE, flat_png((200, 200, 30)))],
        "end_image": [media("end_image", MediaKind.IMAGE, flat_png((30, 200, 200)))],
    }
    params = {"resolution": "360p"}
    result = await engine.generate(
        request(params, files, model="pixverse-v6-transitions"), Progress()
    )
    assert decode(result).seconds == pytest.approx(5.0, rel=0.1)


def speech_wav(seconds: float = 1.5, rate: int = 16000) -> bytes:
    """Bursts of tone, like syllables: a loudness envelope with clear peaks."""
    t = np.arange(int(seconds * rate)) / rate
    bursts = (np.sin(2 * np.pi * 2.0 * t) > 0).astype(np.float64)
    buffer = io.BytesIO()
    soundfile.write(buffer, 0.4 * np.sin(2 * np.pi * 220 * t) * bursts, rate, format="WAV")
    return buffer.getvalue()


async def test_avatar_moves_with_the_audio_and_carries_it(engine: MotionVideoEngine) -> None:
    files = {
        **image_input(scene_png((480, 640))),
        "audio": [media("audio", MediaKind.AUDIO, speech_wav())],
    }
    result = await engine.generate(
        request({"resolution": "360p"}, files, model="ai-avatar-i2v"), Progress()
    )
    video = decode(result)
    assert result.extra["mode"] == "avatar"
    assert "none" in str(result.extra["lip_sync"])
    assert video.audio_codec == "aac"
    assert video.audio_seconds == pytest.approx(1.5, rel=0.1)
    assert result.duration == pytest.approx(1.5, rel=0.1)
    assert video.seconds == pytest.approx(1.5, rel=0.1)
    steps = [change(a, b) for a, b in zip(video.frames, video.frames[1:], strict=False)]
    assert max(steps) > 0.5


async def test_progress_rises_to_one(engine: MotionVideoEngine) -> None:
    progress = Progress()
    await engine.generate(request({"duration": 1, "resolution": "360p"}, image_input()), progress)
    fractions = [fraction for fraction, _ in progress.calls]
    assert fractions[0] == 0.0
    assert fractions[-1] == 1.0
    assert fractions == sorted(fractions)
    assert any("encoding" in (message or "") for _, message in progress.calls)


async def test_an_unknown_resolution_is_a_generation_error(engine: MotionVideoEngine) -> None:
    with pytest.raises(GenerationError, match="resolution"):
        await engine.generate(request({"resolution": "8k"}, image_input()), Progress())


async def test_five_seconds_of_720p_from_an_image(engine: MotionVideoEngine) -> None:
    """The size a client typically asks for: 1280x720, 120 frames."""
    params = {"duration": 5, "resolution": "720p", "aspect_ratio": "16:9"}
    result = await engine.generate(
        request(params, image_input(scene_png((1600, 1000)))), Progress()
    )
    video = decode(result)
    assert video.size == (1280, 720)
    assert len(video.frames) == 120
    assert video.seconds == pytest.approx(5.0, rel=0.1)
