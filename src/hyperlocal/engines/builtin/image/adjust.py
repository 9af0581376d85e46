"""Edits that change colour and tone, or filter detail: each pixel stays where it was."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from PIL import Image, ImageEnhance, ImageFilter, ImageOps

from hyperlocal.engines.builtin.image.operation import number, on_colour
from hyperlocal.engines.builtin.image.palette import RGB

__all__ = [
    "Blur",
    "Enhance",
    "Grayscale",
    "Invert",
    "Sepia",
    "Sharpen",
    "Temperature",
    "Tint",
]

Quality = Literal["brightness", "contrast", "saturation"]
_ENHANCERS = {
    "brightness": ImageEnhance.Brightness,
    "contrast": ImageEnhance.Contrast,
    "saturation": ImageEnhance.Color,
}
# The classic sepia matrix (Microsoft's), as Pillow's RGB->RGB convert takes it: 3 rows of 4.
_SEPIA = (0.393, 0.769, 0.189, 0, 0.349, 0.686, 0.168, 0, 0.272, 0.534, 0.131, 0)


def _grey(image: Image.Image) -> Image.Image:
    return ImageOps.grayscale(image).convert("RGB")


@dataclass(frozen=True, slots=True)
class Grayscale:
    label = "grayscale"

    def apply(self, image: Image.Image) -> Image.Image:
        return on_colour(image, _grey)


@dataclass(frozen=True, slots=True)
class Sepia:
    label = "sepia"

    def apply(self, image: Image.Image) -> Image.Image:
        return on_colour(image, lambda rgb: rgb.convert("RGB", _SEPIA))


@dataclass(frozen=True, slots=True)
class Invert:
    label = "invert"

    def apply(self, image: Image.Image) -> Image.Image:
        return on_colour(image, ImageOps.invert)


@dataclass(frozen=True, slots=True)
class Enhance:
    """Scales brightness, contrast or saturation: ``factor`` 1 leaves the image as it was."""

    quality: Quality
    factor: float

    @property
    def label(self) -> str:
        change = round((self.factor - 1) * 100)
        return f"{self.quality}({change:+d}%)"

    def apply(self, image: Image.Image) -> Image.Image:
        enhancer = _ENHANCERS[self.quality]
        return on_colour(image, lambda rgb: enhancer(rgb).enhance(self.factor))


@dataclass(frozen=True, slots=True)
class Temperature:
    """Warmer (``shift`` > 0: more red, less blue) or cooler (``shift`` < 0)."""

    shift: float

    @property
    def label(self) -> str:
        return "warmer" if self.shift > 0 else "cooler"

    def apply(self, image: Image.Image) -> Image.Image:
        matrix = (1 + self.shift, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1 - self.shift, 0)
        return on_colour(image, lambda rgb: rgb.convert("RGB", matrix))


@dataclass(frozen=True, slots=True)
class Tint:
    """Pulls the image toward ``colour`` by ``strength`` (1 is a full duotone recolour)."""

    colour: RGB
    name: str
    strength: float

    @property
    def label(self) -> str:
        verb = "recolour" if self.strength >= 1 else "tint"
        return f"{verb}({self.name})"

    def apply(self, image: Image.Image) -> Image.Image:
        return on_colour(image, self._tint)

    def _tint(self, rgb: Image.Image) -> Image.Image:
        # Luminance through black -> colour -> white keeps the shading and takes on the hue.
        tone = ImageOps.colorize(ImageOps.grayscale(rgb), (0, 0, 0), (255, 255, 255), self.colour)
        return Image.blend(rgb, tone, min(1.0, self.strength))


@dataclass(frozen=True, slots=True)
class Blur:
    """A Gaussian blur; without a radius, one scaled to the image (4 px at 1024)."""

    radius: float | None = None

    @property
    def label(self) -> str:
        return "blur" if self.radius is None else f"blur({number(self.radius)})"

    def apply(self, image: Image.Image) -> Image.Image:
        radius = self.radius if self.radius is not None else max(1.0, max(image.size) / 256)
        return image.filter(ImageFilter.GaussianBlur(radius))


@dataclass(frozen=True, slots=True)
class Sharpen:
    """An unsharp mask; the small threshold keeps flat areas and noise from being roughened."""

    radius: float = 2.0

    @property
    def label(self) -> str:
        return f"sharpen({number(self.radius)})"

    def apply(self, image: Image.Image) -> Image.Image:
        unsharp = ImageFilter.UnsharpMask(self.radius, percent=160, threshold=2)
        return on_colour(image, lambda rgb: rgb.filter(unsharp))
