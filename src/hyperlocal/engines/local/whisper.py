"""The ``whisper-local`` engine: speech to text with any CTranslate2 Whisper in the models dir.

Unlike ``whisper-asr`` (tiny.en, shipped in a package, English only), this runs whatever
faster-whisper folder the operator pulled, such as large-v3, on the GPU when CTranslate2 sees
one (float16), else on the CPU (int8). Multilingual models transcribe the request's
``language``, or detect it when that is ``auto``; English-only (``.en``) models always
transcribe English. Engine options: ``weights`` (required), ``beam_size`` (5), ``vad``
(true: Silero VAD skips long silences, where Whisper would invent text), ``device``,
``compute_type`` and ``cpu_threads`` (0: CTranslate2 chooses).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hyperlocal.engines.base import (
    Artifact,
    EngineContext,
    GenerationRequest,
    GenerationResult,
    InputValue,
    ProgressCallback,
    Segment,
    Word,
)
from hyperlocal.engines.local.options import integer, text
from hyperlocal.engines.local.runtime import Resident, Weights, locate, require
from hyperlocal.engines.media.audio_codec import Audio, decode
from hyperlocal.engines.media.progress import Report, run_reporting
from hyperlocal.engines.media.transcript import transcript_artifact
from hyperlocal.errors import GenerationError, InputError

__all__ = ["Transcript", "WhisperLocalEngine", "create"]

ENGINE = "whisper-local"
LAYOUT = "a CTranslate2 Whisper (model.bin, config.json, tokenizer.json)"
RATE = 16000  # what Whisper hears


@dataclass(frozen=True, slots=True)
class Transcript:
    segments: list[Segment]
    language: str
    duration: float


def create(context: EngineContext) -> WhisperLocalEngine:
    """The registry factory for ``whisper-local``."""
    return WhisperLocalEngine(context)


class WhisperLocalEngine:
    """Transcribes ``media["audio"][0]`` with the weights its catalogue entry names."""

    def __init__(self, context: EngineContext, *, concurrency: int = 1) -> None:
        self._settings = context.settings
        self._models = Resident(ENGINE, _load, context, concurrency)

    async def generate(
        self, request: GenerationRequest, progress: ProgressCallback
    ) -> GenerationResult:
        folder = locate(self._settings, request.options, ENGINE, LAYOUT)
        await progress(0.0, "preparing")

        def work(report: Report) -> tuple[Transcript, Weights]:
            audio = _audio(request)
            return self._models.run(
                _weights(folder, request.options),
                lambda m, w: (_transcribe(m, audio, request, report), w),
                report,
            )

        heard, weights = await run_reporting(work, progress)
        await progress(1.0, "transcribed")
        text_ = " ".join(s.text for s in heard.segments)
        return GenerationResult(
            artifacts=[_artifact(text_, heard, weights.folder.name)],
            duration=heard.duration,
            text=text_,
            segments=heard.segments,
            extra={"engine": ENGINE, "weights": weights.folder.name, "language": heard.language},
        )

    async def preload(self, options: Mapping[str, InputValue]) -> str:
        folder = locate(self._settings, options, ENGINE, LAYOUT)
        return await self._models.apreload(lambda: _weights(folder, options))

    async def aclose(self) -> None:
        await asyncio.to_thread(self._models.clear)  # may wait for a load in progress


def _audio(request: GenerationRequest) -> Audio:
    media = request.media.get("audio") or ()
    if not media:
        raise InputError("audio", "an audio file is required")
    return decode(media[0].data, media[0].field, rate=RATE, caps=request.caps)


def _weights(folder: Path, options: Mapping[str, InputValue]) -> Weights:
    require(ENGINE, "faster_whisper")
    import ctranslate2  # type: ignore[import-untyped]  # faster-whisper's runtime

    cuda = ctranslate2.get_cuda_device_count() > 0
    device = text(options, "device", "cuda" if cuda else "cpu")
    compute = text(options, "compute_type", "float16" if device.startswith("cuda") else "int8")
    return Weights(folder, device, compute, threads=integer(options, "cpu_threads", 0))


def _load(weights: Weights) -> Any:
    from faster_whisper import WhisperModel  # type: ignore[import-untyped]

    kind, _, index = weights.device.partition(":")  # CTranslate2 takes "cuda" and an index
    try:
        return WhisperModel(
            str(weights.folder),
            device=kind,
            device_index=int(index or 0),
            compute_type=weights.dtype,
            cpu_threads=weights.threads,
        )
    except (RuntimeError, ValueError, OSError) as exc:  # CTranslate2's "unable to open file"...
        raise GenerationError(f"{weights.folder.name}: not a CTranslate2 Whisper ({exc})") from exc


def _transcribe(model: Any, audio: Audio, request: GenerationRequest, report: Report) -> Transcript:
    with_words = not bool(request.params.get("ignore_timestamps"))
    language = text(request.params, "language", "auto").lower()
    segments, info = model.transcribe(
        audio.samples,
        language=None if language == "auto" else language,
        beam_size=integer(request.options, "beam_size", 5),
        word_timestamps=with_words,
        vad_filter=request.options.get("vad", True) is not False,
    )
    found: list[Segment] = []
    for segment in segments:  # decoding happens as the generator is advanced
        found.append(_segment(segment, with_words))
        done = min(float(segment.end) / max(audio.duration, 1e-6), 1.0)
        report(0.05 + 0.9 * done, f"transcribed {float(segment.end):.1f} s")
    return Transcript(found, str(info.language), audio.duration)


def _segment(segment: Any, with_words: bool) -> Segment:
    words = tuple(
        Word(word=w.word.strip(), start=_s(w.start), end=_s(w.end))
        for w in (segment.words or ())
        if with_words and w.word.strip()
    )
    return Segment(
        text=segment.text.strip(), start=_s(segment.start), end=_s(segment.end), words=words
    )


def _s(value: float) -> float:
    return round(float(value), 3)


def _artifact(text_: str, heard: Transcript, weights: str) -> Artifact:
    return transcript_artifact(
        text_, heard.duration, heard.segments, language=heard.language, model=weights
    )
