"""The ``voice-match`` engine: output F0 and similarity move toward a reference voice.

References are made from Piper itself, saying other words, played 1.4 times faster (higher F0,
formants scaled up: a smaller voice) or 0.72 times as fast (a larger, lower one), and from
espeak-ng's female variant where espeak-ng is installed.
"""

from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest

from hyperlocal.engines.base import EngineContext, GenerationResult
from hyperlocal.engines.builtin.audio import world
from hyperlocal.engines.builtin.audio.clone import METHOD, VoiceMatchEngine, create
from hyperlocal.engines.builtin.audio.similarity import MFCC_MEASURE, similarity
from hyperlocal.engines.builtin.audio.speech import repitch
from hyperlocal.engines.builtin.audio.voice import PiperSpeaker
from hyperlocal.engines.media.audio_codec import Audio, decode, encode
from hyperlocal.errors import InputError
from hyperlocal.settings import Settings
from tests.engines.test_audio_codecs import (
    Progress,
    Samples,
    audio_request,
    decode_output,
    wav_bytes,
)

TEXT = "Please remember to water the plants while I am away on holiday next week."
REFERENCE_TEXT = "My grandmother kept bees behind the old stone barn, and we collected honey."


@pytest.fixture(scope="module")
def engine() -> VoiceMatchEngine:
    return create(EngineContext(settings=Settings()))


@pytest.fixture(scope="module")
def piper() -> PiperSpeaker:
    return PiperSpeaker()


@pytest.fixture(scope="module")
def reference_source(piper: PiperSpeaker) -> Samples:
    return piper.speak(REFERENCE_TEXT)


async def match(engine: VoiceMatchEngine, reference: bytes, fmt: str = "wav") -> GenerationResult:
    request = audio_request("audio-clone", {"text": TEXT, "format": fmt}, [reference])
    return await engine.generate(request, Progress())


def median_f0(samples: Samples, rate: int) -> float:
    return world.median_f0(world.track_f0(samples, rate))


@pytest.mark.parametrize(("shift", "fmt"), [(1.4, "wav"), (0.72, "mp3")])
async def test_f0_and_similarity_move_toward_the_reference(
    engine: VoiceMatchEngine,
    piper: PiperSpeaker,
    reference_source: Samples,
    shift: float,
    fmt: str,
) -> None:
    rate = piper.rate
    reference = repitch(reference_source, shift)
    reference_f0 = median_f0(reference, rate)
    plain = piper.speak(TEXT)
    result = await match(engine, encode(Audio(reference, rate), fmt).data)
    output, output_rate = decode_output(result.artifacts[0])
    assert output_rate == rate
    assert result.duration == pytest.approx(len(output) / rate, abs=0.1)

    before, after = (
        abs(median_f0(plain, rate) - reference_f0),
        abs(median_f0(output, rate) - reference_f0),
    )
    assert after < 0.25 * before
    assert abs(median_f0(output, rate) / reference_f0 - 1) < 0.1

    extra = result.extra
    assert extra["method"] == METHOD == "f0+formant matching (not neural cloning)"
    assert extra["similarity_measure"] == MFCC_MEASURE  # resemblyzer is not installed here
    assert float(extra["similarity_after"]) > float(extra["similarity_before"]) + 0.1
    assert float(extra["formant_ratio"]) == pytest.approx(shift, rel=0.12)
    # measured again, independently, on the decoded file
    ref_audio = Audio(reference, rate)
    assert similarity(ref_audio, Audio(output, rate)) > similarity(ref_audio, Audio(plain, rate))


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")
async def test_a_different_synthesiser_as_reference(engine: VoiceMatchEngine) -> None:
    wav = subprocess.run(
        ["espeak-ng", "-v", "en-us+f5", "--stdout", REFERENCE_TEXT],
        check=True,
        capture_output=True,
    ).stdout
    reference = decode(wav)
    result = await match(engine, wav)
    output, rate = decode_output(result.artifacts[0])
    reference_f0 = median_f0(reference.samples, reference.rate)
    assert float(result.extra["f0_before_hz"]) < 0.85 * reference_f0  # Piper's joe is lower
    assert abs(median_f0(output, rate) / reference_f0 - 1) < 0.15
    # No similarity claim here: the MFCC fallback measure cannot compare two different
    # synthesisers reliably (seen: -0.054 vs -0.033); the same-synthesiser tests above do.


async def test_a_reference_without_voiced_speech_is_an_input_error(
    engine: VoiceMatchEngine,
) -> None:
    noise = np.random.default_rng(0).uniform(-0.3, 0.3, 22050 * 2).astype(np.float32)
    with pytest.raises(InputError) as info:
        await match(engine, wav_bytes(noise, 22050))
    assert info.value.field == "audio"


async def test_a_request_without_a_reference_is_an_input_error(engine: VoiceMatchEngine) -> None:
    with pytest.raises(InputError) as info:
        await engine.generate(audio_request("audio-clone", {"text": TEXT}), Progress())
    assert info.value.field == "audio"


def test_pyworld_loads_once_when_threads_ask_at_once() -> None:
    """Two clone jobs starting together both need pyworld: its compiled module must be loaded
    once (a second initialisation raises), in a fresh interpreter where nothing loaded it yet."""
    import subprocess
    import sys

    code = """
import threading, time
from hyperlocal.engines.builtin.audio import world
load = world._load_extension
def slow_load():  # a load that takes a while, as on a busy machine: the threads overlap
    time.sleep(0.3)
    return load()
world._load_extension = slow_load
start, got = threading.Barrier(4), []
def ask():
    start.wait()
    got.append(world.pyworld())
threads = [threading.Thread(target=ask) for _ in range(4)]
for t in threads: t.start()
for t in threads: t.join()
assert len(got) == 4 and len({id(m) for m in got}) == 1, got
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
