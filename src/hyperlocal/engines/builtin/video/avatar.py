"""Talking portrait, honestly: the portrait breathes and nods with the voice's loudness.

There is no lip-sync model offline, so the mouth does not move. What moves is the camera and
the subject: a push-in and a nod that follow the audio's loudness envelope, a slow
breathing sway underneath, and the subject layer moving a little more than the backdrop.
The audio is muxed in as AAC, and the video lasts exactly as long as it.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from fractions import Fraction

import numpy as np
from numpy.typing import NDArray
from PIL import Image

from hyperlocal.engines.base import GenerationRequest, MediaCaps, MediaInput
from hyperlocal.engines.builtin.video.camera import IDENTITY, Pose
from hyperlocal.engines.builtin.video.layers import Layers, build_layers, render
from hyperlocal.engines.media.mp4 import Clip
from hyperlocal.engines.media.soundtrack import AudioTrack, decode_audio, loudness
from hyperlocal.engines.media.video_spec import FPS, frame_size
from hyperlocal.errors import GenerationError

__all__ = ["avatar_clip"]

MAX_SECONDS = 300.0
MIN_SECONDS = 0.2
SUBJECT_PARALLAX = 1.5  # the subject moves this much more than the backdrop


def avatar_clip(request: GenerationRequest, image: Image.Image, audio: MediaInput) -> Clip:
    track = _track(audio, request.caps)
    size = frame_size(request.params, image.width / image.height)
    count = max(2, math.ceil(track.seconds * FPS))
    layers = build_layers(image, size)
    envelope = loudness(track, FPS, count)
    facts: dict[str, float | str] = {
        "mode": "avatar",
        "motion": "push-in and nod following the audio's loudness",
        "lip_sync": "none: the mouth does not move",
        "depth": layers.method,
    }
    return Clip(_frames(layers, envelope), count, size, Fraction(FPS), track, facts)


def _track(media: MediaInput, caps: MediaCaps) -> AudioTrack:
    track = decode_audio(media.data, media.field, max_seconds=MAX_SECONDS + 1, caps=caps)
    if track is None or track.seconds < MIN_SECONDS:
        raise GenerationError(f"{media.field}: no audio to animate to")
    if track.seconds > MAX_SECONDS:
        raise GenerationError(f"{media.field}: longer than {MAX_SECONDS:g} seconds")
    return track


def _frames(layers: Layers, envelope: NDArray[np.float32]) -> Iterator[Image.Image]:
    for index, level in enumerate(envelope):
        background = _pose(index / FPS, float(level))
        yield render(layers, background, background.parallax(IDENTITY, SUBJECT_PARALLAX))


def _pose(t: float, level: float) -> Pose:
    """Push-in and a downward nod with loudness, over a 4-second breath and a slow sway."""
    breath = math.sin(2 * math.pi * t / 4.0)
    sway = math.sin(2 * math.pi * t / 6.5)
    zoom = 1.04 + 0.02 * level + 0.005 * breath
    return Pose(zoom, 0.2 * sway, -0.1 - 0.35 * level)
