"""Classical image edits, driven through the engine, on synthetic images with checkable answers."""

from __future__ import annotations

import io
from collections.abc import Awaitable, Callable
from typing import Protocol

import numpy as np
import pytest
from numpy.typing import NDArray
from PIL import Image, ImageDraw, ImageFilter

from hyperlocal.engines.base import (
    Category,
    EngineContext,
    GenerationRequest,
    GenerationResult,
    InputValue,
    MediaInput,
    MediaKind,
)
from hyperlocal.engines.builtin.image import PreviewImageEngine, create
from hyperlocal.errors import GenerationError
from hyperlocal.settings import Settings

Pixels = NDArray[np.float64]
RED, GREEN, BLUE, WHITE = (220, 20, 30), (20, 200, 40), (30, 40, 220), (255, 255, 255)


class Edited:
    def __init__(self, result: GenerationResult) -> None:
        (artifact,) = result.artifacts
        self.artifact = artifact
        self.extra = {key: str(value) for key, value in result.extra.items()}
        self.image = Image.open(io.BytesIO(artifact.data))
        self.image.load()

    @property
    def pixels(self) -> Pixels:
        return np.asarray(self.image, dtype=np.float64)


class Edit(Protocol):
    def __call__(
        self, prompt: str, *sources: Image.Image, **params: InputValue
    ) -> Awaitable[Edited]: ...


async def _ignore_progress(fraction: float, message: str | None) -> None:
    return None


@pytest.fixture
def engine() -> PreviewImageEngine:
    return create(EngineContext(settings=Settings()))


@pytest.fixture
def edit(engine: PreviewImageEngine) -> Edit:
    async def run(prompt: str, *sources: Image.Image, **params: InputValue) -> Edited:
        request = GenerationRequest(
            job_id="job_1",
            model="nano-banana-edit",
            category=Category.IMAGE_EDIT,
            params={"prompt": prompt, **params},
            media={"images": [as_media(image) for image in sources]},
        )
        return Edited(await engine.generate(request, _ignore_progress))

    return run


def as_media(image: Image.Image) -> MediaInput:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return MediaInput("images", MediaKind.IMAGE, "image/png", buffer.getvalue(), "data:")


def bands(size: tuple[int, int] = (300, 200)) -> Image.Image:
    """Three vertical bands, red | green | blue, so crops and flips show where they cut."""
    image = Image.new("RGB", size, RED)
    draw = ImageDraw.Draw(image)
    third = size[0] // 3
    draw.rectangle((third, 0, 2 * third - 1, size[1]), fill=GREEN)
    draw.rectangle((2 * third, 0, size[0], size[1]), fill=BLUE)
    return image


def noise(size: int = 128, seed: int = 7) -> Image.Image:
    values = np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)
    return Image.fromarray(values)


def disc_on(backdrop: Image.Image, radius: int, colour: tuple[int, int, int] = RED) -> Image.Image:
    image = backdrop.copy()
    cx, cy = image.width / 2, image.height / 2
    ImageDraw.Draw(image).ellipse((cx - radius, cy - radius, cx + radius, cy + radius), fill=colour)
    return image


def energy(pixels: Pixels) -> float:
    """Mean absolute difference between neighbours: the image's high-frequency content."""
    grey = pixels[..., :3].mean(axis=2)
    return float(np.abs(np.diff(grey, axis=0)).mean() + np.abs(np.diff(grey, axis=1)).mean())


def mean_colour(image: Image.Image, box: tuple[float, float, float, float]) -> Pixels:
    """The mean RGB over ``box``, given as fractions of the width and height."""
    w, h = image.size
    region = image.convert("RGB").crop(
        (round(box[0] * w), round(box[1] * h), round(box[2] * w), round(box[3] * h))
    )
    mean: Pixels = np.asarray(region, dtype=np.float64).reshape(-1, 3).mean(axis=0)
    return mean


def close_to(actual: Pixels, expected: tuple[int, int, int], tolerance: float = 12) -> bool:
    return bool(np.abs(actual - np.array(expected)).max() <= tolerance)


async def test_recognised_operations_are_applied_in_order_and_reported(edit: Edit) -> None:
    result = await edit("Crop to the center square, make it black and white, then blur 3", bands())
    assert result.extra == {"engine": "classical-edit", "operations": "crop(1:1),grayscale,blur(3)"}
    assert result.image.size == (1024, 1024)


async def test_words_no_rule_understood_are_reported(edit: Edit) -> None:
    result = await edit("add a crown and make it grayscale", bands())
    assert result.extra["operations"] == "grayscale"
    assert result.extra["ignored"] == "add crown"


async def test_an_unrecognised_prompt_keeps_the_captioned_preview(edit: Edit) -> None:
    result = await edit("Make it look like autumn", Image.new("RGB", (300, 200), RED))
    assert result.extra == {"engine": "preview"}
    # the caption card and badge sit along the bottom; the source shows above them
    assert close_to(mean_colour(result.image, (0.4, 0.3, 0.6, 0.5)), RED, 5)
    assert not close_to(mean_colour(result.image, (0.1, 0.8, 0.9, 0.9)), RED, 40)


async def test_text_to_image_is_reported_as_a_preview(engine: PreviewImageEngine) -> None:
    request = GenerationRequest("job_1", "flux", Category.IMAGE, {"prompt": "blur a cat"})
    result = await engine.generate(request, _ignore_progress)
    assert result.extra == {"engine": "preview"}


async def test_only_the_first_of_several_images_is_edited(edit: Edit) -> None:
    result = await edit("grayscale", bands(), Image.new("RGB", (64, 64), BLUE))
    assert result.extra["unused_images"] == "1"


async def test_a_classical_edit_has_no_caption_or_badge(edit: Edit) -> None:
    source = Image.new("RGB", (256, 256), (90, 90, 90))
    result = await edit("make it black and white", source)
    assert np.ptp(result.pixels) == 0


async def test_without_an_aspect_ratio_the_edited_shape_is_kept_at_1k(edit: Edit) -> None:
    assert (await edit("grayscale", bands())).image.size == (1024, 682)


async def test_the_requested_aspect_ratio_and_resolution_apply(edit: Edit) -> None:
    result = await edit("grayscale", bands(), aspect_ratio="16:9", resolution="2k")
    assert result.image.size == (2048, 1152)


async def test_a_resize_in_the_prompt_sets_the_exact_size(edit: Edit) -> None:
    result = await edit("resize to 512x256", bands(), resolution="2k")
    assert result.image.size == (512, 256)
    assert result.extra["operations"] == "resize(512x256)"


async def test_scaling_is_relative_to_the_source(edit: Edit) -> None:
    assert (await edit("scale to 50%", bands())).image.size == (150, 100)
    assert (await edit("upscale 2x", bands())).image.size == (600, 400)


async def test_crop_to_the_center_square(edit: Edit) -> None:
    image = (await edit("crop to the center square", bands())).image
    assert image.size == (1024, 1024)
    # the source's middle 200 columns: 50 red, 100 green, 50 blue
    assert close_to(mean_colour(image, (0.0, 0.4, 0.2, 0.6)), RED)
    assert close_to(mean_colour(image, (0.3, 0.4, 0.7, 0.6)), GREEN)
    assert close_to(mean_colour(image, (0.8, 0.4, 1.0, 0.6)), BLUE)


async def test_crop_by_a_percentage_trims_the_edges_and_keeps_the_shape(edit: Edit) -> None:
    framed = Image.new("RGB", (300, 200), (0, 0, 0))
    ImageDraw.Draw(framed).rectangle((24, 16, 275, 183), fill=WHITE)  # an 8% black frame
    result = await edit("crop 20%", framed, size="300x200")
    assert result.extra["operations"] == "crop(80%)"
    assert result.pixels.min() > 200  # 10% gone from each side: no frame left


async def test_crop_to_a_half(edit: Edit) -> None:
    image = (await edit("crop to the left half", bands())).image
    assert image.width / image.height == pytest.approx(0.75, rel=0.01)
    assert close_to(mean_colour(image, (0.0, 0.0, 0.5, 1.0)), RED)
    assert close_to(mean_colour(image, (0.75, 0.0, 1.0, 1.0)), GREEN)


async def test_crop_to_an_aspect_ratio(edit: Edit) -> None:
    image = (await edit("crop it to 16:9", bands())).image
    assert image.size == (1024, 576)


@pytest.mark.parametrize(
    ("prompt", "red_side"),
    [
        ("rotate 90", (0.9, 0.0, 1.0, 1.0)),
        ("rotate 90 degrees counterclockwise", (0.0, 0.0, 0.1, 1.0)),
        ("turn it upside down", (0.0, 0.9, 1.0, 1.0)),
    ],
)
async def test_rotation_turns_the_image_the_way_asked(
    edit: Edit, prompt: str, red_side: tuple[float, float, float, float]
) -> None:
    source = Image.new("RGB", (300, 200), WHITE)
    ImageDraw.Draw(source).rectangle((0, 0, 299, 19), fill=RED)  # a red top edge
    image = (await edit(prompt, source)).image
    quarter = "180" not in prompt and "upside" not in prompt
    assert (image.height > image.width) is quarter
    assert close_to(mean_colour(image, red_side), RED)


async def test_rotating_by_other_angles_grows_the_canvas_with_white_corners(edit: Edit) -> None:
    image = (await edit("rotate by 45 degrees", Image.new("RGB", (200, 200), BLUE))).image
    assert close_to(mean_colour(image, (0.0, 0.0, 0.05, 0.05)), WHITE, 2)
    assert close_to(mean_colour(image, (0.4, 0.4, 0.6, 0.6)), BLUE, 2)


@pytest.mark.parametrize("prompt", ["flip horizontally", "mirror it"])
async def test_flip_horizontally(edit: Edit, prompt: str) -> None:
    image = (await edit(prompt, bands())).image
    assert close_to(mean_colour(image, (0.0, 0.0, 0.3, 1.0)), BLUE)
    assert close_to(mean_colour(image, (0.7, 0.0, 1.0, 1.0)), RED)


async def test_flip_vertically(edit: Edit) -> None:
    source = Image.new("RGB", (200, 200), WHITE)
    ImageDraw.Draw(source).rectangle((0, 0, 199, 49), fill=RED)
    image = (await edit("flip vertically", source)).image
    assert close_to(mean_colour(image, (0.0, 0.8, 1.0, 1.0)), RED)


@pytest.mark.parametrize("prompt", ["make it black and white", "grayscale", "desaturate"])
async def test_grayscale_leaves_every_pixel_neutral(edit: Edit, prompt: str) -> None:
    pixels = (await edit(prompt, noise(), size="128x128")).pixels
    assert np.array_equal(pixels[..., 0], pixels[..., 1])
    assert np.array_equal(pixels[..., 1], pixels[..., 2])
    assert pixels.std() > 20


async def test_sepia_gives_warm_browns(edit: Edit) -> None:
    r, g, b = mean_colour(
        (await edit("sepia", Image.new("RGB", (64, 64), (128,) * 3))).image, (0, 0, 1, 1)
    )
    assert r > g > b


async def test_invert_colours(edit: Edit) -> None:
    image = (await edit("invert colours", Image.new("RGB", (64, 64), (20, 40, 60)))).image
    assert close_to(mean_colour(image, (0, 0, 1, 1)), (235, 215, 195), 1)


def _grey_gradient() -> Image.Image:
    ramp = np.tile(np.linspace(40, 215, 128), (128, 1))
    return Image.fromarray(np.stack([ramp, ramp * 0.9, ramp * 0.8], axis=2).astype(np.uint8))


def _chroma(pixels: Pixels) -> float:
    return float((pixels.max(axis=2) - pixels.min(axis=2)).mean())


@pytest.mark.parametrize(
    ("prompt", "measure", "rises"),
    [
        ("increase brightness", lambda p: p.mean(), True),
        ("make it darker", lambda p: p.mean(), False),
        ("increase the contrast by 40%", lambda p: p.std(), True),
        ("lower contrast", lambda p: p.std(), False),
        ("boost saturation", _chroma, True),
        ("reduce saturation", _chroma, False),
        ("make it warmer", lambda p: (p[..., 0] - p[..., 2]).mean(), True),
        ("make it cooler", lambda p: (p[..., 0] - p[..., 2]).mean(), False),
    ],
)
async def test_tone_changes_go_the_way_asked(
    edit: Edit, prompt: str, measure: Callable[[Pixels], float], rises: bool
) -> None:
    source = _grey_gradient()
    before = measure(np.asarray(source, dtype=np.float64))
    after = measure((await edit(prompt, source, size="128x128")).pixels)
    assert (after > before + 2) if rises else (after < before - 2)


@pytest.mark.parametrize(("prompt", "strong"), [("tint blue", False), ("recolour it blue", True)])
async def test_tint_and_recolour_pull_toward_the_colour(
    edit: Edit, prompt: str, strong: bool
) -> None:
    grey = Image.new("RGB", (64, 64), (128, 128, 128))
    r, _, b = mean_colour((await edit(prompt, grey)).image, (0, 0, 1, 1))
    assert b - r > (150 if strong else 60)


async def test_blur_lowers_high_frequency_energy_and_more_blur_lowers_it_more(edit: Edit) -> None:
    source = noise()
    light = await edit("blur 1", source, size="128x128")
    heavy = await edit("blur 4", source, size="128x128")
    original = energy(np.asarray(source, dtype=np.float64))
    assert energy(heavy.pixels) < energy(light.pixels) < original * 0.6


async def test_sharpen_raises_high_frequency_energy(edit: Edit) -> None:
    soft = noise().filter(ImageFilter.GaussianBlur(2))
    result = await edit("sharpen", soft, size="128x128")
    assert result.extra["operations"] == "sharpen(2)"
    assert energy(result.pixels) > 1.3 * energy(np.asarray(soft, dtype=np.float64))


SIDE, RADIUS = 256, 70


def _true_disc(side: int, radius: float) -> NDArray[np.bool_]:
    y, x = np.mgrid[:side, :side] + 0.5
    inside: NDArray[np.bool_] = (x - side / 2) ** 2 + (y - side / 2) ** 2 <= radius**2
    return inside


async def test_remove_background_cuts_out_the_disc(edit: Edit) -> None:
    source = disc_on(Image.new("RGB", (SIDE, SIDE), WHITE), RADIUS)
    result = await edit("remove the background", source, size=f"{SIDE}x{SIDE}")
    assert (result.artifact.content_type, result.image.mode) == ("image/png", "RGBA")
    alpha = result.pixels[..., 3]
    border = np.concatenate([alpha[:4].ravel(), alpha[-4:].ravel(), alpha[:, :4].ravel()])
    assert border.max() <= 5
    assert alpha[SIDE // 2 - 20 : SIDE // 2 + 20, SIDE // 2 - 20 : SIDE // 2 + 20].min() == 255
    mask, truth = alpha > 127, _true_disc(SIDE, RADIUS)
    assert (mask & truth).sum() / (mask | truth).sum() > 0.9


async def test_remove_background_as_jpeg_is_flattened_onto_white(edit: Edit) -> None:
    source = disc_on(Image.new("RGB", (SIDE, SIDE), (40, 160, 60)), RADIUS)
    result = await edit("cut out the subject", source, output_format="jpeg")
    assert (result.artifact.content_type, result.image.mode) == ("image/jpeg", "RGB")
    assert "jpeg has no alpha" in result.extra["alpha"]
    assert close_to(mean_colour(result.image, (0.0, 0.0, 0.1, 0.1)), WHITE, 3)
    assert close_to(mean_colour(result.image, (0.45, 0.45, 0.55, 0.55)), RED, 6)


async def test_remove_background_with_no_subject_keeps_the_image_and_says_so(edit: Edit) -> None:
    result = await edit("remove the background", Image.new("RGB", (128, 128), BLUE))
    assert result.pixels[..., 3].min() == 255
    assert "no subject" in result.extra["segmentation"]


async def test_replace_background_with_a_colour(edit: Edit) -> None:
    source = disc_on(Image.new("RGB", (SIDE, SIDE), WHITE), RADIUS)
    result = await edit("replace the background with blue", source, size=f"{SIDE}x{SIDE}")
    assert result.image.mode == "RGB"
    assert result.extra["operations"] == "background(blue)"
    assert close_to(mean_colour(result.image, (0.0, 0.0, 0.15, 0.15)), (0, 0, 255), 2)
    assert close_to(mean_colour(result.image, (0.45, 0.45, 0.55, 0.55)), RED, 2)


async def test_blur_the_background_keeps_the_subject_sharp(edit: Edit) -> None:
    grain = np.asarray(noise(SIDE), dtype=np.float64) * 0.1 + 200  # a faint textured backdrop
    backdrop = Image.fromarray(grain.astype(np.uint8))
    source = disc_on(backdrop, RADIUS, colour=(30, 30, 30))
    speckle = np.random.default_rng(3).integers(0, 2, (40, 40), dtype=np.uint8) * 200
    source.paste(Image.fromarray(speckle + 30).convert("RGB"), (108, 108))  # texture inside
    result = await edit("blur the background", source, size=f"{SIDE}x{SIDE}")
    before, after = np.asarray(source, dtype=np.float64), result.pixels
    assert energy(after[:40, :40]) < 0.5 * energy(before[:40, :40])
    assert energy(after[108:148, 108:148]) == pytest.approx(
        energy(before[108:148, 108:148]), rel=0.05
    )


@pytest.mark.parametrize("params", [{"resolution": "8k"}, {"aspect_ratio": "wide"}])
async def test_invalid_size_parameters_fail_even_when_the_prompt_sets_the_size(
    edit: Edit, params: dict[str, InputValue]
) -> None:
    with pytest.raises(GenerationError):
        await edit("resize to 256x256", bands(), **params)
