"""Output sizes, from the request's ``size``, ``aspect_ratio`` and ``resolution``, and fitting."""

from __future__ import annotations

import re
from collections.abc import Mapping

from PIL import Image

from hyperlocal.engines.base import InputValue
from hyperlocal.errors import GenerationError

__all__ = [
    "LONG_SIDES",
    "MAX_SIDE",
    "MIN_SIDE",
    "Box",
    "Params",
    "Size",
    "clamp_size",
    "cover",
    "output_size",
    "parse_size",
    "ratio_size",
    "text_param",
]

Size = tuple[int, int]
Box = tuple[int, int, int, int]
Params = Mapping[str, InputValue]

LONG_SIDES = {"1k": 1024, "2k": 2048, "4k": 4096}
MIN_SIDE, MAX_SIDE = 64, 4096


def text_param(params: Params, key: str) -> str:
    value = params.get(key)
    return value.strip() if isinstance(value, str) else ""


def output_size(params: Params, fallback_ratio: Size) -> Size:
    """``size`` if given, else ``aspect_ratio`` (or ``fallback_ratio``) at ``resolution``."""
    if size := text_param(params, "size"):
        return parse_size(size)
    ratio = text_param(params, "aspect_ratio")
    resolution = text_param(params, "resolution").lower() or "1k"
    if resolution not in LONG_SIDES:
        raise GenerationError(f"resolution must be 1k, 2k or 4k, not {resolution!r}")
    parsed = fallback_ratio if ratio in ("", "auto", "match_input_image") else _parse_ratio(ratio)
    return ratio_size(parsed, LONG_SIDES[resolution])


def parse_size(text: str) -> Size:
    match = re.fullmatch(r"(\d+)\s*x\s*(\d+)", text.lower())
    if not match or not all(MIN_SIDE <= int(v) <= MAX_SIDE for v in match.groups()):
        raise GenerationError(f"size must be WIDTHxHEIGHT within {MIN_SIDE}..{MAX_SIDE}")
    return int(match[1]), int(match[2])


def _parse_ratio(text: str) -> Size:
    match = re.fullmatch(r"(\d+)\s*:\s*(\d+)", text)
    if not match or 0 in (int(match[1]), int(match[2])):
        raise GenerationError(f"aspect_ratio must look like 16:9, not {text!r}")
    return int(match[1]), int(match[2])


def ratio_size(ratio: Size, long: int) -> Size:
    """The size of shape ``ratio`` with the given long side, both sides even."""
    rw, rh = ratio
    short = max(MIN_SIDE, 2 * round(long * min(rw, rh) / max(rw, rh) / 2))
    return (long, short) if rw >= rh else (short, long)


def clamp_size(width: float, height: float) -> Size:
    """Rounds to whole pixels within MIN_SIDE..MAX_SIDE on each side."""
    return (
        min(MAX_SIDE, max(MIN_SIDE, round(width))),
        min(MAX_SIDE, max(MIN_SIDE, round(height))),
    )


def cover(image: Image.Image, size: Size) -> Image.Image:
    """Scales to fill ``size``, cropping the overflow evenly from both sides."""
    (sw, sh), (w, h) = image.size, size
    scale = max(w / sw, h / sh)
    cw, ch = w / scale, h / scale
    box = ((sw - cw) / 2, (sh - ch) / 2, (sw + cw) / 2, (sh + ch) / 2)
    return image.resize(size, Image.Resampling.BICUBIC, box=box, reducing_gap=2.0)
