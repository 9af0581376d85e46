"""The ``algorithmic-music`` engine (``lyria-3-pro``): instrumental music composed from a prompt.

Not a generative model: no music model ships offline. The prompt's words pick a style, tempo
and key (``composition.py``); a chord progression, motif-based melody, bass, arpeggio and drums
are arranged into intro, verses, choruses and an outro (``arrangement.py``); numpy synthesisers
play them (``instruments.py``) through a mixer with a convolution reverb (``mixing.py``). The
output is exactly ``duration`` seconds, at 44.1 kHz stereo, and renders many times faster than
real time. ``extra`` records what was chosen.
"""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass

import numpy as np

from hyperlocal.engines.base import (
    Artifact,
    EngineContext,
    GenerationRequest,
    GenerationResult,
    ProgressCallback,
)
from hyperlocal.engines.builtin.audio.arrangement import Score, arrange
from hyperlocal.engines.builtin.audio.composition import layout, plan
from hyperlocal.engines.builtin.audio.mixing import mix
from hyperlocal.engines.media.audio_codec import Audio, encode
from hyperlocal.errors import InputError

__all__ = ["RATE", "MusicEngine", "Piece", "compose", "create", "render"]

RATE = 44100
MIN_RING_S = 1.5  # the final chord rings at least this long before the piece ends
DURATION_LIMITS = (1.0, 600.0)  # the catalogue narrows this to 10-120 s for lyria-3-pro


@dataclass(frozen=True, slots=True)
class Piece:
    score: Score
    audio: Audio


def create(context: EngineContext) -> MusicEngine:
    """The registry factory for ``algorithmic-music``."""
    return MusicEngine(context)


class MusicEngine:
    """Composes and renders a piece per request; there is no model to load."""

    def __init__(self, context: EngineContext) -> None:
        self._context = context

    async def generate(
        self, request: GenerationRequest, progress: ProgressCallback
    ) -> GenerationResult:
        prompt = str(request.params.get("prompt") or "")
        duration = _duration(request.params.get("duration"))
        fmt = str(request.params.get("format") or "mp3")
        await progress(0.0, "composing")
        piece = await asyncio.to_thread(render, prompt, duration)
        await progress(0.8, "encoding")
        artifact: Artifact = await asyncio.to_thread(encode, piece.audio, fmt)
        await progress(1.0, "music ready")
        return GenerationResult(
            artifacts=[artifact], duration=piece.audio.duration, extra=describe(piece.score)
        )

    async def aclose(self) -> None:
        return None


def _duration(value: object) -> float:
    try:
        seconds = float(value if isinstance(value, int | float | str) else 30)
    except ValueError as exc:
        raise InputError("duration", "must be a number of seconds") from exc
    if not DURATION_LIMITS[0] <= seconds <= DURATION_LIMITS[1]:
        raise InputError(
            "duration", f"must be between {DURATION_LIMITS[0]:g} and {DURATION_LIMITS[1]:g} s"
        )
    return seconds


def compose(prompt: str, duration: float) -> Score:
    """The score: as many whole bars as fit before the final chord's ring-out."""
    chosen = plan(prompt)
    bars = max(1, math.floor((duration - MIN_RING_S) / chosen.bar_seconds))
    ring = duration - bars * chosen.bar_seconds
    return arrange(chosen, layout(bars), ring=max(ring, 0.0))


def render(prompt: str, duration: float) -> Piece:
    """Composes and mixes; blocking, so the engine runs it in a thread."""
    score = compose(prompt, duration)
    samples = round(duration * RATE)
    stereo = mix(score, samples, RATE)
    return Piece(score, Audio(stereo.astype(np.float32), RATE))


def describe(score: Score) -> dict[str, float | str]:
    chosen = score.plan
    return {
        "method": "algorithmic composition and synthesis (not a generative model)",
        "style": chosen.style.name,
        "bpm": round(chosen.bpm, 1),
        "key": chosen.key,
        "progression": chosen.roman(chosen.verse),
        "chorus_progression": chosen.roman(chosen.chorus),
        "structure": " | ".join(f"{s.name} {s.bars}" for s in score.sections),
        "instruments": ", ".join(
            v
            for v in (chosen.style.pad, chosen.style.bass, chosen.style.arp, chosen.style.lead)
            if v
        )
        + (f", drums:{chosen.style.drums}" if chosen.style.drums else ""),
    }
