"""Sound for videos: decoding an input track, its loudness over time, and quiet ambience."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from hyperlocal.engines.base import MediaCaps
from hyperlocal.engines.media.bounded import read_audio

__all__ = ["RATE", "AudioTrack", "ambience", "decode_audio", "loudness"]

RATE = 48_000
_CAPS = MediaCaps()
AMBIENT_LEVEL = 0.05  # peak amplitude, about -26 dBFS: present, never louder than a voice-over


@dataclass(frozen=True, slots=True)
class AudioTrack:
    samples: NDArray[np.float32]  # (channels, n), -1..1
    rate: int = RATE

    @property
    def seconds(self) -> float:
        return float(self.samples.shape[1] / self.rate)

    @property
    def channels(self) -> int:
        return int(self.samples.shape[0])


def decode_audio(
    data: bytes, field: str, *, max_seconds: float, caps: MediaCaps = _CAPS
) -> AudioTrack | None:
    """The first ``max_seconds`` of the first audio stream of ``data`` as mono at RATE, within
    ``caps`` (see ``bounded``); None when it has none."""
    decoded = read_audio(data, field, caps, rate=RATE, first_s=max_seconds)
    if decoded is None or not decoded[0].size:
        return None
    return AudioTrack(decoded[0][np.newaxis, :])


def loudness(track: AudioTrack, fps: int, frames: int) -> NDArray[np.float32]:
    """Loudness per video frame, 0..1: RMS in dB over a 40 dB range, smoothed like a VU meter.

    A fast attack and a slow release make motion start with a syllable and settle between them.
    """
    mono = track.samples.mean(axis=0)
    hop = track.rate / fps
    starts = (np.arange(frames) * hop).astype(np.int64)
    window = max(1, int(hop))
    rms = np.array([np.sqrt(np.mean(mono[s : s + window] ** 2) + 1e-12) for s in starts])
    db = 20 * np.log10(rms / max(float(np.percentile(rms, 95)), 1e-6))
    level = np.clip((db + 40) / 40, 0, 1)
    return _attack_release(level.astype(np.float32), attack=0.6, release=0.15)


def _attack_release(
    level: NDArray[np.float32], attack: float, release: float
) -> NDArray[np.float32]:
    out = np.empty_like(level)
    current = 0.0
    for i, value in enumerate(level):
        rate = attack if value > current else release
        current += (float(value) - current) * rate
        out[i] = current
    return out


def ambience(seconds: float, seed: str) -> AudioTrack:
    """Stereo room tone: low-passed noise with a slow swell and short fades.

    It is not sound design from the prompt; it exists so that asking for sound gives a video
    with a real, quiet audio track rather than a silent one.
    """
    n = max(1, int(seconds * RATE))
    rng = np.random.default_rng(int.from_bytes(hashlib.sha256(seed.encode()).digest()[:8]))
    noise = _band(rng.standard_normal((2, n)), low=60.0, high=900.0)
    t = np.arange(n) / RATE
    swell = 0.7 + 0.3 * np.sin(2 * np.pi * t / 7.0 + rng.uniform(0, 2 * np.pi))
    fade = np.minimum(1.0, np.minimum(t, t[::-1]) / 0.5)
    shaped = noise * swell * fade
    peak = float(np.abs(shaped).max()) or 1.0
    return AudioTrack((shaped / peak * AMBIENT_LEVEL).astype(np.float32))


def _band(noise: NDArray[np.float64], low: float, high: float) -> NDArray[np.float64]:
    """Band-limited noise with soft edges, by shaping its spectrum (no scipy.signal import)."""
    spectrum = np.fft.rfft(noise, axis=1)
    freqs = np.fft.rfftfreq(noise.shape[1], 1 / RATE)
    gain = 1 / np.sqrt((1 + (low / np.maximum(freqs, 1e-3)) ** 4) * (1 + (freqs / high) ** 4))
    shaped: NDArray[np.float64] = np.fft.irfft(spectrum * gain, n=noise.shape[1], axis=1)
    return shaped
