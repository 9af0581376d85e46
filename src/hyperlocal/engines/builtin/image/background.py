"""Edits that treat the subject and its backdrop apart, using the classical foreground mask."""

from __future__ import annotations

from dataclasses import dataclass

from PIL import Image, ImageChops

from hyperlocal.engines.builtin.image.adjust import Blur
from hyperlocal.engines.builtin.image.operation import number
from hyperlocal.engines.builtin.image.palette import RGB
from hyperlocal.engines.media.alpha import flatten
from hyperlocal.engines.media.segmentation import CUTOUT, segment

__all__ = ["BlurBackground", "RemoveBackground", "ReplaceBackground"]


@dataclass(frozen=True, slots=True)
class RemoveBackground:
    """Cuts the subject out: RGBA, transparent wherever the backdrop was."""

    label = "remove-background"

    def apply(self, image: Image.Image) -> Image.Image:
        cut = image.convert("RGBA")
        cut.putalpha(ImageChops.multiply(cut.getchannel("A"), segment(image, CUTOUT).alpha))
        return cut


@dataclass(frozen=True, slots=True)
class ReplaceBackground:
    colour: RGB
    name: str

    @property
    def label(self) -> str:
        return f"background({self.name})"

    def apply(self, image: Image.Image) -> Image.Image:
        return flatten(RemoveBackground().apply(image), self.colour)


@dataclass(frozen=True, slots=True)
class BlurBackground:
    """Blurs only the backdrop (a portrait-mode look); without a radius, 8 px at 1024."""

    radius: float | None = None

    @property
    def label(self) -> str:
        return (
            "blur-background" if self.radius is None else f"blur-background({number(self.radius)})"
        )

    def apply(self, image: Image.Image) -> Image.Image:
        radius = self.radius if self.radius is not None else max(2.0, max(image.size) / 128)
        blurred = Blur(radius).apply(image)
        return Image.composite(image, blurred, segment(image, CUTOUT).alpha)
