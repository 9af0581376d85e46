"""Edits that move pixels rather than change them: crop, resize, rotate, flip."""

from __future__ import annotations

from dataclasses import dataclass

from PIL import Image, ImageOps

from hyperlocal.engines.builtin.image.operation import number
from hyperlocal.engines.media.image_geometry import clamp_size, cover

__all__ = ["AspectCrop", "Crop", "Flip", "Resize", "Rotate", "Scale"]


@dataclass(frozen=True, slots=True)
class Crop:
    """Keeps ``box`` (left, top, right, bottom as fractions of the width and height)."""

    box: tuple[float, float, float, float]
    name: str

    @property
    def label(self) -> str:
        return f"crop({self.name})"

    def apply(self, image: Image.Image) -> Image.Image:
        (w, h), (left, top, right, bottom) = image.size, self.box
        x0, y0 = round(left * w), round(top * h)
        return image.crop((x0, y0, max(x0 + 1, round(right * w)), max(y0 + 1, round(bottom * h))))


@dataclass(frozen=True, slots=True)
class AspectCrop:
    """The largest centred region of the given shape, e.g. 1:1 for a centre square."""

    width: int
    height: int

    @property
    def label(self) -> str:
        return f"crop({self.width}:{self.height})"

    def apply(self, image: Image.Image) -> Image.Image:
        w, h = image.size
        scale = min(w / self.width, h / self.height)
        cw, ch = max(1, round(self.width * scale)), max(1, round(self.height * scale))
        x0, y0 = (w - cw) // 2, (h - ch) // 2
        return image.crop((x0, y0, x0 + cw, y0 + ch))


@dataclass(frozen=True, slots=True)
class Resize:
    """Exactly ``width`` x ``height``; a change of shape crops evenly rather than stretching."""

    width: int
    height: int

    @property
    def label(self) -> str:
        return f"resize({self.width}x{self.height})"

    def apply(self, image: Image.Image) -> Image.Image:
        return cover(image, clamp_size(self.width, self.height))


@dataclass(frozen=True, slots=True)
class Scale:
    factor: float

    @property
    def label(self) -> str:
        return f"scale({number(round(self.factor * 100, 1))}%)"

    def apply(self, image: Image.Image) -> Image.Image:
        size = clamp_size(image.width * self.factor, image.height * self.factor)
        return image.resize(size, Image.Resampling.LANCZOS)


# Quarter turns are exact pixel moves; Pillow's angles run counter-clockwise.
_QUARTER_TURNS = {
    90: Image.Transpose.ROTATE_270,
    180: Image.Transpose.ROTATE_180,
    270: Image.Transpose.ROTATE_90,
}


@dataclass(frozen=True, slots=True)
class Rotate:
    """Turns by ``degrees`` clockwise; other than quarter turns, the canvas grows to fit."""

    degrees: float

    @property
    def label(self) -> str:
        return f"rotate({number(self.degrees)})"

    def apply(self, image: Image.Image) -> Image.Image:
        turn = self.degrees % 360
        if turn == 0:
            return image
        if turn in _QUARTER_TURNS:
            return image.transpose(_QUARTER_TURNS[int(turn)])
        # The corners that open up are transparent where alpha exists, else white.
        fill = (0, 0, 0, 0) if image.mode == "RGBA" else (255, 255, 255)
        return image.rotate(-turn, Image.Resampling.BICUBIC, expand=True, fillcolor=fill)


@dataclass(frozen=True, slots=True)
class Flip:
    horizontal: bool

    @property
    def label(self) -> str:
        return "flip(horizontal)" if self.horizontal else "flip(vertical)"

    def apply(self, image: Image.Image) -> Image.Image:
        return ImageOps.mirror(image) if self.horizontal else ImageOps.flip(image)
