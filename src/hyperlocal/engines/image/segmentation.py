"""Foreground masks by classical segmentation: no model, so it suits a subject on a plain backdrop.

The backdrop's colours are learnt from a ring of border pixels. Each pixel's distance from the
nearest backdrop colour (in CIELAB, where distance follows how different colours look) is split
by Otsu's threshold; the largest connected region is the subject, its small holes are filled and
specks are opened away, and the mask is feathered as it is scaled back up to the image's size.
It fails where the subject matches its backdrop or fills the frame; GrabCut or a learnt model
would do better there, but neither ships offline (see docs on engines).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray
from PIL import Image, ImageFilter

__all__ = ["foreground_mask"]

Mask = NDArray[np.bool_]
Floats = NDArray[np.float64]

ANALYSIS_SIDE = 640  # found at this size and scaled up: 4k would cost a second for no gain
RING = 0.02  # border ring thickness, as a fraction of the short side
CLUSTERS = 4
# A border colour must cover this share of the ring to count as backdrop: a subject cut off by
# the frame touches the ring too, but only along a little of it.
MIN_SHARE = 0.12
MIN_CONTRAST = 10.0  # CIELAB delta E: anything closer to the backdrop than this is backdrop
HOLE_FRACTION = 0.01  # enclosed backdrop-coloured holes below this share of the image are filled


def foreground_mask(image: Image.Image) -> Image.Image:
    """A soft ``L`` mask at ``image``'s size: 255 on the subject, 0 on the backdrop."""
    lab = _lab(_analysis_copy(image.convert("RGB")))
    distance = _backdrop_distance(lab)
    hard = _cleanup(distance > _threshold(distance))
    if not hard.any():  # no subject stands out: keep the whole image rather than erase it
        return Image.new("L", image.size, 255)
    return _feathered(hard, image.size)


def _analysis_copy(image: Image.Image) -> Image.Image:
    scale = ANALYSIS_SIDE / max(image.size)
    if scale >= 1:
        return image
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    return image.resize(size, Image.Resampling.BOX)


def _lab(image: Image.Image) -> Floats:
    from skimage.color import rgb2lab

    lab: Floats = rgb2lab(np.asarray(image, dtype=np.float64) / 255.0)
    return lab


def _ring(lab: Floats) -> Floats:
    k = max(1, round(RING * min(lab.shape[:2])))
    sides = (lab[:k], lab[-k:], lab[k:-k, :k], lab[k:-k, -k:])
    return np.concatenate([side.reshape(-1, 3) for side in sides])


def _backdrop_colours(ring: Floats) -> Floats:
    """The ring's main colours: a few rounds of k-means, seeded at points spread around it."""
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
    from skimage.filters import threshold_otsu

    if float(distance.max()) < MIN_CONTRAST:  # nothing stands out: all backdrop
        return float("inf")
    otsu = float(threshold_otsu(distance))  # type: ignore[no-untyped-call]
    return max(otsu, MIN_CONTRAST)


def _cleanup(hard: Mask) -> Mask:
    radius = max(1, round(min(hard.shape) / 200))
    y, x = np.ogrid[-radius : radius + 1, -radius : radius + 1]
    opened: Mask = _ndimage().binary_opening(hard, structure=x * x + y * y <= radius * radius)
    subject = _largest_region(opened)
    return _fill_small_holes(subject, HOLE_FRACTION * subject.size)


def _largest_region(hard: Mask) -> Mask:
    labels, count = _label(hard)
    if count == 0:
        return hard
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0  # label 0 is the backdrop itself
    largest: Mask = labels == np.argmax(sizes)
    return largest


def _fill_small_holes(hard: Mask, max_area: float) -> Mask:
    """Fills enclosed holes (eyes, shine) but not big ones, which are likely real gaps."""
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


def _feathered(hard: Mask, size: tuple[int, int]) -> Image.Image:
    mask = Image.fromarray(hard.astype(np.uint8) * 255)
    return mask.resize(size, Image.Resampling.BILINEAR).filter(ImageFilter.GaussianBlur(1))
