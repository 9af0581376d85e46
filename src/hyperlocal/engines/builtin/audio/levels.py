"""Loudness: set a level by active-frame RMS, and keep peaks under full scale softly."""

from __future__ import annotations

import numpy as np

from hyperlocal.engines.media.audio_codec import Samples

__all__ = ["KNEE", "set_level", "soft_limit"]

KNEE = 0.5  # the soft limiter is linear below this


def set_level(samples: Samples, dbfs: float, frame: int = 441) -> Samples:
    """Scales so the RMS of the active frames (within 20 dB of the loudest) is ``dbfs``."""
    usable = samples[: samples.size // frame * frame]
    if not usable.size:
        return samples
    energy = np.mean(usable.reshape(-1, frame).astype(np.float64) ** 2, axis=1)
    active = energy[energy > energy.max() * 0.01]
    rms = float(np.sqrt(np.mean(active)))
    if rms < 1e-9:
        return samples
    return np.asarray(samples * (10 ** (dbfs / 20) / rms), dtype=np.float32)


def soft_limit(samples: Samples) -> Samples:
    """Linear below the knee, tanh-compressed above it: never past full scale."""
    magnitude = np.abs(samples)
    over = magnitude > KNEE
    squashed = KNEE + (1 - KNEE) * np.tanh((magnitude - KNEE) / (1 - KNEE))
    out = np.where(over, np.sign(samples) * squashed, samples)
    return np.asarray(out, dtype=np.float32)
