"""What to build for a prompt: compositions of unit primitives, and what each part is made of.

Each recipe places shapes from ``shapes.py`` (Y up, front toward +Z, the ground at y = 0) and
names each part's role ("wall", "roof", "tyre"); ``finishes.py`` turns roles into colours and
materials. The first recipe whose words appear in the prompt wins; an abstract sculpture is
the fallback, and the result says which was used.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["RECIPES", "SCULPTURE", "Part", "Recipe", "choose_recipe"]

Vec = tuple[float, float, float]


@dataclass(frozen=True, slots=True)
class Part:
    shape: str  # a key of shapes.SHAPES
    size: Vec  # the unit shape's scale along x, y, z
    at: Vec  # where its centre goes
    role: str
    turn: Vec = (0.0, 0.0, 0.0)  # degrees about x, y, z, applied in that order before moving


@dataclass(frozen=True, slots=True)
class Recipe:
    name: str
    words: str  # a regular expression over the lowered prompt
    main: str  # the role that a colour word in the prompt repaints
    parts: tuple[Part, ...]


def _pair(part: Part, axis: int = 0) -> tuple[Part, Part]:
    """``part`` and its mirror image across the plane where coordinate ``axis`` is zero."""
    mirrored = list(part.at)
    mirrored[axis] = -mirrored[axis]
    x, y, z = mirrored
    return part, Part(part.shape, part.size, (x, y, z), part.role, part.turn)


def _four(part: Part) -> tuple[Part, ...]:
    """``part`` at the four corners (±x, ±z) of a rectangle: legs, wheels."""
    return (
        *_pair(part),
        *_pair(
            Part(part.shape, part.size, (part.at[0], part.at[1], -part.at[2]), part.role, part.turn)
        ),
    )


HOUSE = Recipe("house", r"\b(?:house|home|cottage|cabin|hut|barn|building)", "wall", (
    Part("box", (2.0, 1.3, 1.6), (0, 0.65, 0), "wall"),
    Part("prism", (2.3, 0.9, 1.8), (0, 1.75, 0), "roof"),
    Part("box", (0.42, 0.78, 0.06), (0, 0.39, 0.81), "door"),
    *_pair(Part("box", (0.42, 0.36, 0.05), (0.6, 0.82, 0.81), "glass")),
    Part("box", (0.26, 0.7, 0.26), (0.55, 1.95, -0.35), "brick"),
))  # fmt: skip
PINE = Recipe("pine tree", r"\b(?:pine|fir|spruce|conifer|christmas tree)", "leaf", (
    Part("cylinder", (0.25, 0.6, 0.25), (0, 0.3, 0), "bark"),
    Part("cone", (1.6, 1.0, 1.6), (0, 1.0, 0), "leaf"),
    Part("cone", (1.2, 0.9, 1.2), (0, 1.6, 0), "leaf"),
    Part("cone", (0.8, 0.8, 0.8), (0, 2.15, 0), "leaf"),
))  # fmt: skip
TREE = Recipe("tree", r"\b(?:tree|oak|maple|bush|shrub)", "leaf", (
    Part("cylinder", (0.3, 1.2, 0.3), (0, 0.6, 0), "bark"),
    Part("sphere", (1.4, 1.2, 1.4), (0, 1.7, 0), "leaf"),
    Part("sphere", (0.9, 0.8, 0.9), (0.5, 1.45, 0.2), "leaf"),
    Part("sphere", (0.9, 0.8, 0.9), (-0.45, 1.5, -0.25), "leaf"),
))  # fmt: skip
CAR = Recipe("car", r"\b(?:car|cars|vehicle|automobile|taxi|sedan|truck|jeep|van)\b", "paint", (
    Part("box", (2.6, 0.55, 1.2), (0, 0.55, 0), "paint"),
    Part("box", (1.4, 0.5, 1.05), (-0.15, 1.05, 0), "glass"),
    *_four(Part("cylinder", (0.6, 0.25, 0.6), (0.85, 0.3, 0.55), "tyre", (90, 0, 0))),
    *_pair(Part("sphere", (0.08, 0.16, 0.2), (1.3, 0.62, 0.4), "light"), axis=2),
))  # fmt: skip
CHAIR = Recipe("chair", r"\b(?:chair|stool|seat|throne)", "fabric", (
    Part("box", (1.0, 0.12, 1.0), (0, 0.9, 0), "wood"),
    Part("box", (0.9, 0.08, 0.9), (0, 1.0, 0.02), "fabric"),
    *_four(Part("box", (0.1, 0.9, 0.1), (0.42, 0.45, 0.42), "wood")),
    Part("box", (1.0, 1.0, 0.1), (0, 1.46, -0.45), "wood"),
))  # fmt: skip
TABLE = Recipe("table", r"\b(?:table|desk|bench)", "wood", (
    Part("box", (2.0, 0.1, 1.2), (0, 1.0, 0), "wood"),
    *_four(Part("cylinder", (0.1, 0.95, 0.1), (0.85, 0.475, 0.48), "wood")),
))  # fmt: skip
ROBOT = Recipe("robot", r"\b(?:robot|android|droid|mech|cyborg)", "paint", (
    *_pair(Part("box", (0.3, 0.8, 0.3), (0.25, 0.4, 0), "metal")),
    Part("box", (1.0, 1.0, 0.6), (0, 1.3, 0), "paint"),
    Part("box", (0.6, 0.5, 0.5), (0, 2.1, 0), "metal"),
    *_pair(Part("sphere", (0.12, 0.12, 0.12), (0.13, 2.15, 0.26), "light")),
    *_pair(Part("cylinder", (0.2, 0.9, 0.2), (0.65, 1.25, 0), "metal")),
    Part("cylinder", (0.04, 0.3, 0.04), (0, 2.5, 0), "metal"),
    Part("sphere", (0.12, 0.12, 0.12), (0, 2.67, 0), "accent"),
))  # fmt: skip
SNOWMAN = Recipe("snowman", r"\bsnow\s?man", "snow", (
    Part("sphere", (1.2, 1.2, 1.2), (0, 0.6, 0), "snow"),
    Part("sphere", (0.85, 0.85, 0.85), (0, 1.55, 0), "snow"),
    Part("sphere", (0.6, 0.6, 0.6), (0, 2.2, 0), "snow"),
    Part("cone", (0.1, 0.35, 0.1), (0, 2.2, 0.42), "carrot", (90, 0, 0)),
    *_pair(Part("sphere", (0.08, 0.08, 0.08), (0.1, 2.3, 0.27), "coal")),
    Part("cylinder", (0.6, 0.05, 0.6), (0, 2.47, 0), "coal"),
    Part("cylinder", (0.4, 0.4, 0.4), (0, 2.7, 0), "coal"),
))  # fmt: skip
MUG = Recipe("mug", r"\b(?:mug|cup|coffee|tea)\b", "ceramic", (
    Part("cylinder", (1.0, 1.1, 1.0), (0, 0.55, 0), "ceramic"),
    Part("cylinder", (0.9, 0.02, 0.9), (0, 1.1, 0), "coffee"),
    Part("torus", (0.75, 0.75, 0.9), (0.55, 0.55, 0), "ceramic", (90, 0, 0)),
))  # fmt: skip
ROCKET = Recipe("rocket", r"\b(?:rocket|spaceship|space ship|missile)", "paint", (
    Part("cylinder", (0.6, 2.0, 0.6), (0, 1.2, 0), "paint"),
    Part("cone", (0.6, 0.7, 0.6), (0, 2.55, 0), "accent"),
    *_pair(Part("prism", (0.5, 0.6, 0.06), (0.4, 0.45, 0), "accent")),
    *_pair(Part("prism", (0.5, 0.6, 0.06), (0.0, 0.45, 0.4), "accent", (0, 90, 0)), axis=2),
    Part("sphere", (0.25, 0.25, 0.1), (0, 1.7, 0.3), "glass"),
    Part("cone", (0.4, 0.3, 0.4), (0, 0.05, 0), "metal", (180, 0, 0)),
))  # fmt: skip
MUSHROOM = Recipe("mushroom", r"\b(?:mushroom|toadstool|fungus)", "cap", (
    Part("cylinder", (0.45, 1.0, 0.45), (0, 0.5, 0), "stem"),
    Part("sphere", (1.6, 0.8, 1.6), (0, 1.05, 0), "cap"),
    Part("sphere", (0.22, 0.1, 0.22), (0.3, 1.42, 0.2), "spot"),
    Part("sphere", (0.18, 0.1, 0.18), (-0.35, 1.38, 0.15), "spot"),
    Part("sphere", (0.2, 0.1, 0.2), (0.05, 1.42, -0.35), "spot"),
))  # fmt: skip
SCULPTURE = Recipe("abstract sculpture", "", "main", (
    Part("box", (1.0, 0.3, 1.0), (0, 0.15, 0), "stone"),
    Part("cylinder", (0.12, 0.5, 0.12), (0, 0.5, 0), "stone"),
    Part("torus", (1.3, 1.3, 1.3), (0, 1.4, 0), "main", (90, 0, 0)),
    Part("sphere", (0.55, 0.55, 0.55), (0, 1.4, 0), "accent"),
    Part("cone", (0.3, 0.5, 0.3), (0.45, 2.05, 0), "main", (0, 0, -35)),
))  # fmt: skip
# Most specific first: "a snowman by a pine tree" is a snowman, "a chair at a table" a chair.
RECIPES = (SNOWMAN, ROBOT, ROCKET, MUSHROOM, MUG, CAR, CHAIR, TABLE, PINE, TREE, HOUSE)


def choose_recipe(prompt: str) -> Recipe:
    lowered = prompt.lower()
    return next((r for r in RECIPES if re.search(r.words, lowered)), SCULPTURE)
