"""The ``voice-match`` engine (``audio-clone``): Piper speech moved toward a reference voice.

This is not neural voice cloning: no CPU zero-shot cloning model can be had offline. It is
F0 and formant matching with the WORLD vocoder (see ``matching.py``): the text is spoken by
Piper, with emotion tags as in ``audio-tts``, then resynthesised at the reference's median F0
with its envelope warped to the reference's formant scale. The result says so in
``extra["method"]`` and reports how far it got: the reference-to-output similarity before and
after matching, under the measure named in ``extra["similarity_measure"]``.
"""

from __future__ import annotations

import asyncio

from hyperlocal.engines.base import (
    EngineContext,
    GenerationRequest,
    GenerationResult,
    ProgressCallback,
)
from hyperlocal.engines.builtin.audio import matching, similarity
from hyperlocal.engines.builtin.audio.lazy import Lazy
from hyperlocal.engines.builtin.audio.levels import set_level, soft_limit
from hyperlocal.engines.builtin.audio.speech import SPEECH_DBFS
from hyperlocal.engines.builtin.audio.tts import render, script
from hyperlocal.engines.builtin.audio.voice import load_speaker
from hyperlocal.engines.media.audio_codec import Audio, decode, encode
from hyperlocal.errors import InputError

__all__ = ["METHOD", "VoiceMatchEngine", "create"]

METHOD = "f0+formant matching (not neural cloning)"
MAX_REFERENCE_S = 30.0  # a voiceprint settles within seconds; longer only costs time


def create(context: EngineContext) -> VoiceMatchEngine:
    """The registry factory for ``voice-match``."""
    return VoiceMatchEngine(context)


class VoiceMatchEngine:
    """Speaks ``text`` in Piper's voice moved toward ``media["audio"][0]``'s F0 and formants."""

    def __init__(self, context: EngineContext) -> None:
        self._context = context
        self._speaker = Lazy(load_speaker)

    async def generate(
        self, request: GenerationRequest, progress: ProgressCallback
    ) -> GenerationResult:
        items = script(str(request.params.get("text") or ""))
        fmt = str(request.params.get("format") or "mp3")
        await progress(0.0, "loading voice")
        speaker = await self._speaker.get()
        reference = await asyncio.to_thread(_reference, request, speaker.rate)
        target = await asyncio.to_thread(_target, reference)
        await progress(0.1, "reference voice analysed")
        spoken = await render(items, speaker, _within(progress, 0.1, 0.6))
        matched = await asyncio.to_thread(matching.match, spoken.samples, spoken.rate, target)
        await progress(0.8, "voice matched")
        output = Audio(soft_limit(set_level(matched.samples, SPEECH_DBFS)), spoken.rate)
        extra = await asyncio.to_thread(_report, reference, spoken, output, matched)
        extra["f0_reference_hz"] = round(target.f0, 1)
        artifact = await asyncio.to_thread(encode, output, fmt)
        await progress(1.0, "speech ready")
        return GenerationResult(artifacts=[artifact], duration=output.duration, extra=extra)

    async def aclose(self) -> None:
        self._speaker.clear()


def _reference(request: GenerationRequest, rate: int) -> Audio:
    media = request.media.get("audio") or ()
    if not media:
        raise InputError("audio", "a reference recording is required")
    return decode(
        media[0].data, media[0].field, rate=rate, caps=request.caps, first_s=MAX_REFERENCE_S
    )


def _target(reference: Audio) -> matching.Voiceprint:
    target = matching.voiceprint(reference.samples, reference.rate)
    if target.f0 <= 0:
        raise InputError("audio", "no voiced speech was found in the reference recording")
    return target


def _report(
    reference: Audio, spoken: Audio, output: Audio, matched: matching.Match
) -> dict[str, float | str]:
    return {
        "method": METHOD,
        "similarity_measure": similarity.measure_name(),
        "similarity_before": round(similarity.similarity(reference, spoken), 4),
        "similarity_after": round(similarity.similarity(reference, output), 4),
        "f0_before_hz": round(matched.f0_before, 1),
        "f0_after_hz": round(matched.f0_after, 1),
        "formant_ratio": round(matched.formant_ratio, 4),
    }


def _within(progress: ProgressCallback, start: float, end: float) -> ProgressCallback:
    """Maps a sub-task's 0..1 progress into ``start..end`` of the whole job."""

    async def report(fraction: float, message: str | None) -> None:
        await progress(start + (end - start) * fraction, message)

    return report
