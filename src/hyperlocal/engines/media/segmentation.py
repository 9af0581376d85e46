"""Foreground masks by classical segmentation: no model, so it suits a subject on a plain backdrop.

No segmentation weights ship with hyperlocal (``rembg`` downloads its model), so this relies on
product shots, portraits and renders mostly sitting on a plain backdrop. A real alpha channel
wins when the picture has one. Otherwise the backdrop's colours are learnt from a ring of border
pixels, and each pixel's distance from the nearest of them (in CIELAB, where distance follows
how different colours look) is split by Otsu's threshold; specks are opened away, the largest
connected region is the subject, and its holes are filled. The mask is found on a small copy
and scaled back up to the image's size. When nothing plausible stands out, the whole image is
the subject and the result says so (callers report the method).

It fails where the subject matches its backdrop or fills the frame; GrabCut or a learnt model
would do better there, but neither ships offline (see docs on engines).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import numpy as np
from numpy.typing import NDArray
from PIL import Image, ImageFilter

from hyperlocal.engines.media.alpha import has_transparency

__all__ = ["CUTOUT", "SILHOUETTE", "Method", "Options", "Segmentation", "otsu", "segment"]

Mask = NDArray[np.bool_]
Floats = NDArray[np.float64]

RING = 0.02  # border ring thickness, as a fraction of the short side
CLUSTERS = 4
# A border colour must cover this share of the ring to count as backdrop: a subject cut off by
# the frame touches the ring too, but only along a little of it.
MIN_SHARE = 0.12
MIN_CONTRAST = 10.0  # CIELAB delta E: anything closer to the backdrop than this is backdrop


@dataclass(frozen=True, slots=True)
class Options:
    """What a caller needs from the mask; ``CUTOUT`` and ``SILHOUETTE`` are the uses so far.

    A mask outside ``min_area``..``max_area`` of the frame, or along more than
    ``max_border_touch`` of its border, counts as nothing standing out: the whole image is the
    subject then.
    """

    work_side: int  # the mask is found on a copy with this long side at most, then scaled up
    soft_edge: bool  # feathered as it is scaled up, for compositing; else only 0 and 255
    hole_share: float  # enclosed holes under this share of the frame are filled; 1 fills all
    min_area: float = 0.0
    max_area: float = 1.0
    max_border_touch: float = 1.0


# Cutting a subject out of an edited image: 640 px costs little and 4k would cost a second for
# no gain; a soft edge composites cleanly; big holes (between an arm and the body) are real.
CUTOUT = Options(work_side=640, soft_edge=True, hole_share=0.01)
# Silhouettes for meshes and parallax layers need only be coarse, but solid. A sliver is no
# object, and neither is a mask along much of the border: that is the backdrop itself.
SILHOUETTE = Options(
    work_side=320,
    soft_edge=False,
    hole_share=1.0,
    min_area=0.02,
    max_area=0.92,
    max_border_touch=0.35,
)


class Method(StrEnum):
    ALPHA = "alpha"
    BORDER_COLOUR = "border-colour"
    WHOLE_IMAGE = "whole-image"


@dataclass(frozen=True, slots=True)
class Segmentation:
    alpha: Image.Image  # "L" at the image's size: 255 on the subject, 0 on the backdrop
    method: Method

    @property
    def mask(self) -> Mask:
        """The subject as a hard mask, rows by columns."""
        hard: Mask = np.asarray(self.alpha) > 127
        return hard

    @property
    def found(self) -> bool:
        return self.method != Method.WHOLE_IMAGE


def segment(image: Image.Image, options: Options = SILHOUETTE) -> Segmentation:
    """The subject of ``image``, at its own size: from its alpha if real, else its colours."""
    small = _work_copy(image, options.work_side)
    for method, mask in ((Method.ALPHA, _alpha_mask), (Method.BORDER_COLOUR, _colour_mask)):
        found = mask(small)
        subject = None if found is None else _cleanup(found, options.hole_share)
        if subject is not None and _plausible(subject, options):
            return Segmentation(_scaled(subject, image.size, options.soft_edge), method)
    return Segmentation(Image.new("L", image.size, 255), Method.WHOLE_IMAGE)


def _work_copy(image: Image.Image, side: int) -> Image.Image:
    scale = side / max(image.size)
    if scale >= 1:
        return image
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    return image.resize(size, Image.Resampling.BOX)


def _alpha_mask(image: Image.Image) -> Mask | None:
    if not has_transparency(image):
        return None
    alpha = np.asarray(image.convert("RGBA"))[..., 3]
    return alpha > 127 if alpha.min() < 128 else None  # an opaque alpha says nothing


def _colour_mask(image: Image.Image) -> Mask:
    distance = _backdrop_distance(_lab(image.convert("RGB")))
    hard: Mask = distance > _threshold(distance)
    return hard


def _lab(image: Image.Image) -> Floats:
    from skimage.color import rgb2lab

    lab: Floats = rgb2lab(np.asarray(image, dtype=np.float64) / 255.0)
    return lab


def _ring(lab: Floats) -> Floats:
    k = max(1, round(RING * min(lab.shape[:2])))
    sides = (lab[:k], lab[-k:], lab[k:-k, :k], lab[k:-k, -k:])
    return np.concatenate([side.reshape(-1, 3) for side in sides])


def _backdrop_colours(ring: Floats) -> Floats:
    """The ring's main colours: a few rounds of k-means, seeded at points spread around it.

    Several colours rather than one let a backdrop shade from one side to the other.
    """
    samples = ring[:: max(1, len(ring) // 4000)]
    centres = samples[np.linspace(0, len(samples) - 1, CLUSTERS).astype(int)]
    for _ in range(8):
        nearest = _nearest(samples, centres)
        counts = np.bincount(nearest, minlength=CLUSTERS)
        sums = np.stack(
            [np.bincount(nearest, samples[:, c], minlength=CLUSTERS) for c in range(3)], axis=1
        )
        centres = np.where(counts[:, None] > 0, sums / np.maximum(counts, 1)[:, None], centres)
    shares = np.bincount(_nearest(samples, centres), minlength=CLUSTERS) / len(samples)
    keep = shares >= MIN_SHARE
    keep[np.argmax(shares)] = True
    colours: Floats = centres[keep]
    return colours


def _nearest(samples: Floats, centres: Floats) -> NDArray[np.intp]:
    gaps = np.linalg.norm(samples[:, None, :] - centres[None, :, :], axis=2)
    nearest: NDArray[np.intp] = np.argmin(gaps, axis=1)
    return nearest


def _backdrop_distance(lab: Floats) -> Floats:
    colours = _backdrop_colours(_ring(lab))
    distance = np.min([np.linalg.norm(lab - colour, axis=2) for colour in colours], axis=0)
    smoothed: Floats = _ndimage().gaussian_filter(distance, 1.0)  # JPEG noise would speckle it
    return smoothed


def _threshold(distance: Floats) -> float:
    if float(distance.max()) < MIN_CONTRAST:  # nothing stands out: all backdrop
        return float("inf")
    return max(otsu(distance), MIN_CONTRAST)


def otsu(values: NDArray[np.floating[Any]], bins: int = 256) -> float:
    """Otsu's threshold: the cut that maximises the variance between the two classes.

    Written out (it is a dozen lines) because importing scikit-image's costs a tenth of a
    second; it gives the same cut as ``skimage.filters.threshold_otsu`` on float values.
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


def _cleanup(hard: Mask, hole_share: float) -> Mask:
    radius = max(1, round(min(hard.shape) / 200))
    y, x = np.ogrid[-radius : radius + 1, -radius : radius + 1]
    opened: Mask = _ndimage().binary_opening(hard, structure=x * x + y * y <= radius * radius)
    subject = _largest_region(opened)
    return _fill_small_holes(subject, hole_share * subject.size)


def _largest_region(hard: Mask) -> Mask:
    labels, count = _label(hard)
    if count == 0:
        return hard
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0  # label 0 is the backdrop itself
    largest: Mask = labels == np.argmax(sizes)
    return largest


def _fill_small_holes(hard: Mask, max_area: float) -> Mask:
    """Fills enclosed holes (eyes, shine) smaller than ``max_area`` pixels."""
    holes = _ndimage().binary_fill_holes(hard) & ~hard
    labels, count = _label(holes)
    if count == 0:
        return hard
    small = np.bincount(labels.ravel()) < max_area
    small[0] = False
    filled: Mask = hard | small[labels]
    return filled


def _label(hard: Mask) -> tuple[NDArray[np.int32], int]:
    result: tuple[Any, int] = _ndimage().label(hard)
    return result


def _ndimage() -> Any:
    """scipy.ndimage, imported on first use: scipy ships no type information, hence ``Any``."""
    from scipy import ndimage  # type: ignore[import-untyped]

    return ndimage


def _plausible(mask: Mask, options: Options) -> bool:
    if not mask.any():
        return False
    area = float(mask.mean())
    border = np.concatenate([mask[0], mask[-1], mask[:, 0], mask[:, -1]])
    return (
        options.min_area <= area <= options.max_area
        and float(border.mean()) <= options.max_border_touch
    )


def _scaled(mask: Mask, size: tuple[int, int], soft_edge: bool) -> Image.Image:
    """The working-size mask at ``size``: feathered, or thresholded back to 0 and 255."""
    small = Image.fromarray(mask.astype(np.uint8) * 255)
    if soft_edge:
        return small.resize(size, Image.Resampling.BILINEAR).filter(ImageFilter.GaussianBlur(1))
    if small.size == size:
        return small
    return small.resize(size, Image.Resampling.BILINEAR).point(lambda v: 255 if v > 127 else 0)
