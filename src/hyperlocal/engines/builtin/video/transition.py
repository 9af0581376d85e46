"""Start frame to end frame: one continuous camera move across a luma-keyed dissolve.

This is not frame interpolation: nothing is matched between the two images. The start image
travels along the prompt's camera move, the end image arrives along its continuation, and the
end image's bright areas show through first, which reads as a transition, not a crossfade.
"""

from __future__ import annotations

from collections.abc import Iterator
from fractions import Fraction

import numpy as np
from PIL import Image, ImageFilter, ImageOps

from hyperlocal.engines.base import GenerationRequest
from hyperlocal.engines.builtin.video.camera import IDENTITY, Move, Pose, choose_move, ease
from hyperlocal.engines.builtin.video.layers import Layers, build_layers, render
from hyperlocal.engines.media.mp4 import Clip
from hyperlocal.engines.media.video_spec import VideoSpec, frame_size, seconds, text

__all__ = ["transition_clip"]

SOFTNESS = 0.35  # the width of the dissolve's edge in luma; 0 would be a hard luma wipe
FLAT = 16  # a luma range below this is noise, not a picture to key on
DISSOLVE = (0.15, 0.85)  # the share of the clip over which the dissolve runs


def transition_clip(request: GenerationRequest, start: Image.Image, end: Image.Image) -> Clip:
    spec = VideoSpec(
        *frame_size(request.params, start.width / start.height), seconds(request.params)
    )
    move = choose_move(text(request.params, "prompt"))
    first = build_layers(start, spec.size, parallax=False)
    last = build_layers(end, spec.size, parallax=False)
    frames = _frames(first, last, move, spec.frames)
    facts: dict[str, float | str] = {
        "mode": "transition",
        "camera": move.name,
        "blend": "luma-keyed dissolve, no frame interpolation",
    }
    return Clip(frames, spec.frames, spec.size, Fraction(spec.fps), facts=facts)


def _frames(first: Layers, last: Layers, move: Move, count: int) -> Iterator[Image.Image]:
    # The end image comes in on the move's mirror image, so the travel reads as one motion.
    arrival = Move(move.name, Pose(move.end.zoom, -move.end.x, -move.end.y), IDENTITY, 1.0)
    for index in range(count):
        t = index / (count - 1)
        a = render(first, move.pose(t), move.pose(t))
        b = render(last, arrival.pose(t), arrival.pose(t))
        yield Image.composite(b, a, _key(b, _mix(t)))


def _mix(t: float) -> float:
    lo, hi = DISSOLVE
    return ease((t - lo) / (hi - lo))


def _key(frame: Image.Image, mix: float) -> Image.Image:
    """Where ``frame`` shows: its blurred luma against a threshold that sweeps with ``mix``.

    The luma is stretched to its full range first, so the sweep takes as long on a dim or a
    flat picture (a flat one simply crossfades) as on a contrasty one.
    """
    small = frame.convert("L").reduce(8).filter(ImageFilter.GaussianBlur(2))
    luma = np.asarray(small)
    flat = int(luma.max()) - int(luma.min()) < FLAT
    small = Image.new("L", small.size, 128) if flat else ImageOps.autocontrast(small)
    level = mix * (1 + SOFTNESS)
    table = [round(255 * min(1.0, max(0.0, (level - v / 255) / SOFTNESS))) for v in range(256)]
    return small.point(table).resize(frame.size, Image.Resampling.BILINEAR)
