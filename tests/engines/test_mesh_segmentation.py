"""Classical foreground segmentation, shared by the mesh and video engines."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageDraw

from hyperlocal.engines.mesh.segmentation import otsu, segment


def truth_and_picture(backdrop: tuple[int, int, int]) -> tuple[np.ndarray, Image.Image]:
    image = Image.new("RGB", (300, 200), backdrop)
    mask = Image.new("L", (300, 200), 0)
    for target, fill in ((image, (180, 40, 40)), (mask, 255)):
        ImageDraw.Draw(target).ellipse((100, 40, 220, 170), fill=fill)
    return np.asarray(mask) > 127, image


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / (a | b).sum())


@pytest.mark.parametrize("backdrop", [(250, 250, 250), (20, 20, 30), (90, 160, 90)])
def test_an_object_on_a_plain_backdrop_is_found(backdrop: tuple[int, int, int]) -> None:
    truth, image = truth_and_picture(backdrop)
    found = segment(image)
    assert found.method == "border-colour" and found.found
    assert found.mask.shape == (200, 300)
    assert iou(found.mask, truth) > 0.95


def test_a_shaded_backdrop_is_still_backdrop() -> None:
    truth, image = truth_and_picture((0, 0, 0))
    ramp = np.linspace(180, 250, 300)[None, :, None].repeat(200, 0).repeat(3, 2)
    pixels = np.where(truth[..., None], np.asarray(image), ramp).astype(np.uint8)
    assert iou(segment(Image.fromarray(pixels)).mask, truth) > 0.9


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


def test_otsu_splits_two_populations_between_them() -> None:
    rng = np.random.default_rng(1)
    values = np.concatenate([rng.normal(10, 3, 4000), rng.normal(60, 8, 2000)]).astype(np.float32)
    assert 25 < otsu(values) < 45
