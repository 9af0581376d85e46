"""Audio encode/decode round trips, plus the helpers that the other audio engine tests share.

Every engine output in these tests is decoded the way a client would: soundfile for WAV and
Ogg Vorbis, PyAV (FFmpeg) for MP3.
"""

from __future__ import annotations

import io
import re
from collections.abc import Mapping, Sequence

import av
import numpy as np
import numpy.typing as npt
import pytest
import soundfile as sf

from hyperlocal.engines.base import (
    Artifact,
    Category,
    GenerationRequest,
    InputValue,
    MediaInput,
    MediaKind,
)
from hyperlocal.engines.media.audio_codec import FORMATS, Audio, decode, encode
from hyperlocal.errors import MediaInputError

Samples = npt.NDArray[np.float32]


class Progress:
    def __init__(self) -> None:
        self.calls: list[tuple[float, str | None]] = []

    async def __call__(self, fraction: float, message: str | None) -> None:
        self.calls.append((fraction, message))

    @property
    def fractions(self) -> list[float]:
        return [f for f, _ in self.calls]


def audio_request(
    model: str,
    params: Mapping[str, InputValue],
    audio: Sequence[bytes] = (),
) -> GenerationRequest:
    media = [MediaInput("audio", MediaKind.AUDIO, "audio/wav", data, "data:") for data in audio]
    return GenerationRequest(
        job_id="job_audio",
        model=model,
        category=Category.AUDIO,
        params=params,
        media={"audio": media} if media else {},
    )


def decode_output(artifact: Artifact) -> tuple[Samples, int]:
    """Mono float32 samples and rate, decoded independently of the engines' own decoder."""
    if artifact.extension == "mp3":
        return _decode_with_av(artifact.data)
    samples, rate = sf.read(io.BytesIO(artifact.data), dtype="float32", always_2d=True)
    return samples.mean(axis=1), int(rate)


def _decode_with_av(data: bytes) -> tuple[Samples, int]:
    with av.open(io.BytesIO(data), mode="r") as container:
        stream = container.streams.audio[0]
        rate = int(stream.codec_context.sample_rate)
        mixer = av.AudioResampler(format="flt", layout="mono", rate=rate)
        frames = [f for frame in container.decode(stream) for f in mixer.resample(frame)]
        frames += mixer.resample(None)
    return np.concatenate([f.to_ndarray().reshape(-1) for f in frames]), rate


def wav_bytes(samples: Samples, rate: int) -> bytes:
    out = io.BytesIO()
    sf.write(out, samples, rate, format="WAV", subtype="PCM_16")
    return out.getvalue()


def words(text: str) -> list[str]:
    return re.findall(r"[a-z']+", text.lower())


def wer(reference: str, hypothesis: str) -> float:
    """Word error rate: word-level Levenshtein distance over the reference's word count."""
    ref, hyp = words(reference), words(hypothesis)
    previous = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, start=1):
        current = [i]
        for j, h in enumerate(hyp, start=1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (r != h)))
        previous = current
    return previous[-1] / max(len(ref), 1)


def tone(seconds: float, rate: int, hz: float = 220.0, channels: int = 1) -> Samples:
    t = np.arange(int(seconds * rate)) / rate
    mono = (0.3 * np.sin(2 * np.pi * hz * t)).astype(np.float32)
    return mono if channels == 1 else np.stack([mono] * channels, axis=1)


# -- tests -------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", sorted(FORMATS))
@pytest.mark.parametrize(("rate", "channels"), [(22050, 1), (44100, 2)])
def test_encode_round_trips_with_the_right_duration(fmt: str, rate: int, channels: int) -> None:
    artifact = encode(Audio(tone(2.0, rate, channels=channels), rate), fmt)
    samples, decoded_rate = decode_output(artifact)
    assert (artifact.extension, artifact.content_type) == (fmt, FORMATS[fmt])
    assert decoded_rate == rate
    assert len(samples) / rate == pytest.approx(2.0, abs=0.08)  # MP3 adds encoder padding
    assert 0.2 < np.abs(samples).max() < 0.45  # lossy codecs overshoot a little


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_decode_reads_every_output_format_back_as_mono(fmt: str) -> None:
    audio = decode(encode(Audio(tone(1.0, 44100, channels=2), 44100), fmt).data)
    assert audio.samples.ndim == 1
    assert audio.rate == 44100
    assert audio.duration == pytest.approx(1.0, abs=0.08)


def test_decode_refuses_bytes_that_are_not_audio() -> None:
    with pytest.raises(MediaInputError) as info:
        decode(b"definitely not audio" * 50)
    assert info.value.field == "audio"


def test_wer_counts_substitutions_insertions_and_deletions() -> None:
    assert wer("the cat sat", "the cat sat") == 0.0
    assert wer("the cat sat", "the bat sat") == pytest.approx(1 / 3)
    assert wer("the cat sat", "the cat sat down") == pytest.approx(1 / 3)
    assert wer("the cat sat", "cat") == pytest.approx(2 / 3)
    assert wer("Hello, world!", "hello world") == 0.0
