"""Audio in and out: float samples to mp3/wav/ogg artifacts, and uploaded media back to samples.

Samples are float32 in [-1, 1], shaped ``(n,)`` for mono or ``(n, channels)``. MP3 goes through
lameenc, WAV and Ogg Vorbis through libsndfile (soundfile). Decoding is FFmpeg's, through PyAV,
for every container, in bounded chunks (``bounded.read_audio``): uploads are untrusted.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from fractions import Fraction

import numpy as np
import numpy.typing as npt
import soundfile as sf  # type: ignore[import-untyped]
from scipy.signal import resample_poly  # type: ignore[import-untyped]

from hyperlocal.engines.base import Artifact, MediaCaps
from hyperlocal.engines.media.bounded import read_audio
from hyperlocal.errors import GenerationError, MediaInputError

__all__ = ["FORMATS", "Audio", "Samples", "decode", "encode", "resample"]

Samples = npt.NDArray[np.float32]

_CAPS = MediaCaps()
FORMATS = {"mp3": "audio/mpeg", "wav": "audio/wav", "ogg": "audio/ogg"}
MP3_KBPS = {1: 96, 2: 160}


@dataclass(frozen=True, slots=True)
class Audio:
    samples: Samples
    rate: int

    @property
    def duration(self) -> float:
        return len(self.samples) / self.rate


def encode(audio: Audio, fmt: str) -> Artifact:
    """Encodes ``audio`` as ``fmt`` (mp3, wav or ogg)."""
    if fmt not in FORMATS:
        raise GenerationError(f"unsupported audio format {fmt!r}")
    pcm = np.clip(audio.samples, -1.0, 1.0).astype(np.float32)
    data = _mp3(pcm, audio.rate) if fmt == "mp3" else _sndfile(pcm, audio.rate, fmt)
    return Artifact(data=data, content_type=FORMATS[fmt], extension=fmt)


def _mp3(pcm: Samples, rate: int) -> bytes:
    import lameenc  # type: ignore[import-not-found]

    channels = 1 if pcm.ndim == 1 else pcm.shape[1]
    encoder = lameenc.Encoder()
    encoder.set_bit_rate(MP3_KBPS.get(channels, 160))
    encoder.set_in_sample_rate(rate)
    encoder.set_channels(channels)
    encoder.set_quality(5)  # LAME's default trade-off; 2 is barely better and twice as slow
    interleaved = (pcm * 32767.0).astype("<i2").tobytes()
    return bytes(encoder.encode(interleaved) + encoder.flush())


def _sndfile(pcm: Samples, rate: int, fmt: str) -> bytes:
    out = io.BytesIO()
    if fmt == "wav":
        sf.write(out, pcm, rate, format="WAV", subtype="PCM_16")
    else:
        sf.write(out, pcm, rate, format="OGG", subtype="VORBIS")
    return out.getvalue()


def decode(
    data: bytes,
    field: str = "audio",
    *,
    rate: int | None = None,
    caps: MediaCaps = _CAPS,
    first_s: float | None = None,
) -> Audio:
    """Decodes an uploaded file to mono float32 at ``rate`` (default: its own), chunk by chunk
    within ``caps`` (see ``bounded``); only the first ``first_s`` seconds when given."""
    decoded = read_audio(data, field, caps, rate=rate, first_s=first_s)
    if decoded is None:
        raise MediaInputError(field, "the file has no audio stream")
    samples, out_rate = decoded
    if not len(samples):
        raise MediaInputError(field, "the audio holds no samples")
    return Audio(samples, out_rate)


def resample(audio: Audio, rate: int) -> Audio:
    """Polyphase resampling; exact for any pair of integer rates."""
    if audio.rate == rate:
        return audio
    ratio = Fraction(rate, audio.rate)
    out = resample_poly(audio.samples, ratio.numerator, ratio.denominator)
    return Audio(out.astype(np.float32), rate)
