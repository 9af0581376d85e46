"""The built-in ``preview`` image engine, driven through its public Engine interface."""

from __future__ import annotations

import base64
import io
from collections.abc import Mapping, Sequence
from importlib.metadata import entry_points

import pytest
from PIL import Image, ImageChops, ImageStat

from hyperlocal.engines.base import (
    Artifact,
    Category,
    Engine,
    EngineContext,
    GenerationRequest,
    InputValue,
    MediaInput,
    MediaKind,
)
from hyperlocal.engines.builtin.image.preview import PreviewImageEngine, create
from hyperlocal.errors import GenerationError
from hyperlocal.inputs import check_media
from hyperlocal.inputs.datauri import decode_data_uri
from hyperlocal.settings import Settings

RATIOS = ["1:1", "3:2", "2:3", "3:4", "4:3", "4:5", "5:4", "9:16", "16:9", "21:9"]


class Progress:
    def __init__(self) -> None:
        self.calls: list[tuple[float, str | None]] = []

    async def __call__(self, fraction: float, message: str | None) -> None:
        self.calls.append((fraction, message))


@pytest.fixture
def engine() -> PreviewImageEngine:
    return create(EngineContext(settings=Settings()))


def image_request(
    params: Mapping[str, InputValue] | None = None,
    *,
    model: str = "nano-banana-t2i",
    category: Category = Category.IMAGE,
    media: Mapping[str, Sequence[MediaInput]] | None = None,
) -> GenerationRequest:
    return GenerationRequest(
        job_id="job_1",
        model=model,
        category=category,
        params={"prompt": "A golden sunset over rolling hills", **(params or {})},
        media=media or {},
    )


def png_data_uri(colour: tuple[int, int, int], size: tuple[int, int] = (300, 200)) -> str:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, "PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def media_from_uri(uri: str) -> MediaInput:
    """Decodes and checks ``uri`` as the request pipeline does before an engine sees it."""
    data = decode_data_uri("images", uri, Settings().fetch_max_bytes)
    content_type = check_media("images", MediaKind.IMAGE, data)
    return MediaInput("images", MediaKind.IMAGE, content_type, data, source="data:")


def edit_request(params: Mapping[str, InputValue], *sources: MediaInput) -> GenerationRequest:
    return image_request(
        {"prompt": "Make it look like autumn", **params},
        model="nano-banana-edit",
        category=Category.IMAGE_EDIT,
        media={"images": sources},
    )


async def run(engine: PreviewImageEngine, request: GenerationRequest) -> Artifact:
    result = await engine.generate(request, Progress())
    assert len(result.artifacts) == 1
    return result.artifacts[0]


def opened(artifact: Artifact) -> Image.Image:
    image = Image.open(io.BytesIO(artifact.data))
    image.load()
    return image


def test_factory_is_registered_and_builds_an_engine(engine: PreviewImageEngine) -> None:
    (entry,) = [e for e in entry_points(group="hyperlocal.engines") if e.name == "preview-image"]
    assert entry.load() is create
    assert isinstance(engine, Engine)


async def test_default_output_is_a_square_png(engine: PreviewImageEngine) -> None:
    artifact = await run(engine, image_request())
    image = opened(artifact)
    assert (artifact.content_type, artifact.extension) == ("image/png", "png")
    assert (image.format, image.mode, image.size) == ("PNG", "RGB", (1024, 1024))


@pytest.mark.parametrize("ratio", RATIOS)
async def test_aspect_ratio_is_kept_with_a_long_side_of_1024(
    engine: PreviewImageEngine, ratio: str
) -> None:
    width, height = opened(await run(engine, image_request({"aspect_ratio": ratio}))).size
    rw, rh = (int(v) for v in ratio.split(":"))
    assert max(width, height) == 1024
    assert width % 2 == 0 and height % 2 == 0
    assert width / height == pytest.approx(rw / rh, rel=0.01)


@pytest.mark.parametrize("size", ["1024x1792", "1792x1024", "1536x1024"])
async def test_size_wins_over_aspect_ratio(engine: PreviewImageEngine, size: str) -> None:
    request = image_request({"size": size, "aspect_ratio": "1:1"})
    width, height = opened(await run(engine, request)).size
    assert f"{width}x{height}" == size


async def test_jpeg_output(engine: PreviewImageEngine) -> None:
    artifact = await run(engine, image_request({"output_format": "jpeg"}))
    assert (artifact.content_type, artifact.extension) == ("image/jpeg", "jpg")
    assert opened(artifact).format == "JPEG"


async def test_same_request_gives_the_same_bytes(engine: PreviewImageEngine) -> None:
    first = await run(engine, image_request({"aspect_ratio": "16:9"}))
    second = await run(engine, image_request({"aspect_ratio": "16:9"}))
    assert first.data == second.data


async def test_a_different_prompt_or_model_gives_different_bytes(
    engine: PreviewImageEngine,
) -> None:
    base = await run(engine, image_request())
    other_prompt = await run(engine, image_request({"prompt": "A forest at night"}))
    other_model = await run(engine, image_request(model="flux-1-dev"))
    assert len({base.data, other_prompt.data, other_model.data}) == 3


@pytest.mark.parametrize(
    "prompt",
    [
        "A golden sunset over rolling hills",
        "A misty pine forest",
        "A neon night city skyline",
        "Calm ocean waves",
        "a cat in a hat",
        "",
        "word " * 1000,
        "https://example.com/" + "x" * 400,
    ],
)
async def test_the_image_is_not_a_flat_colour(engine: PreviewImageEngine, prompt: str) -> None:
    image = opened(await run(engine, image_request({"prompt": prompt})))
    assert ImageStat.Stat(image.convert("L")).stddev[0] > 12


async def test_progress_starts_at_zero_and_ends_at_one(engine: PreviewImageEngine) -> None:
    progress = Progress()
    await engine.generate(image_request(), progress)
    fractions = [fraction for fraction, _ in progress.calls]
    assert fractions[0] == 0.0
    assert fractions[-1] == 1.0
    assert fractions == sorted(fractions)


async def test_edit_keeps_the_source_visible(engine: PreviewImageEngine) -> None:
    red = media_from_uri(png_data_uri((220, 20, 30)))
    image = opened(await run(engine, edit_request({"aspect_ratio": "1:1"}, red)))
    width, height = image.size
    centre = image.crop((width * 3 // 8, height * 3 // 8, width * 5 // 8, height * 5 // 8))
    r, g, b = ImageStat.Stat(centre).mean
    assert r > 200 and g < 40 and b < 50


async def test_edit_without_aspect_ratio_keeps_the_source_shape(
    engine: PreviewImageEngine,
) -> None:
    source = media_from_uri(png_data_uri((20, 120, 220), size=(300, 200)))
    width, height = opened(await run(engine, edit_request({}, source))).size
    assert width == 1024
    assert width / height == pytest.approx(1.5, rel=0.01)


@pytest.mark.parametrize(("resolution", "side"), [("1k", 1024), ("2k", 2048), ("4k", 4096)])
async def test_edit_resolution_sets_the_long_side(
    engine: PreviewImageEngine, resolution: str, side: int
) -> None:
    source = media_from_uri(png_data_uri((20, 120, 220)))
    request = edit_request({"resolution": resolution, "aspect_ratio": "9:16"}, source)
    width, height = opened(await run(engine, request)).size
    assert height == side
    assert width / height == pytest.approx(9 / 16, rel=0.01)


async def test_any_request_with_a_source_image_is_an_edit(engine: PreviewImageEngine) -> None:
    red = media_from_uri(png_data_uri((220, 20, 30)))
    request = image_request({"aspect_ratio": "1:1"}, media={"image": [red]})
    image = opened(await run(engine, request))
    r, g, _ = ImageStat.Stat(image.crop((448, 448, 576, 576))).mean
    assert r > 200 and g < 40


async def test_extra_sources_appear_as_thumbnails(engine: PreviewImageEngine) -> None:
    red = media_from_uri(png_data_uri((220, 20, 30)))
    blue = media_from_uri(png_data_uri((20, 40, 230)))
    image = opened(await run(engine, edit_request({"aspect_ratio": "1:1"}, red, blue)))
    r, _, b = image.crop((0, 0, image.width // 3, image.height // 4)).split()
    bluish = ImageChops.multiply(
        b.point(lambda v: 255 * (v > 200)), r.point(lambda v: 255 * (v < 60))
    )
    assert bluish.histogram()[255] > 1000


async def test_a_transparent_source_is_flattened_onto_white(engine: PreviewImageEngine) -> None:
    buffer = io.BytesIO()
    Image.new("RGBA", (200, 200), (0, 0, 0, 0)).save(buffer, "PNG")
    clear = MediaInput("images", MediaKind.IMAGE, "image/png", buffer.getvalue(), "data:")
    image = opened(await run(engine, edit_request({}, clear)))
    assert min(ImageStat.Stat(image.crop((448, 448, 576, 576))).mean) > 245


async def test_a_corrupt_source_raises_generation_error(engine: PreviewImageEngine) -> None:
    broken = MediaInput("images", MediaKind.IMAGE, "image/png", b"\x89PNG not really", "data:")
    with pytest.raises(GenerationError, match="images"):
        await run(engine, edit_request({}, broken))


async def test_an_edit_without_a_source_raises_generation_error(
    engine: PreviewImageEngine,
) -> None:
    request = image_request(category=Category.IMAGE_EDIT)
    with pytest.raises(GenerationError):
        await run(engine, request)


@pytest.mark.parametrize(
    "params",
    [
        {"output_format": "gif"},
        {"size": "99999x10"},
        {"size": "big"},
        {"aspect_ratio": "wide"},
        {"aspect_ratio": "16:0"},
        {"resolution": "8k"},
    ],
)
async def test_invalid_parameters_raise_generation_error(
    engine: PreviewImageEngine, params: Mapping[str, InputValue]
) -> None:
    with pytest.raises(GenerationError):
        await run(engine, image_request(params))


async def test_aclose_is_idempotent(engine: PreviewImageEngine) -> None:
    await engine.aclose()
    await engine.aclose()
