"""Image-to-video and text-to-video: a camera move over one still.

Text-to-video has no still of its own, so it first asks the built-in preview image renderer
for one (an honest placeholder card, labelled as such) and moves over that.
"""

from __future__ import annotations

import io
import math
from fractions import Fraction

from PIL import Image

from hyperlocal.engines.base import Category, GenerationRequest
from hyperlocal.engines.builtin.image import preview
from hyperlocal.engines.builtin.video.camera import choose_move
from hyperlocal.engines.builtin.video.layers import OVERSAMPLE, build_layers, render
from hyperlocal.engines.media.mp4 import Clip
from hyperlocal.engines.media.video_spec import VideoSpec, frame_size, seconds, text

__all__ = ["still_clip", "text_still"]

PREVIEW_LONG_SIDE = 1024  # the preview renderer's "1k"; past it, ask for "2k"
T2V_RATIO = 16 / 9  # text-to-video's shape when the request names none


def still_clip(request: GenerationRequest, image: Image.Image, mode: str) -> Clip:
    """The camera move that the prompt names, over ``image``, with two-layer parallax."""
    spec = VideoSpec(
        *frame_size(request.params, image.width / image.height), seconds(request.params)
    )
    move = choose_move(text(request.params, "prompt"))
    layers = build_layers(image, spec.size)
    last = spec.frames - 1
    frames = (render(layers, *move.layer_poses(i / last)) for i in range(spec.frames))
    facts: dict[str, float | str] = {"mode": mode, "camera": move.name, "depth": layers.method}
    return Clip(frames, spec.frames, spec.size, Fraction(spec.fps), facts=facts)


def text_still(request: GenerationRequest) -> Image.Image:
    """A still for text-to-video from the preview renderer, at the video's shape."""
    width, height = frame_size(request.params, T2V_RATIO)
    divisor = math.gcd(width, height)
    long_side = max(width, height) * OVERSAMPLE
    still = GenerationRequest(
        job_id=request.job_id,
        model=request.model,
        category=Category.IMAGE,
        params={
            "prompt": text(request.params, "prompt"),
            "aspect_ratio": f"{width // divisor}:{height // divisor}",
            "resolution": "1k" if long_side <= PREVIEW_LONG_SIDE else "2k",
        },
    )
    artifact = preview.render(still)
    with Image.open(io.BytesIO(artifact.data)) as opened:
        return opened.convert("RGB")
