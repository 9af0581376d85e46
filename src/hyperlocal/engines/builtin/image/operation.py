"""The contract every classical edit meets, so the grammar and the pipeline need know no more."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from PIL import Image

__all__ = ["Operation", "number", "on_colour"]


class Operation(Protocol):
    """One edit step: a pure function of the image (RGB or RGBA in, RGB or RGBA out).

    ``label`` names the step and its settings, e.g. ``blur(3)``; the engine reports the labels of
    the steps it applied, in order, so a caller can see exactly what was done to the image.
    """

    @property
    def label(self) -> str: ...

    def apply(self, image: Image.Image) -> Image.Image: ...


def on_colour(image: Image.Image, change: Callable[[Image.Image], Image.Image]) -> Image.Image:
    """Applies an RGB-only ``change`` to the colour channels, keeping any alpha as it was."""
    if image.mode != "RGBA":
        return change(image.convert("RGB"))
    changed = change(image.convert("RGB"))
    changed.putalpha(image.getchannel("A"))
    return changed


def number(value: float) -> str:
    """A setting as a label shows it: ``3`` rather than ``3.0``."""
    return f"{value:g}"
