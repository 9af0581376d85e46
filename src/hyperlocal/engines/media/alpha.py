"""Transparency: whether a picture has any, and flattening it onto a solid colour."""

from __future__ import annotations

from PIL import Image

__all__ = ["WHITE", "flatten", "has_transparency"]

WHITE = (255, 255, 255)


def has_transparency(image: Image.Image) -> bool:
    """An alpha band, or a palette entry or colour marked transparent."""
    return "A" in image.getbands() or "transparency" in image.info


def flatten(image: Image.Image, colour: tuple[int, int, int] = WHITE) -> Image.Image:
    """RGB, with transparent areas shown over ``colour``: white unless named, never black."""
    if not has_transparency(image):
        return image.convert("RGB")
    backdrop = Image.new("RGBA", image.size, (*colour, 255))
    return Image.alpha_composite(backdrop, image.convert("RGBA")).convert("RGB")
