"""Classical foreground segmentation: what is the object, and what is the backdrop?

No segmentation weights ship with hyperlocal (``rembg`` downloads its model), so this uses the
fact that product shots, portraits and generated renders mostly sit on a plain backdrop:
each pixel's colour distance from the border's colours, split by Otsu's threshold, cleaned up,
and reduced to its largest connected component. An alpha channel, when the image has a real
one, wins over all of that. When no plausible object is found, the whole frame is the object
and the result says so: callers report the method in their ``extra``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from PIL import Image

__all__ = ["Segmentation", "otsu", "segment"]

WORK_SIDE = 320  # segmentation runs on a copy this size: the mask only needs to be coarse
BORDER = 0.03  # the strip, as a fraction of the short side, taken to be backdrop
MIN_AREA, MAX_AREA = 0.02, 0.92  # outside this share of the frame, a mask is not an object
MAX_BORDER_TOUCH = 0.35  # an object may touch this share of the border; the backdrop touches more


@dataclass(frozen=True, slots=True)
class Segmentation:
    mask: NDArray[np.bool_]  # at the size of the image given to segment()
    method: str  # "alpha", "border-colour" or "whole-image"

    @property
    def found(self) -> bool:
        return self.method != "whole-image"


def segment(image: Image.Image) -> Segmentation:
    """The foreground mask of ``image``, at its own size."""
    small = _work_copy(image)
    mask = _alpha_mask(small)
    method = "alpha"
    if mask is None or not _plausible(mask):
        mask, method = _colour_mask(np.asarray(small.convert("RGB"), np.float32)), "border-colour"
    if not _plausible(mask):
        return Segmentation(np.ones((image.height, image.width), np.bool_), "whole-image")
    return Segmentation(_resize_mask(mask, image.size), method)


def _work_copy(image: Image.Image) -> Image.Image:
    scale = WORK_SIDE / max(image.size)
    if scale >= 1:
        return image
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    return image.resize(size, Image.Resampling.BOX)


def _alpha_mask(image: Image.Image) -> NDArray[np.bool_] | None:
    if "A" not in image.getbands() and "transparency" not in image.info:
        return None
    alpha = np.asarray(image.convert("RGBA"))[..., 3]
    return _clean(alpha > 127) if alpha.min() < 128 else None


def _colour_mask(rgb: NDArray[np.float32]) -> NDArray[np.bool_]:
    distance = _border_distance(rgb)
    if float(distance.max() - distance.min()) < 1e-3:
        return np.zeros(distance.shape, np.bool_)
    return _clean(distance > otsu(distance))


def otsu(values: NDArray[np.float32], bins: int = 256) -> float:
    """Otsu's threshold: the cut that maximises the variance between the two classes.

    Written out (it is a dozen lines) because importing scikit-image's costs most of a second.
    """
    counts, edges = np.histogram(values, bins=bins)
    centres = (edges[:-1] + edges[1:]) / 2
    below = np.cumsum(counts)[:-1].astype(np.float64)
    above = below[-1] + counts[-1] - below
    sums = np.cumsum(counts * centres)[:-1]
    mean_below = sums / np.maximum(below, 1)
    mean_above = (sums[-1] + counts[-1] * centres[-1] - sums) / np.maximum(above, 1)
    between = below * above * (mean_below - mean_above) ** 2
    return float(centres[int(np.argmax(between))])


def _border_distance(rgb: NDArray[np.float32]) -> NDArray[np.float32]:
    """Each pixel's distance to the nearest of the four sides' median colours.

    Four colours rather than one let a backdrop shade from one side to the other.
    """
    strip = max(1, round(min(rgb.shape[:2]) * BORDER))
    sides = (rgb[:strip], rgb[-strip:], rgb[:, :strip], rgb[:, -strip:])
    colours = [np.median(side.reshape(-1, 3), axis=0) for side in sides]
    distances = [np.linalg.norm(rgb - colour, axis=2) for colour in colours]
    nearest: NDArray[np.float32] = np.minimum.reduce(distances).astype(np.float32)
    return nearest


def _clean(mask: NDArray[np.bool_]) -> NDArray[np.bool_]:
    from scipy import ndimage  # type: ignore[import-untyped]

    mask = ndimage.binary_opening(mask, iterations=1)
    labels, count = ndimage.label(mask)
    if count == 0:
        return np.zeros(mask.shape, np.bool_)
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    largest: NDArray[np.bool_] = labels == int(sizes.argmax())
    return np.asarray(ndimage.binary_fill_holes(largest), np.bool_)


def _plausible(mask: NDArray[np.bool_]) -> bool:
    area = float(mask.mean())
    border = np.concatenate([mask[0], mask[-1], mask[:, 0], mask[:, -1]])
    return MIN_AREA <= area <= MAX_AREA and float(border.mean()) <= MAX_BORDER_TOUCH


def _resize_mask(mask: NDArray[np.bool_], size: tuple[int, int]) -> NDArray[np.bool_]:
    if mask.shape == (size[1], size[0]):
        return mask
    image = Image.fromarray(mask.astype(np.uint8) * 255).resize(size, Image.Resampling.BILINEAR)
    return np.asarray(image) > 127
