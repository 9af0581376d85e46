"""The ``piper-tts`` engine: real Piper speech, emotion tags measured in the decoded output."""

from __future__ import annotations

import asyncio
import shutil
import time
from collections.abc import Iterator
from importlib.metadata import entry_points

import numpy as np
import pytest
from scipy.signal import resample_poly  # type: ignore[import-untyped]

from hyperlocal.engines.base import EngineContext, GenerationResult
from hyperlocal.engines.builtin.audio import voice as voice_module
from hyperlocal.engines.builtin.audio import world
from hyperlocal.engines.builtin.audio.lazy import Lazy
from hyperlocal.engines.builtin.audio.transcribers import WhisperTranscriber
from hyperlocal.engines.builtin.audio.tts import SpeechEngine, create
from hyperlocal.engines.media.audio_codec import FORMATS
from hyperlocal.errors import InputError
from hyperlocal.settings import Settings
from tests.engines.test_audio_codecs import (
    Progress,
    Samples,
    audio_request,
    decode_output,
    words,
)

SENTENCE = "I went to the market this morning and bought some fresh bread."


@pytest.fixture(scope="module")
def engine() -> Iterator[SpeechEngine]:
    yield create(EngineContext(settings=Settings()))


@pytest.fixture(scope="module")
def whisper() -> WhisperTranscriber:
    return WhisperTranscriber()


Spoken = tuple[GenerationResult, Samples, int]

STYLED = {
    "neutral": SENTENCE,
    "excited": f"(excited) {SENTENCE}",
    "sad": f"(sad) {SENTENCE}",
    "whispering": f"(whispering) {SENTENCE}",
    "shouting": f"(shouting) {SENTENCE}",
    "soft tone": f"(soft tone) {SENTENCE}",
    "in a hurry tone": f"(in a hurry tone) {SENTENCE}",
    "greeting": f"Hello there. {SENTENCE}",
    "break": f"Hello there. (break) {SENTENCE}",
    "long-break": f"Hello there. (long-break) {SENTENCE}",
}


@pytest.fixture(scope="module")
def spoken(engine: SpeechEngine) -> dict[str, Spoken]:
    """Each styled sentence rendered once for the whole module (Piper varies run to run)."""

    async def render_all() -> dict[str, Spoken]:
        return {name: await speak(engine, text) for name, text in STYLED.items()}

    return asyncio.run(render_all())


async def speak(engine: SpeechEngine, text: str, fmt: str = "wav") -> Spoken:
    request = audio_request("audio-tts", {"text": text, "format": fmt})
    result = await engine.generate(request, Progress())
    samples, rate = decode_output(result.artifacts[0])
    return result, samples, rate


def duration(result: GenerationResult) -> float:
    assert result.duration is not None
    return result.duration


def median_f0(samples: Samples, rate: int) -> float:
    return world.median_f0(world.track_f0(samples, rate))


def longest_silence(samples: Samples, rate: int, floor_db: float = -45.0) -> float:
    """The longest run of 10 ms frames quieter than ``floor_db`` below the loudest, in seconds."""
    hop = rate // 100
    frames = samples[: len(samples) // hop * hop].reshape(-1, hop)
    level = 10 * np.log10(np.mean(frames**2, axis=1) + 1e-12)
    quiet = level < level.max() + floor_db
    best = run = 0
    for q in quiet:
        run = run + 1 if q else 0
        best = max(best, run)
    return best / 100


def test_the_engine_is_registered_under_its_entry_point() -> None:
    names = {ep.name: ep.value for ep in entry_points(group="hyperlocal.engines")}
    assert names["piper-tts"] == "hyperlocal.engines.builtin.audio.tts:create"
    assert names["voice-match"] == "hyperlocal.engines.builtin.audio.clone:create"
    assert names["whisper-asr"] == "hyperlocal.engines.builtin.audio.asr:create"
    assert names["algorithmic-music"] == "hyperlocal.engines.builtin.audio.music:create"


@pytest.mark.parametrize("fmt", sorted(FORMATS))
async def test_each_format_decodes_to_the_reported_duration(engine: SpeechEngine, fmt: str) -> None:
    progress = Progress()
    request = audio_request("audio-tts", {"text": SENTENCE, "format": fmt, "voice": "anyone"})
    result = await engine.generate(request, progress)
    samples, rate = decode_output(result.artifacts[0])
    [artifact] = result.artifacts
    assert (artifact.extension, artifact.content_type) == (fmt, FORMATS[fmt])
    assert rate == 22050
    assert len(samples) / rate == pytest.approx(duration(result), abs=0.1)
    assert 2.0 < duration(result) < 6.0
    assert result.extra["voice"] == "en_US-joe-medium"
    assert progress.fractions == sorted(progress.fractions)
    assert progress.fractions[-1] == 1.0


async def test_speech_is_faster_than_real_time(engine: SpeechEngine) -> None:
    await speak(engine, "Warm up.")  # the voice loads once per engine; time the speech alone
    paragraph = (
        "The library opens at nine every morning. Visitors can borrow up to five books at a "
        "time, and the reading room stays quiet until noon. On weekends, volunteers run a "
        "storytelling hour for children, followed by a short workshop on drawing."
    )
    # CPU time of this process (all its threads), so other work on the machine cannot skew it
    started = time.process_time()
    result, _, _ = await speak(engine, paragraph, "mp3")
    cpu = time.process_time() - started
    rtf = cpu / duration(result)
    print(f"\nTTS: {duration(result):.1f} s of speech, {cpu:.2f} s CPU, RTF {rtf:.2f}")  # noqa: T201
    assert cpu < duration(result)


def test_whispering_has_almost_no_voiced_frames(spoken: dict[str, Spoken]) -> None:
    _, neutral, rate = spoken["neutral"]
    _, whispered, _ = spoken["whispering"]
    assert world.voiced_ratio(neutral, rate) > 0.3
    assert world.voiced_ratio(whispered, rate) < 0.3 * world.voiced_ratio(neutral, rate)


def test_excited_is_higher_and_faster_than_sad(spoken: dict[str, Spoken]) -> None:
    excited, excited_audio, rate = spoken["excited"]
    sad, sad_audio, _ = spoken["sad"]
    assert median_f0(excited_audio, rate) > 1.2 * median_f0(sad_audio, rate)
    assert duration(excited) < 0.85 * duration(sad)


def test_shouting_is_much_louder_and_higher_than_soft_tone(spoken: dict[str, Spoken]) -> None:
    _, shout, rate = spoken["shouting"]
    _, soft, _ = spoken["soft tone"]
    assert median_f0(shout, rate) > 1.15 * median_f0(soft, rate)
    rms = [float(np.sqrt(np.mean(x**2))) for x in (shout, soft)]
    assert rms[0] > 4 * rms[1]  # more than 12 dB apart
    assert np.abs(shout).max() <= 1.0


def test_in_a_hurry_is_faster(spoken: dict[str, Spoken]) -> None:
    assert duration(spoken["in a hurry tone"][0]) < 0.85 * duration(spoken["neutral"][0])


@pytest.mark.parametrize(("tag", "seconds"), [("break", 0.5), ("long-break", 1.5)])
def test_breaks_insert_silence(spoken: dict[str, Spoken], tag: str, seconds: float) -> None:
    plain, plain_audio, rate = spoken["greeting"]
    paused, paused_audio, _ = spoken[tag]
    assert duration(paused) - duration(plain) >= seconds - 0.1
    assert longest_silence(paused_audio, rate) >= seconds - 0.1
    assert longest_silence(paused_audio, rate) > longest_silence(plain_audio, rate) + seconds - 0.2


async def test_effect_and_unknown_tags_are_heard_but_never_spoken(
    engine: SpeechEngine, whisper: WhisperTranscriber
) -> None:
    text = "(laughing) That is so funny. (sighing) Anyway, let us go home. (bogus) See you."
    plain, _, _ = await speak(engine, "That is so funny. Anyway, let us go home. See you.")
    tagged, samples, rate = await speak(engine, text)
    assert duration(tagged) > duration(plain) + 1.5  # a laugh and a sigh were rendered
    assert rate == 22050
    at_16k = resample_poly(samples, 320, 441).astype(np.float32)
    said = words(" ".join(s.text for s in whisper.transcribe(at_16k, False)))
    assert "funny" in said and "home" in said
    assert not {"laughing", "sighing", "bogus"} & set(said)


async def test_text_of_tags_alone_is_an_input_error(engine: SpeechEngine) -> None:
    with pytest.raises(InputError):
        await engine.generate(
            audio_request("audio-tts", {"text": "(sad)", "format": "wav"}), Progress()
        )


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")
def test_espeak_ng_speaks_when_piper_cannot_load(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken() -> None:
        raise RuntimeError("no voice")

    monkeypatch.setattr(voice_module, "PiperSpeaker", broken)
    speaker = voice_module.load_speaker()
    assert isinstance(speaker, voice_module.EspeakSpeaker)
    slow, fast = (speaker.speak(SENTENCE, speed=s) for s in (1.0, 1.5))
    assert speaker.rate == 22050
    assert 1.0 < len(slow) / speaker.rate < 8.0
    assert len(fast) < 0.8 * len(slow)


async def test_concurrent_first_requests_load_the_voice_once() -> None:
    loads: list[int] = []

    def load() -> object:
        loads.append(1)
        time.sleep(0.05)
        return object()

    holder = Lazy(load)
    first, second = await asyncio.gather(holder.get(), holder.get())
    assert first is second
    assert loads == [1]
