"""Classical foreground segmentation on synthetic scenes whose true mask is known.

``CUTOUT`` is what image edits use (fine, soft-edged, big holes kept); ``SILHOUETTE`` is what
the mesh and video engines use (coarse, hard, solid, whole image when nothing plausible).
"""

from __future__ import annotations

import numpy as np
import pytest
from numpy.typing import NDArray
from PIL import Image, ImageDraw

from hyperlocal.engines.media.alpha import flatten, has_transparency
from hyperlocal.engines.media.segmentation import CUTOUT, Method, otsu, segment

Mask = NDArray[np.bool_]
SIDE = 256


def iou(found: Mask, truth: Mask) -> float:
    return float((found & truth).sum() / (found | truth).sum())


def cutout_iou(image: Image.Image, truth: Mask) -> float:
    return iou(segment(image, CUTOUT).mask, truth)


def drawn(backdrop: Image.Image, shape: str, box: tuple[int, int, int, int]) -> Mask:
    """Draws a dark-red ``shape`` on ``backdrop`` and returns where it was drawn."""
    truth = Image.new("L", backdrop.size)
    for target, fill in ((backdrop, (150, 20, 40)), (truth, 255)):
        getattr(ImageDraw.Draw(target), shape)(box, fill=fill)
    return np.asarray(truth) > 127


def gradient(top: tuple[int, int, int], bottom: tuple[int, int, int]) -> Image.Image:
    t = np.linspace(0, 1, SIDE)[:, None, None]
    rows = np.array(top) * (1 - t) + np.array(bottom) * t
    return Image.fromarray(np.repeat(rows, SIDE, axis=1).astype(np.uint8))


def truth_and_picture(backdrop: tuple[int, int, int]) -> tuple[Mask, Image.Image]:
    image = Image.new("RGB", (300, 200), backdrop)
    mask = Image.new("L", (300, 200), 0)
    for target, fill in ((image, (180, 40, 40)), (mask, 255)):
        ImageDraw.Draw(target).ellipse((100, 40, 220, 170), fill=fill)
    return np.asarray(mask) > 127, image


# CUTOUT: cutting a subject out for image edits


def test_a_disc_on_white_is_cut_out_with_a_soft_edge() -> None:
    image = Image.new("RGB", (SIDE, SIDE), "white")
    truth = drawn(image, "ellipse", (58, 58, 198, 198))
    found = segment(image, CUTOUT)
    assert found.alpha.mode == "L" and found.alpha.size == image.size
    assert iou(found.mask, truth) > 0.95
    assert len(set(np.asarray(found.alpha).ravel().tolist())) > 2  # feathered, not 0 or 255


def test_a_subject_on_a_shaded_backdrop_is_found() -> None:
    image = gradient((120, 170, 230), (245, 245, 250))
    truth = drawn(image, "rectangle", (70, 90, 180, 200))
    assert cutout_iou(image, truth) > 0.95


def test_a_subject_cut_off_by_the_frame_is_still_found() -> None:
    image = Image.new("RGB", (SIDE, SIDE), (235, 235, 225))
    truth = drawn(image, "rectangle", (100, 120, 160, SIDE))  # stands on the bottom edge
    assert cutout_iou(image, truth) > 0.9


def test_only_the_largest_region_is_kept() -> None:
    image = Image.new("RGB", (SIDE, SIDE), "white")
    truth = drawn(image, "ellipse", (40, 40, 170, 170))
    drawn(image, "rectangle", (210, 210, 230, 230))  # a small second object
    assert cutout_iou(image, truth) > 0.95


@pytest.mark.parametrize(("hole", "filled"), [(6, True), (40, False)])
def test_small_holes_are_filled_and_large_ones_kept(hole: int, filled: bool) -> None:
    image = Image.new("RGB", (SIDE, SIDE), "white")
    drawn(image, "ellipse", (38, 38, 218, 218))
    centre = SIDE // 2
    ImageDraw.Draw(image).ellipse(
        (centre - hole, centre - hole, centre + hole, centre + hole), fill="white"
    )
    assert bool(segment(image, CUTOUT).mask[centre, centre]) is filled


def test_a_plain_image_is_all_subject() -> None:
    found = segment(Image.new("RGB", (SIDE, SIDE), (90, 120, 200)), CUTOUT)
    assert found.method == Method.WHOLE_IMAGE
    assert np.asarray(found.alpha).min() == 255


def test_large_images_are_analysed_small_and_the_mask_scaled_up() -> None:
    image = Image.new("RGB", (2000, 1000), "white")
    truth = drawn(image, "ellipse", (700, 200, 1300, 800))
    assert cutout_iou(image, truth) > 0.97


# SILHOUETTE, the default: solid objects for the mesh and video engines


@pytest.mark.parametrize("backdrop", [(250, 250, 250), (20, 20, 30), (90, 160, 90)])
def test_an_object_on_a_plain_backdrop_is_found(backdrop: tuple[int, int, int]) -> None:
    truth, image = truth_and_picture(backdrop)
    found = segment(image)
    assert found.method == "border-colour" and found.found
    assert found.mask.shape == (200, 300)
    assert set(np.asarray(found.alpha).ravel().tolist()) == {0, 255}  # a hard edge
    assert iou(found.mask, truth) > 0.95


def test_a_shaded_backdrop_is_still_backdrop() -> None:
    truth, image = truth_and_picture((0, 0, 0))
    ramp = np.linspace(180, 250, 300)[None, :, None].repeat(200, 0).repeat(3, 2)
    pixels = np.where(truth[..., None], np.asarray(image), ramp).astype(np.uint8)
    assert iou(segment(Image.fromarray(pixels)).mask, truth) > 0.9


def test_holes_in_a_silhouette_are_all_filled() -> None:
    image = Image.new("RGB", (SIDE, SIDE), "white")
    drawn(image, "ellipse", (38, 38, 218, 218))
    centre = SIDE // 2
    ImageDraw.Draw(image).ellipse((centre - 40, centre - 40, centre + 40, centre + 40), "white")
    assert bool(segment(image).mask[centre, centre])


def test_alpha_wins_when_the_picture_has_it() -> None:
    truth, image = truth_and_picture((250, 250, 250))
    rgba = image.convert("RGBA")
    rgba.putalpha(Image.fromarray(truth.astype(np.uint8) * 255))
    found = segment(rgba)
    assert found.method == "alpha"
    assert iou(found.mask, truth) > 0.97


def test_a_flat_picture_is_all_object_and_says_so() -> None:
    found = segment(Image.new("RGB", (64, 48), (120, 120, 120)))
    assert found.method == "whole-image" and not found.found
    assert found.mask.all()


def test_a_sliver_is_not_an_object() -> None:
    image = Image.new("RGB", (SIDE, SIDE), "white")
    drawn(image, "rectangle", (120, 120, 128, 128))  # 0.1% of the frame
    assert segment(image).method == Method.WHOLE_IMAGE
    assert segment(image, CUTOUT).method == Method.BORDER_COLOUR


def test_otsu_splits_two_populations_between_them() -> None:
    rng = np.random.default_rng(1)
    values = np.concatenate([rng.normal(10, 3, 4000), rng.normal(60, 8, 2000)]).astype(np.float32)
    assert 25 < otsu(values) < 45


# alpha


@pytest.mark.parametrize(
    ("image", "transparent"),
    [
        (Image.new("RGB", (4, 4)), False),
        (Image.new("RGBA", (4, 4)), True),
        (Image.new("LA", (4, 4)), True),
    ],
)
def test_transparency_is_an_alpha_band(image: Image.Image, transparent: bool) -> None:
    assert has_transparency(image) is transparent


def test_flattening_puts_transparency_on_a_colour() -> None:
    image = Image.new("RGBA", (2, 1), (10, 20, 30, 255))
    image.putpixel((1, 0), (0, 0, 0, 0))
    assert flatten(image).getpixel((1, 0)) == (255, 255, 255)  # white by default, never black
    assert flatten(image, (0, 128, 0)).getpixel((1, 0)) == (0, 128, 0)
    assert flatten(image).getpixel((0, 0)) == (10, 20, 30)
    assert flatten(Image.new("L", (1, 1), 7)).mode == "RGB"
