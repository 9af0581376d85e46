"""Camera moves over a still, chosen from the prompt's words.

A :class:`Pose` says which part of the source the frame shows: ``zoom`` 1 is the whole source
(cropped to the frame's shape), and the centre offsets are fractions of the slack that a zoom
leaves, so -1..1 always stays inside the source and no frame ever shows an edge. Every move
starts at the identity pose, so the first frame is the input image, as image-to-video models
promise; the zoom-outs are the exception, since they can only end there.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

__all__ = ["IDENTITY", "Move", "Pose", "choose_move", "ease"]


@dataclass(frozen=True, slots=True)
class Pose:
    zoom: float = 1.0
    x: float = 0.0  # -1 (the source's left edge) .. 1 (its right edge), as a share of slack
    y: float = 0.0  # -1 (top) .. 1 (bottom)

    def lerp(self, other: Pose, t: float) -> Pose:
        return Pose(
            self.zoom * (other.zoom / self.zoom) ** t,  # geometric: zoom speed looks constant
            self.x + (other.x - self.x) * t,
            self.y + (other.y - self.y) * t,
        )

    def parallax(self, origin: Pose, factor: float) -> Pose:
        """This pose for a layer that travels ``factor`` times as far as the background.

        A negative factor (an orbit) reverses the sideways travel but never the zoom.
        """
        return Pose(
            origin.zoom * (self.zoom / origin.zoom) ** abs(factor),
            origin.x + (self.x - origin.x) * factor,
            origin.y + (self.y - origin.y) * factor,
        )


IDENTITY = Pose()


@dataclass(frozen=True, slots=True)
class Move:
    """A named camera move: the background's start and end poses, and the foreground's speed."""

    name: str
    start: Pose
    end: Pose
    parallax: float  # foreground travel relative to the background's; negative: orbit

    def pose(self, t: float) -> Pose:
        return self.start.lerp(self.end, ease(t))

    def layer_poses(self, t: float) -> tuple[Pose, Pose]:
        background = self.pose(t)
        return background, background.parallax(self.start, self.parallax)


MOVES = {
    "ken-burns": Move("ken-burns", IDENTITY, Pose(1.16, 0.25, -0.2), 1.35),
    "zoom-in": Move("zoom-in", IDENTITY, Pose(1.3), 1.3),
    "zoom-out": Move("zoom-out", Pose(1.3), IDENTITY, 1.3),
    "dolly-in": Move("dolly-in", IDENTITY, Pose(1.22), 2.0),
    "dolly-out": Move("dolly-out", Pose(1.22), IDENTITY, 2.0),
    "pan-left": Move("pan-left", IDENTITY, Pose(1.2, -1.0, 0.0), 1.4),
    "pan-right": Move("pan-right", IDENTITY, Pose(1.2, 1.0, 0.0), 1.4),
    "tilt-up": Move("tilt-up", IDENTITY, Pose(1.2, 0.0, -1.0), 1.4),
    "tilt-down": Move("tilt-down", IDENTITY, Pose(1.2, 0.0, 1.0), 1.4),
    "orbit": Move("orbit", IDENTITY, Pose(1.18, 1.0, 0.0), -0.6),
}
DEFAULT_MOVE = "ken-burns"

# A travelling verb, maybe one adverb ("pans slowly"), maybe "to the", then the direction.
_MOVE = (
    r"(?:camera|pan\w*|mov\w*|track\w*|truck\w*|slid\w*|drift\w*|sweep\w*|glid\w*)\s+(?:\w+ly\s+)?"
)
# Checked in order, so "dolly out" wins over "out" and "pan left" over a bare "zoom".
_PATTERNS = (
    (r"\bdolly(?:ing)?\s+(?:out|back)|\bpull(?:s|ing)?\s+(?:back|out|away)", "dolly-out"),
    (
        r"\bdolly|\bpush(?:es|ing)?\s+in|\btrack(?:s|ing)?\s+in|\bfly(?:ing)?\s+(?:in|toward)",
        "dolly-in",
    ),
    (r"\bzoom(?:s|ing)?\s*-?\s*out|\breveal|\bwide(?:r|ns)?\b", "zoom-out"),
    (r"\borbit|\barc(?:s|ing)?\s+(?:shot|around)|\bcircl(?:e|es|ing)\s+around|\b360\b", "orbit"),
    (rf"\b{_MOVE}(?:to\s+the\s+)?left|\bleftward", "pan-left"),
    (rf"\b{_MOVE}(?:to\s+the\s+)?right|\brightward", "pan-right"),
    (
        r"\btilt(?:s|ing)?\s+up|\bcrane(?:s|ing)?\s+up|\blook(?:s|ing)?\s+up|\brising\b|\bascend",
        "tilt-up",
    ),
    (
        r"\btilt(?:s|ing)?\s+down|\bcrane(?:s|ing)?\s+down|\blook(?:s|ing)?\s+down|\bdescend",
        "tilt-down",
    ),
    (r"\bzoom|\bclose-?\s?up|\bcloser\b|\bpush\b", "zoom-in"),
    (r"\bpan(?:s|ning)?\b", "pan-right"),
    (r"\btilt(?:s|ing)?\b", "tilt-up"),
)


def choose_move(prompt: str) -> Move:
    """The first move that the prompt's words name; a gentle Ken Burns push-in otherwise."""
    lowered = prompt.lower()
    for pattern, name in _PATTERNS:
        if re.search(pattern, lowered):
            return MOVES[name]
    return MOVES[DEFAULT_MOVE]


def ease(t: float) -> float:
    """Cosine ease-in-out: a camera that starts and stops smoothly, as an operator's would."""
    t = min(max(t, 0.0), 1.0)
    return 0.5 - 0.5 * math.cos(math.pi * t)
