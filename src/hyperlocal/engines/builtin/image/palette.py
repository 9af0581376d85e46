"""Colours for the preview scene, and which prompt words choose them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["PALETTES", "PALETTE_OF", "RGB", "SCENE_OF", "Palette", "lerp", "ramp"]

RGB = tuple[int, int, int]


@dataclass(frozen=True, slots=True)
class Palette:
    sky: tuple[RGB, ...]  # from the top of the sky down to the horizon
    sun: RGB
    land: RGB
    night: bool = False


# Hex colours: the sky from top to horizon / the sun (or moon) / the nearest land.
_PALETTE_HEX = {
    "sunset": "281a54 943070 f06854 ffbe6e / ffe6aa / 2e1436",
    "ocean": "0c2c60 1c68a8 60b2d6 c8eaf2 / fffae8 / 0a3462",
    "forest": "183e3c 3c7c62 96c496 e6eecc / fff6d6 / 122e24",
    "night": "040618 10163e 302c70 74549c / ececff / 080818",
    "dawn": "607cd2 b09cdc fabec4 ffe4cc / fff4de / 463e76",
    "desert": "4080c8 8cbade f4d2a0 ecaa6e / fff6dc / 96522c",
    "ember": "380816 92162a e44c3c ffb078 / ffdeaa / 260610",
    "autumn": "3e2840 b05834 ea9640 fad68c / ffeebe / 401e16",
    "winter": "466896 8cb2d4 d2e4f0 f6fafc / ffffff / 5c7696",
    "dream": "3a246e 7c4eb0 d68ccc fad2e2 / fff0f8 / 341e56",
}


def _palette(name: str, spec: str) -> Palette:
    sky, sun, land = ([_hex(c) for c in part.split()] for part in spec.split("/"))
    return Palette(tuple(sky), sun[0], land[0], night=name == "night")


def _hex(colour: str) -> RGB:
    return int(colour[:2], 16), int(colour[2:4], 16), int(colour[4:], 16)


PALETTES = {name: _palette(name, spec) for name, spec in _PALETTE_HEX.items()}
_PALETTE_WORDS = {
    "sunset": "sunset sundown dusk evening golden orange warm",
    "ocean": "ocean sea beach wave water lake river coast blue underwater surf island",
    "forest": "forest tree jungle wood woods green garden meadow grass leaf nature moss",
    "night": "night moon star city midnight dark neon space galaxy cyberpunk",
    "dawn": "dawn sunrise morning sky cloud mountain soft",
    "desert": "desert sand dune canyon sahara",
    "ember": "red fire lava volcano crimson rose flame dragon",
    "autumn": "autumn fall gold leaves harvest pumpkin",
    "winter": "snow winter ice frost cold arctic white",
    "dream": "purple violet lavender dream pastel spring flower cherry magic fairy",
}
_SCENE_WORDS = {
    "waves": "ocean sea beach wave water lake coast surf underwater island",
    "skyline": "city town street building skyline urban neon skyscraper cyberpunk downtown",
    "forest": "forest tree pine jungle wood woods taiga",
}
PALETTE_OF = {w: name for name, words in _PALETTE_WORDS.items() for w in words.split()}
SCENE_OF = {w: name for name, words in _SCENE_WORDS.items() for w in words.split()}


def lerp(a: RGB, b: RGB, t: float) -> RGB:
    r, g, bl = (round(x + (y - x) * t) for x, y in zip(a, b, strict=True))
    return r, g, bl


def ramp(stops: Sequence[RGB], t: float) -> RGB:
    """The colour at ``t`` (clamped to 0..1) along evenly spaced ``stops``."""
    scaled = min(max(t, 0.0), 1.0) * (len(stops) - 1)
    i = min(int(scaled), len(stops) - 2)
    return lerp(stops[i], stops[i + 1], scaled - i)
