"""How alike two voices sound, as a number in [-1, 1]: a speaker encoder when one is installed.

With ``resemblyzer`` importable (an optional extra: it needs torch), similarity is the cosine of
its GE2E speaker embeddings, the usual measure of speaker similarity. Without it, we fall back
to a measure implemented here, documented as such: the cosine between the two recordings'
*long-term average MFCC vectors* (coefficients 1-19, c0 dropped so loudness does not count,
averaged over frames within 30 dB of the loudest). That vector summarises the average spectral
envelope, which is dominated by the speaker's formant structure and spectral tilt; it ignores
F0, so voice matching reports F0 separately. It is a coarse timbre measure, not a verification
score: two different speakers can still score 0.8.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache

import numpy as np
import numpy.typing as npt
from scipy.fft import dct  # type: ignore[import-untyped]

from hyperlocal.engines.media.audio_codec import Audio, resample

__all__ = ["MFCC_MEASURE", "RESEMBLYZER_MEASURE", "measure_name", "mfcc", "similarity"]

Floats = npt.NDArray[np.float64]
RATE = 16000
FRAME, HOP, FFT = 400, 160, 512  # 25 ms frames, 10 ms hop at 16 kHz
MELS, CEPSTRA = 40, 20
ACTIVE_DB = 30.0
MFCC_MEASURE = "cosine of long-term mean MFCC c1-c19 (active frames)"
RESEMBLYZER_MEASURE = "cosine of Resemblyzer GE2E speaker embeddings"


def similarity(a: Audio, b: Audio) -> float:
    """Voice similarity of two recordings (see the module docstring for which measure)."""
    x, y = resample(a, RATE).samples, resample(b, RATE).samples
    embed = _resemblyzer()
    if embed is not None:
        return _cosine(embed(x), embed(y))
    return _cosine(_mean_mfcc(x), _mean_mfcc(y))


def measure_name() -> str:
    return RESEMBLYZER_MEASURE if _resemblyzer() is not None else MFCC_MEASURE


@cache
def _resemblyzer() -> Callable[[npt.NDArray[np.float32]], Floats] | None:
    """The speaker encoder, loaded once per process; None where resemblyzer is not installed."""
    try:
        from resemblyzer import (  # type: ignore[import-not-found, import-untyped, unused-ignore]
            VoiceEncoder,
            preprocess_wav,
        )
    except ImportError:
        return None
    encoder = VoiceEncoder(device="cpu", verbose=False)

    def embed(samples: npt.NDArray[np.float32]) -> Floats:
        wav = preprocess_wav(samples, source_sr=RATE)
        return np.asarray(encoder.embed_utterance(wav), dtype=np.float64)

    return embed


def _cosine(u: Floats, v: Floats) -> float:
    denominator = float(np.linalg.norm(u) * np.linalg.norm(v))
    return float(np.dot(u, v) / denominator) if denominator > 0 else 0.0


def _mean_mfcc(samples: npt.NDArray[np.float32]) -> Floats:
    coefficients, energy = mfcc(samples)
    active = energy > energy.max() - ACTIVE_DB / 10 * np.log(10.0)  # energy is a natural log
    return np.asarray(coefficients[active, 1:].mean(axis=0), dtype=np.float64)


def mfcc(samples: npt.NDArray[np.float32]) -> tuple[Floats, Floats]:
    """MFCCs (frames x 20) and log frame energy of 16 kHz audio."""
    x = np.append(samples[0], samples[1:] - 0.97 * samples[:-1]).astype(np.float64)
    if x.size < FRAME:
        x = np.pad(x, (0, FRAME - x.size))
    count = 1 + (x.size - FRAME) // HOP
    index = np.arange(FRAME)[None, :] + HOP * np.arange(count)[:, None]
    frames = x[index] * np.hamming(FRAME)
    power = np.abs(np.fft.rfft(frames, FFT)) ** 2
    mel = np.log(power @ _mel_bank().T + 1e-10)
    return dct(mel, type=2, norm="ortho", axis=1)[:, :CEPSTRA], np.log(power.sum(axis=1) + 1e-10)


@cache
def _mel_bank() -> Floats:
    """Triangular filters, equally spaced on the mel scale from 50 Hz to 7.6 kHz."""
    mels = np.linspace(_mel(50.0), _mel(7600.0), MELS + 2)
    edges = 700.0 * (10 ** (mels / 2595.0) - 1)
    freqs = np.linspace(0, RATE / 2, FFT // 2 + 1)
    low, mid, high = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    rising, falling = (freqs - low) / (mid - low), (high - freqs) / (high - mid)
    return np.asarray(np.maximum(0.0, np.minimum(rising, falling)), dtype=np.float64)


def _mel(hz: float) -> float:
    return float(2595.0 * np.log10(1 + hz / 700.0))
