"""Two-layer parallax: the subject cut out in front, the backdrop filled in behind it.

There is no depth model offline, so depth is the coarsest guess that still reads as 3D: the
segmented subject is near and everything else is far. The far layer has the subject's hole
filled by pull-push inpainting (a weighted image pyramid, blurred), which is what a camera move
reveals at the subject's edges. When segmentation finds no subject, one flat layer moves.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from PIL import Image, ImageFilter

from hyperlocal.engines.mesh.segmentation import segment
from hyperlocal.engines.video.camera import Pose

__all__ = ["Layers", "build_layers", "cover", "render"]

Size = tuple[int, int]
Float = NDArray[np.float32]

OVERSAMPLE = 1.3  # the source is kept this much larger than the frame, so zooms stay sharp
HOLE_GROW = 0.015  # the subject's hole grows by this share of the short side: no halo behind it


@dataclass(frozen=True, slots=True)
class Layers:
    background: Image.Image  # RGB, the frame's shape, OVERSAMPLE times its size
    foreground: Image.Image | None  # RGBA, the same size; None when no subject was found
    frame: Size

    @property
    def method(self) -> str:
        return "2-layer parallax" if self.foreground is not None else "single layer"


def cover(image: Image.Image, size: Size) -> Image.Image:
    """``image`` scaled to fill ``size``, with the overflow cropped evenly from both sides."""
    (sw, sh), (w, h) = image.size, size
    scale = max(w / sw, h / sh)
    cw, ch = w / scale, h / scale
    box = ((sw - cw) / 2, (sh - ch) / 2, (sw + cw) / 2, (sh + ch) / 2)
    return image.convert("RGB").resize(size, Image.Resampling.BICUBIC, box=box, reducing_gap=2.0)


def build_layers(image: Image.Image, frame: Size, *, parallax: bool = True) -> Layers:
    source = cover(image, (round(frame[0] * OVERSAMPLE), round(frame[1] * OVERSAMPLE)))
    found = segment(source) if parallax else None
    if found is None or not found.found:
        return Layers(source, None, frame)
    mask = Image.fromarray(found.mask.astype(np.uint8) * 255)
    grow = max(2.0, HOLE_GROW * min(source.size))
    hole = np.asarray(mask.filter(ImageFilter.GaussianBlur(grow))) > 8
    foreground = source.convert("RGBA")
    foreground.putalpha(mask.filter(ImageFilter.GaussianBlur(1.2)))
    return Layers(inpaint(source, hole), foreground, frame)


def render(layers: Layers, background: Pose, foreground: Pose) -> Image.Image:
    frame = _view(layers.background, layers.frame, background)
    if layers.foreground is not None:
        near = _view(layers.foreground, layers.frame, foreground)
        frame.paste(near, (0, 0), near)
    return frame


def _view(source: Image.Image, frame: Size, pose: Pose) -> Image.Image:
    """The part of ``source`` that ``pose`` frames, resampled to ``frame``: one affine warp."""
    (sw, sh), (w, h) = source.size, frame
    scale = sw / (pose.zoom * w)  # source pixels per frame pixel
    cx = sw / 2 + pose.x * (sw - sw / pose.zoom) / 2
    cy = sh / 2 + pose.y * (sh - sh / pose.zoom) / 2
    data = (scale, 0.0, cx - scale * w / 2, 0.0, scale, cy - scale * h / 2)
    return source.transform(frame, Image.Transform.AFFINE, data, Image.Resampling.BILINEAR)


def inpaint(image: Image.Image, hole: NDArray[np.bool_]) -> Image.Image:
    """``image`` with ``hole`` filled from its surroundings, smoothly, and nothing else changed."""
    known = (~hole).astype(np.float32)
    levels = [(np.asarray(image, np.float32) * known[..., None], known)]
    while min(levels[-1][1].shape) > 4:
        levels.append(_halve(*levels[-1]))
    colour, weight = levels[-1]
    filled = colour / np.maximum(weight, 1e-6)[..., None]
    for colour, weight in reversed(levels[:-1]):
        filled = colour + (1 - weight)[..., None] * _double(filled, weight.shape)
    smooth = _to_image(filled).filter(ImageFilter.GaussianBlur(max(2.0, min(image.size) / 150)))
    result = image.copy()
    result.paste(smooth, (0, 0), Image.fromarray(hole.astype(np.uint8) * 255))
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
