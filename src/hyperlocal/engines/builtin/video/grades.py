"""Colour grades and looks for video edits, picked from the prompt's words.

Every grade is a whole-frame Pillow operation (a colour matrix, a lookup table, a filter), so
each costs a few milliseconds a frame. They restyle a clip; they cannot add or remove objects,
and the edit engine says so.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from PIL import Image, ImageChops, ImageEnhance, ImageFilter, ImageOps

__all__ = ["DEFAULT_GRADE", "Grade", "apply_grades", "choose_grades"]

MAX_GRADES = 3

Op = Callable[[Image.Image], Image.Image]


@dataclass(frozen=True, slots=True)
class Grade:
    name: str
    words: str  # a regular expression over the lowered prompt
    apply: Op


def _matrix(*values: float) -> Op:
    matrix = tuple(values)
    return lambda image: image.convert("RGB", matrix)


def _curves(red: float, green: float, blue: float) -> Op:
    """Per-channel gamma: below 1 lifts a channel, above 1 sinks it."""
    tables = [[round(255 * (v / 255) ** g) for v in range(256)] for g in (red, green, blue)]
    flat = [value for table in tables for value in table]
    return lambda image: image.point(flat)


def _grey(image: Image.Image) -> Image.Image:
    return ImageOps.grayscale(image).convert("RGB")


def _noir(image: Image.Image) -> Image.Image:
    return ImageOps.autocontrast(ImageOps.grayscale(image), cutoff=3).convert("RGB")


def _glow(image: Image.Image) -> Image.Image:
    halo = image.reduce(4).filter(ImageFilter.GaussianBlur(4)).resize(image.size)
    return Image.blend(image, ImageChops.screen(image, halo), 0.6)


def _cartoon(image: Image.Image) -> Image.Image:
    flat = ImageOps.posterize(image.filter(ImageFilter.SMOOTH_MORE), 3)
    return ImageEnhance.Color(flat).enhance(1.4)


def _sketch(image: Image.Image) -> Image.Image:
    edges = ImageOps.grayscale(image).filter(ImageFilter.FIND_EDGES)
    return ImageOps.autocontrast(ImageOps.invert(edges), cutoff=1).convert("RGB")


def _saturation(factor: float) -> Op:
    return lambda image: ImageEnhance.Color(image).enhance(factor)


def _brightness(factor: float) -> Op:
    return lambda image: ImageEnhance.Brightness(image).enhance(factor)


def _cinematic(image: Image.Image) -> Image.Image:
    # Teal shadows, warm highlights, a little more contrast: the trailer look.
    graded = _curves(0.92, 1.0, 1.08)(image)
    return ImageEnhance.Contrast(graded).enhance(1.12)


DEFAULT_GRADE = Grade("cinematic", "", _cinematic)
GRADES: Sequence[Grade] = (
    Grade("noir", r"\bnoir\b|film noir|high.contrast black", _noir),
    Grade("black-and-white", r"black.and.white|\bb&w\b|gr[ae]yscale|monochrome", _grey),
    Grade(
        "sepia",
        r"sepia|vintage|old.?film|\bretro|1920s|antique|western",
        _matrix(0.393, 0.769, 0.189, 0, 0.349, 0.686, 0.168, 0, 0.272, 0.534, 0.131, 0),
    ),
    Grade("warm", r"\bwarm|golden|sunset|summer|autumn", _curves(0.85, 0.95, 1.15)),
    Grade("cool", r"\bcool|\bcold|winter|icy|moonlight|\bblue\b|night", _curves(1.15, 1.0, 0.85)),
    Grade("invert", r"invert|negative|x-?ray", ImageOps.invert),
    Grade("cartoon", r"cartoon|anime|comic|cel.?shad|pixar|painting|painted", _cartoon),
    Grade("sketch", r"sketch|pencil|drawing|line.?art", _sketch),
    Grade("dreamy", r"dream|glow|ethereal|soft.?focus|hazy|bloom", _glow),
    Grade("vivid", r"vivid|saturat|vibrant|neon|colou?rful|\bpop\b", _saturation(1.8)),
    Grade("muted", r"muted|desaturat|faded|washed", _saturation(0.45)),
    Grade("darker", r"\bdark|moody|gloomy|night", _brightness(0.7)),
    Grade("brighter", r"\bbright|sunny|lighter", _brightness(1.3)),
    Grade("cinematic", r"cinematic|movie|teal|blockbuster|film look", _cinematic),
)


def choose_grades(prompt: str) -> list[Grade]:
    """The grades that the prompt's words name, in a fixed order, at most MAX_GRADES."""
    lowered = prompt.lower()
    named = [grade for grade in GRADES if re.search(grade.words, lowered)]
    return named[:MAX_GRADES]


def apply_grades(image: Image.Image, grades: Sequence[Grade]) -> Image.Image:
    for grade in grades:
        image = grade.apply(image)
    return image
