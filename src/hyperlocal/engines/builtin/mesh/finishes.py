"""What each part of a text-to-3D model is made of, by art style and the prompt's words.

``realistic`` gives every role its everyday material (painted metal, glass, bark, snow), and a
colour word in the prompt repaints the recipe's main role ("a red car"). ``sculpture`` casts
the whole piece in one material, as a sculptor would: marble unless the prompt names bronze,
gold, clay, wood or stone.
"""

from __future__ import annotations

import re

from hyperlocal.engines.builtin.mesh.materials import Finish

__all__ = ["ART_STYLES", "finish_for", "sculpture_finish"]

ART_STYLES = ("realistic", "sculpture")

REALISTIC = {
    "wall": Finish((232, 218, 190), 0.0, 0.9),
    "roof": Finish((150, 52, 42), 0.0, 0.8),
    "door": Finish((112, 72, 42), 0.0, 0.7),
    "brick": Finish((160, 82, 60), 0.0, 0.95),
    "glass": Finish((150, 195, 225), 0.1, 0.08),
    "bark": Finish((106, 74, 46), 0.0, 0.95),
    "leaf": Finish((64, 132, 62), 0.0, 0.8),
    "paint": Finish((196, 32, 40), 0.6, 0.3),
    "tyre": Finish((28, 28, 30), 0.0, 0.9),
    "light": Finish((255, 246, 214), 0.0, 0.2),
    "wood": Finish((150, 102, 60), 0.0, 0.75),
    "fabric": Finish((58, 64, 140), 0.0, 1.0),
    "metal": Finish((176, 178, 186), 1.0, 0.35),
    "accent": Finish((240, 196, 52), 0.3, 0.4),
    "snow": Finish((244, 247, 255), 0.0, 0.6),
    "carrot": Finish((236, 118, 32), 0.0, 0.7),
    "coal": Finish((24, 24, 26), 0.0, 0.85),
    "ceramic": Finish((238, 236, 228), 0.0, 0.25),
    "coffee": Finish((70, 40, 22), 0.0, 0.15),
    "stem": Finish((236, 226, 204), 0.0, 0.85),
    "cap": Finish((204, 40, 36), 0.0, 0.5),
    "spot": Finish((250, 248, 240), 0.0, 0.7),
    "stone": Finish((150, 148, 144), 0.0, 0.9),
    "main": Finish((70, 110, 190), 0.2, 0.45),
}
COLOURS = {
    "red": (196, 32, 40), "orange": (236, 120, 32), "yellow": (240, 204, 40),
    "green": (54, 150, 70), "blue": (40, 90, 200), "purple": (120, 60, 170),
    "pink": (236, 130, 170), "white": (240, 240, 240), "black": (26, 26, 28),
    "gray": (130, 130, 134), "grey": (130, 130, 134), "brown": (120, 80, 48),
    "silver": (196, 198, 204), "gold": (212, 175, 55),
}  # fmt: skip
SCULPTURE_MATERIALS = (
    ("bronze", r"bronze|copper|brass", Finish((150, 100, 52), 1.0, 0.4)),
    ("gold", r"\bgold", Finish((212, 175, 55), 1.0, 0.25)),
    ("clay", r"clay|terracotta|ceramic", Finish((186, 108, 72), 0.0, 0.9)),
    ("wood", r"wood|carved", Finish((150, 104, 64), 0.0, 0.75)),
    ("stone", r"stone|granite|\brock\b|\brocks\b", Finish((128, 126, 122), 0.0, 0.95)),
)
MARBLE = ("marble", Finish((236, 233, 226), 0.0, 0.35))


def finish_for(role: str, main: str, prompt: str) -> Finish:
    """A realistic part's material; the main role takes the prompt's first colour word."""
    base = REALISTIC.get(role, REALISTIC["stone"])
    if role != main:
        return base
    colour = next((COLOURS[w] for w in re.findall(r"[a-z]+", prompt.lower()) if w in COLOURS), None)
    return Finish(colour, base.metallic, base.roughness) if colour else base


def sculpture_finish(prompt: str) -> tuple[str, Finish]:
    """The one material a sculpture is cast or carved in, and its name."""
    lowered = prompt.lower()
    found = next(((n, f) for n, words, f in SCULPTURE_MATERIALS if re.search(words, lowered)), None)
    return found or MARBLE
