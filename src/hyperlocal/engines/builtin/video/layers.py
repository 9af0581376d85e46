"""Two-layer parallax: the subject cut out in front, the backdrop filled in behind it.

There is no depth model offline, so depth is the coarsest guess that still reads as 3D: the
segmented subject is near and everything else is far. The far layer has the subject's hole
filled by pull-push inpainting (a weighted image pyramid, blurred), which is what a camera move
reveals at the subject's edges. When segmentation finds no subject, one flat layer moves.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from PIL import Image, ImageFilter

from hyperlocal.engines.builtin.video.camera import Pose
from hyperlocal.engines.media.image_geometry import cover
from hyperlocal.engines.media.segmentation import segment

__all__ = ["Layers", "build_layers", "render"]

Size = tuple[int, int]
Float = NDArray[np.float32]

OVERSAMPLE = 1.3  # the source is kept this much larger than the frame, so zooms stay sharp
# Shares of the short side. Pixels this close to the subject are not trusted as backdrop (they
# hold its anti-aliased edge), and the fill replaces the backdrop this far past the subject.
UNTRUSTED_EDGE, FILL_EDGE = 0.015, 0.004
MAX_SUBJECT_WIDTH, MAX_SUBJECT_AREA = 0.85, 0.6  # shares of the frame


@dataclass(frozen=True, slots=True)
class Layers:
    background: Image.Image  # RGB, the frame's shape, OVERSAMPLE times its size
    foreground: Image.Image | None  # RGBA: the subject's bounding box cut from the source
    origin: tuple[int, int]  # where the foreground's corner sits on the background
    frame: Size

    @property
    def method(self) -> str:
        return "2-layer parallax" if self.foreground is not None else "single layer"


def build_layers(image: Image.Image, frame: Size, *, parallax: bool = True) -> Layers:
    size = (round(frame[0] * OVERSAMPLE), round(frame[1] * OVERSAMPLE))
    source = cover(image.convert("RGB"), size)
    found = segment(source) if parallax else None
    if found is None or not found.found or not _compact(found.mask):
        return Layers(source, None, (0, 0), frame)
    mask = found.alpha
    subject = source.convert("RGBA")
    subject.putalpha(mask.filter(ImageFilter.GaussianBlur(1.2)))
    box = _grown_box(mask, source.size)
    backdrop = inpaint(source, _grown(mask, UNTRUSTED_EDGE), _grown(mask, FILL_EDGE))
    return Layers(backdrop, subject.crop(box), box[:2], frame)


def _compact(mask: NDArray[np.bool_]) -> bool:
    """A subject to lift off the backdrop, not a band of landscape across the whole frame.

    Lifting a ridge line or a horizon would tear a frame-wide hole for the fill to guess at.
    """
    columns = np.flatnonzero(mask.any(axis=0))
    width = (columns[-1] - columns[0] + 1) / mask.shape[1] if columns.size else 0.0
    return bool(width <= MAX_SUBJECT_WIDTH and mask.mean() <= MAX_SUBJECT_AREA)


def _grown(mask: Image.Image, share: float) -> NDArray[np.bool_]:
    """The mask dilated by ``share`` of the short side (a blur and a low threshold: fast)."""
    return np.asarray(mask.filter(ImageFilter.GaussianBlur(max(1.0, share * min(mask.size))))) > 8


def render(layers: Layers, background: Pose, foreground: Pose) -> Image.Image:
    """One frame: the backdrop framed by ``background``, the subject by ``foreground``."""
    scale, x0, y0 = _window(layers.background.size, layers.frame, background)
    box = (x0, y0, x0 + scale * layers.frame[0], y0 + scale * layers.frame[1])
    frame = layers.background.resize(
        layers.frame, Image.Resampling.BILINEAR, box=_inside(box, layers.background.size)
    )
    if layers.foreground is not None:
        _paste_subject(frame, layers, layers.foreground, foreground)
    return frame


def _window(source: Size, frame: Size, pose: Pose) -> tuple[float, float, float]:
    """Source pixels per frame pixel, and the source point at the frame's top-left corner."""
    (sw, sh), (w, h) = source, frame
    scale = sw / (pose.zoom * w)
    cx = sw / 2 + pose.x * (sw - sw / pose.zoom) / 2
    cy = sh / 2 + pose.y * (sh - sh / pose.zoom) / 2
    return scale, cx - scale * w / 2, cy - scale * h / 2


def _paste_subject(frame: Image.Image, layers: Layers, subject: Image.Image, pose: Pose) -> None:
    """Warps only the subject's box, not a whole frame of transparency: most of the saving."""
    scale, x0, y0 = _window(layers.background.size, layers.frame, pose)
    (ox, oy), (cw, ch) = layers.origin, subject.size
    left, top = max(0, math.floor((ox - x0) / scale)), max(0, math.floor((oy - y0) / scale))
    right = min(frame.width, math.ceil((ox + cw - x0) / scale))
    bottom = min(frame.height, math.ceil((oy + ch - y0) / scale))
    if right <= left or bottom <= top:
        return
    data = (scale, 0.0, x0 + scale * left - ox, 0.0, scale, y0 + scale * top - oy)
    piece = subject.transform(
        (right - left, bottom - top), Image.Transform.AFFINE, data, Image.Resampling.BILINEAR
    )
    frame.paste(piece, (left, top), piece)


def _grown_box(mask: Image.Image, size: Size) -> tuple[int, int, int, int]:
    """The mask's bounding box with a margin, so bilinear edges blend into real colours."""
    x0, y0, x1, y1 = mask.getbbox() or (0, 0, *size)
    pad = 4
    return max(0, x0 - pad), max(0, y0 - pad), min(size[0], x1 + pad), min(size[1], y1 + pad)


def _inside(
    box: tuple[float, float, float, float], size: Size
) -> tuple[float, float, float, float]:
    """Rounding can put a box a hair outside the source, which resize() refuses."""
    x0, y0, x1, y1 = box
    return max(0.0, x0), max(0.0, y0), min(float(size[0]), x1), min(float(size[1]), y1)


def inpaint(image: Image.Image, hole: NDArray[np.bool_], fill: NDArray[np.bool_]) -> Image.Image:
    """``image`` with ``fill`` replaced by a smooth guess from the pixels outside ``hole``."""
    known = (~hole).astype(np.float32)
    levels = [(np.asarray(image, np.float32) * known[..., None], known)]
    while min(levels[-1][1].shape) > 4:
        levels.append(_halve(*levels[-1]))
    colour, weight = levels[-1]
    filled: Float = (colour / np.maximum(weight, 1e-6)[..., None]).astype(np.float32)
    for colour, weight in reversed(levels[:-1]):
        filled = (colour + (1 - weight)[..., None] * _double(filled, weight.shape)).astype(
            np.float32
        )
    smooth = _to_image(filled).filter(ImageFilter.GaussianBlur(max(2.0, min(image.size) / 150)))
    result = image.copy()
    result.paste(smooth, (0, 0), Image.fromarray(fill.astype(np.uint8) * 255))
    return result


def _halve(colour: Float, weight: Float) -> tuple[Float, Float]:
    """A 2x2 box average of premultiplied colour and its weight (odd edges are dropped)."""
    h, w = (weight.shape[0] // 2) * 2, (weight.shape[1] // 2) * 2
    c = colour[:h, :w].reshape(h // 2, 2, w // 2, 2, 3).mean(axis=(1, 3))
    k = weight[:h, :w].reshape(h // 2, 2, w // 2, 2).mean(axis=(1, 3))
    return c.astype(np.float32), k.astype(np.float32)


def _double(colour: Float, shape: tuple[int, ...]) -> Float:
    resized = _to_image(colour).resize((shape[1], shape[0]), Image.Resampling.BILINEAR)
    return np.asarray(resized, np.float32)


def _to_image(colour: Float) -> Image.Image:
    return Image.fromarray(np.clip(colour + 0.5, 0, 255).astype(np.uint8))
