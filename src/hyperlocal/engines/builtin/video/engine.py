"""The ``motion-video`` engine: real motion made from the request's own media, on the CPU.

No video diffusion weights ship offline, so nothing here invents content. Each request gets
the most honest motion its inputs allow, and ``extra`` says which:

- an image (i2v): a camera move named by the prompt, with two-layer parallax;
- a prompt only (t2v): the same move over the preview renderer's labelled placeholder still;
- a start and an end image: a camera move across a luma-keyed dissolve;
- a video (edit): regraded and retimed by the prompt's words;
- an image and audio (avatar): loudness-driven motion with the audio muxed in.

``sound``/``generate_audio`` adds quiet room tone, never a soundtrack matched to the picture.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from hyperlocal.engines.base import (
    Artifact,
    EngineContext,
    GenerationRequest,
    GenerationResult,
    MediaInput,
    ProgressCallback,
)
from hyperlocal.engines.builtin.video.avatar import avatar_clip
from hyperlocal.engines.builtin.video.edit import edit_clip
from hyperlocal.engines.builtin.video.stills import still_clip, text_still
from hyperlocal.engines.builtin.video.transition import transition_clip
from hyperlocal.engines.media.image_codec import decode
from hyperlocal.engines.media.mp4 import Clip, encode_mp4
from hyperlocal.engines.media.progress import Report, run_reporting
from hyperlocal.engines.media.soundtrack import ambience
from hyperlocal.engines.media.video_spec import flag, text

__all__ = ["MotionVideoEngine"]

SOUND_FLAGS = ("sound", "generate_audio")
PREPARE_SHARE = 0.05  # of the progress bar; decoding and segmenting are quick beside encoding


class MotionVideoEngine:
    """Image-, text-, transition-, edit- and avatar-to-video by classical means (CPU, PyAV)."""

    def __init__(self, context: EngineContext) -> None:
        self._context = context

    async def generate(
        self, request: GenerationRequest, progress: ProgressCallback
    ) -> GenerationResult:
        await progress(0.0, "preparing frames")
        result = await run_reporting(lambda report: _produce(request, report), progress)
        await progress(1.0, "video ready")
        return result

    async def aclose(self) -> None:
        return None


def _produce(request: GenerationRequest, report: Report) -> GenerationResult:
    clip = _with_sound(request, _clip(request))
    report(PREPARE_SHARE, "rendering and encoding H.264")
    data = encode_mp4(
        clip,
        lambda done: report(
            PREPARE_SHARE + (1 - PREPARE_SHARE) * done, "rendering and encoding H.264"
        ),
    )
    extra: dict[str, float | str] = {"engine": "motion-video", **clip.facts}
    extra.update(width=clip.size[0], height=clip.size[1], fps=float(clip.fps))
    artifact = Artifact(data=data.data, content_type="video/mp4", extension="mp4")
    return GenerationResult(artifacts=[artifact], duration=data.seconds, extra=extra)


def _clip(request: GenerationRequest) -> Clip:
    """Chooses the mode from which media the request carries."""
    if video := _first(request, "video"):
        return edit_clip(request, video)
    start = _first(request, "image", "start_image", "first_frame_image")
    if start is not None and (audio := _first(request, "audio")):
        return avatar_clip(request, decode(start), audio)
    if start is not None and (end := _first(request, "end_image", "last_image")):
        return transition_clip(request, decode(start), decode(end))
    if start is not None:
        return still_clip(request, decode(start), "image-to-video")
    return still_clip(request, text_still(request), "text-to-video (preview still)")


def _first(request: GenerationRequest, *fields: str) -> MediaInput | None:
    found: Sequence[MediaInput] = next(
        (request.media[f] for f in fields if request.media.get(f)), ()
    )
    return found[0] if found else None


def _with_sound(request: GenerationRequest, clip: Clip) -> Clip:
    if clip.audio is not None or not flag(request.params, *SOUND_FLAGS):
        return clip
    track = ambience(clip.seconds, f"{request.model}\0{text(request.params, 'prompt')}")
    facts = {**clip.facts, "audio": "ambient room tone (filtered noise), not scene sound"}
    return dataclasses.replace(clip, audio=track, facts=facts)
