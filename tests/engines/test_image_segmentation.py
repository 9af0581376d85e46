"""Classical foreground masks on synthetic scenes whose true mask is known."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.typing import NDArray
from PIL import Image, ImageDraw

from hyperlocal.engines.image.segmentation import foreground_mask

Mask = NDArray[np.bool_]
SIDE = 256


def iou(mask: Image.Image, truth: Mask) -> float:
    found = np.asarray(mask) > 127
    return float((found & truth).sum() / (found | truth).sum())


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


def test_a_disc_on_white_is_found() -> None:
    image = Image.new("RGB", (SIDE, SIDE), "white")
    truth = drawn(image, "ellipse", (58, 58, 198, 198))
    mask = foreground_mask(image)
    assert mask.size == image.size
    assert iou(mask, truth) > 0.95


def test_a_subject_on_a_shaded_backdrop_is_found() -> None:
    image = gradient((120, 170, 230), (245, 245, 250))
    truth = drawn(image, "rectangle", (70, 90, 180, 200))
    assert iou(foreground_mask(image), truth) > 0.95


def test_a_subject_cut_off_by_the_frame_is_still_found() -> None:
    image = Image.new("RGB", (SIDE, SIDE), (235, 235, 225))
    truth = drawn(image, "rectangle", (100, 120, 160, SIDE))  # stands on the bottom edge
    assert iou(foreground_mask(image), truth) > 0.9


def test_only_the_largest_region_is_kept() -> None:
    image = Image.new("RGB", (SIDE, SIDE), "white")
    truth = drawn(image, "ellipse", (40, 40, 170, 170))
    drawn(image, "rectangle", (210, 210, 230, 230))  # a small second object
    assert iou(foreground_mask(image), truth) > 0.95


@pytest.mark.parametrize(("hole", "filled"), [(6, True), (40, False)])
def test_small_holes_are_filled_and_large_ones_kept(hole: int, filled: bool) -> None:
    image = Image.new("RGB", (SIDE, SIDE), "white")
    drawn(image, "ellipse", (38, 38, 218, 218))
    centre = SIDE // 2
    ImageDraw.Draw(image).ellipse(
        (centre - hole, centre - hole, centre + hole, centre + hole), fill="white"
    )
    assert bool(np.asarray(foreground_mask(image))[centre, centre] > 127) is filled


def test_a_plain_image_is_all_subject() -> None:
    mask = foreground_mask(Image.new("RGB", (SIDE, SIDE), (90, 120, 200)))
    assert np.asarray(mask).min() == 255


def test_large_images_are_analysed_small_and_the_mask_scaled_up() -> None:
    image = Image.new("RGB", (2000, 1000), "white")
    truth = drawn(image, "ellipse", (700, 200, 1300, 800))
    assert iou(foreground_mask(image), truth) > 0.97
