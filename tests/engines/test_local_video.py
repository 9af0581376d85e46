"""The ``diffusers-video`` adapter, on tiny random AnimateDiff (text) and SVD (image) pipelines
loaded through its real ``DiffusionPipeline.from_pretrained`` path, encoded to real MP4."""

from __future__ import annotations

import io
from collections.abc import Iterator, Mapping, Sequence

import av
import pytest

from hyperlocal.engines.base import (
    Category,
    EngineContext,
    GenerationRequest,
    InputValue,
    MediaInput,
    MediaKind,
)
from hyperlocal.engines.local.video import DiffusersVideoEngine, create, frame_count, video_size
from hyperlocal.errors import GenerationError
from hyperlocal.settings import Settings
from tests.engines.tiny_models import one_torch_thread, tiny_animatediff, tiny_svd
from tests.support import tiny_png

pytest.importorskip("torch")
pytest.importorskip("diffusers")

pytestmark = pytest.mark.filterwarnings(  # diffusers' Euler scheduler vs numpy 2; see image tests
    "ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning"
)


class Progress:
    def __init__(self) -> None:
        self.calls: list[tuple[float, str | None]] = []

    async def __call__(self, fraction: float, message: str | None) -> None:
        self.calls.append((fraction, message))


@pytest.fixture(scope="module", autouse=True)
def _one_thread() -> Iterator[None]:
    with one_torch_thread():
        yield


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> DiffusersVideoEngine:
    root = tmp_path_factory.mktemp("models")
    tiny_animatediff(root / "tiny-animatediff")
    tiny_svd(root / "tiny-svd")
    settings = Settings(_env_file=None, data_dir=root.parent / "data", models_dir=root)  # type: ignore[call-arg]
    return create(EngineContext(settings=settings))


def video_request(
    weights: str,
    params: Mapping[str, InputValue] | None = None,
    *,
    media: Mapping[str, Sequence[MediaInput]] | None = None,
) -> GenerationRequest:
    return GenerationRequest(
        job_id="job_1",
        model="local-video",
        category=Category.VIDEO,
        params={"prompt": "waves on a beach", "size": "96x64", "duration": 0.5, **(params or {})},
        media=media or {},
        options={"weights": weights, "steps": 2, "fps": 8, "guidance": 1.0},
    )


def start_image() -> MediaInput:
    return MediaInput("image", MediaKind.IMAGE, "image/png", tiny_png((200, 80, 20), (90, 60)), "")


def decoded(data: bytes) -> tuple[list[tuple[int, int]], float, str, float]:
    """Each frame's size, the stream's rate, codec and duration in seconds."""
    with av.open(io.BytesIO(data)) as container:
        stream = container.streams.video[0]
        sizes = [(f.width, f.height) for f in container.decode(stream)]
        seconds = float(stream.duration * stream.time_base) if stream.duration else 0.0
        return sizes, float(stream.average_rate or 0), stream.codec_context.name, seconds


async def test_text_to_video_is_an_h264_mp4_of_the_asked_length(
    engine: DiffusersVideoEngine,
) -> None:
    progress = Progress()
    result = await engine.generate(video_request("tiny-animatediff"), progress)
    (artifact,) = result.artifacts
    assert (artifact.content_type, artifact.extension) == ("video/mp4", "mp4")
    sizes, fps, codec, seconds = decoded(artifact.data)
    assert (sizes, fps, codec) == ([(96, 64)] * 4, 8.0, "h264")  # 0.5 s at 8 fps
    assert seconds == pytest.approx(0.5) and result.duration == pytest.approx(0.5)
    assert result.extra["mode"] == "text-to-video"
    assert [f for f, _ in progress.calls][-1] == 1.0


async def test_a_text_model_refuses_an_image_rather_than_ignore_it(
    engine: DiffusersVideoEngine,
) -> None:
    request = video_request("tiny-animatediff", media={"image": [start_image()]})
    with pytest.raises(GenerationError, match="text only"):
        await engine.generate(request, Progress())


async def test_image_to_video_animates_the_source(engine: DiffusersVideoEngine) -> None:
    request = video_request("tiny-svd", {"duration": 0.375}, media={"image": [start_image()]})
    result = await engine.generate(request, Progress())
    sizes, fps, _, _ = decoded(result.artifacts[0].data)
    assert (sizes, fps) == ([(96, 64)] * 3, 8.0)
    assert result.extra["mode"] == "image-to-video"


async def test_an_image_model_without_an_image_says_so(engine: DiffusersVideoEngine) -> None:
    with pytest.raises(GenerationError, match="animates an image"):
        await engine.generate(video_request("tiny-svd"), Progress())


async def test_missing_weights_name_their_folder(engine: DiffusersVideoEngine) -> None:
    with pytest.raises(GenerationError, match=r"'wan2\.1-t2v-1\.3b' are not installed"):
        await engine.generate(video_request("wan2.1-t2v-1.3b"), Progress())


@pytest.mark.parametrize(
    ("seconds", "fps", "options", "frames"),
    [
        (5, 16, {}, 80),
        (5, 16, {"frame_step": 4}, 81),  # Wan: 4n + 1
        (2, 24, {"frame_step": 8}, 49),  # LTX-Video, CogVideoX: 8n + 1
        (10, 16, {"frame_step": 4, "max_frames": 81}, 81),
        (0.01, 8, {}, 2),
    ],
)
def test_frame_counts_follow_the_models_rule(
    seconds: float, fps: int, options: dict[str, InputValue], frames: int
) -> None:
    assert frame_count(seconds, fps, options) == frames


def test_sizes_follow_resolution_and_the_multiple() -> None:
    assert video_size({}, {}, 16 / 9) == (848, 480)  # 480p by default, sides of 16
    assert video_size({"resolution": "720p", "aspect_ratio": "9:16"}, {}, 1.0) == (720, 1280)
    assert video_size({"size": "100x70"}, {"multiple": 32}, 1.0) == (96, 64)
