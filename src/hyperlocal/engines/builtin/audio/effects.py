"""Non-verbal effect tags, synthesised: laughs, sighs, gasps, sobs, snores, crowds.

Piper cannot laugh, and speaking the word "laughing" would be wrong, so each effect is built
from two source-filter primitives: a *voiced* vowel (a glottal pulse train through formant
resonators, for the "ha" of a laugh or the "uh" of a groan) and *breath* (band-passed noise, for
sighs, gasps and panting). They are short and recognisable as what they are; they do not try to
sound like the Piper voice. Every effect is deterministic (seeded by its name).
"""

from __future__ import annotations

import zlib
from collections.abc import Callable

import numpy as np
import numpy.typing as npt
from scipy.signal import butter, lfilter, sosfilt  # type: ignore[import-untyped]

from hyperlocal.engines.media.audio_codec import Samples

__all__ = ["render"]

Floats = npt.NDArray[np.float64]
Vowel = tuple[tuple[float, float], ...]  # (formant Hz, bandwidth Hz)

AH: Vowel = ((730, 90), (1090, 110), (2440, 170))
EH: Vowel = ((530, 80), (1840, 120), (2480, 170))
UH: Vowel = ((520, 80), (1190, 110), (2390, 170))
OH: Vowel = ((450, 80), (850, 100), (2610, 170))
MM: Vowel = ((250, 60), (1000, 300), (2200, 400))


class _Kit:
    """Synthesis at one sample rate, with one seeded noise source."""

    def __init__(self, rate: int, seed: int) -> None:
        self.rate = rate
        self.rng = np.random.default_rng(seed)

    def time(self, seconds: float) -> Floats:
        return np.arange(int(seconds * self.rate)) / self.rate

    def voiced(self, seconds: float, f0: tuple[float, float], vowel: Vowel) -> Floats:
        """A vowel whose pitch glides from f0[0] to f0[1], with a little jitter and breath."""
        t = self.time(seconds)
        pitch = np.geomspace(f0[0], f0[1], t.size) * (1 + 0.01 * self.rng.standard_normal(t.size))
        phase = np.cumsum(pitch) / self.rate % 1.0
        pulses = np.where(phase < 0.6, np.sin(np.pi * phase / 0.6) ** 2, 0.0)  # Rosenberg-like
        source = np.diff(pulses, prepend=0.0) + 0.02 * self.rng.standard_normal(t.size)
        return self._formants(source, vowel) * _envelope(t.size, 0.02, 0.08, self.rate)

    def breath(self, seconds: float, band: tuple[float, float], rise: float = 0.3) -> Floats:
        """Band-passed noise with a swell: ``rise`` is the fraction of time spent getting loud."""
        n = int(seconds * self.rate)
        nyquist = self.rate / 2
        low, high = band[0] / nyquist, min(band[1] / nyquist, 0.99)
        sos = butter(2, [low, high], btype="band", output="sos")
        noise = sosfilt(sos, self.rng.standard_normal(n))
        return np.asarray(noise * _swell(n, rise), dtype=np.float64)

    def _formants(self, source: Floats, vowel: Vowel) -> Floats:
        out = source
        for freq, bandwidth in vowel:
            radius = np.exp(-np.pi * bandwidth / self.rate)
            theta = 2 * np.pi * freq / self.rate
            out = lfilter([1 - radius], [1, -2 * radius * np.cos(theta), radius**2], out)
        return np.asarray(out, dtype=np.float64)

    def silence(self, seconds: float) -> Floats:
        return np.zeros(int(seconds * self.rate))


def _envelope(n: int, attack_s: float, release_s: float, rate: int) -> Floats:
    env = np.ones(n)
    a, r = min(n, int(attack_s * rate)), min(n, int(release_s * rate))
    env[:a] = np.linspace(0, 1, a)
    env[n - r :] *= np.linspace(1, 0, r)
    return env


def _swell(n: int, rise: float) -> Floats:
    peak = max(1, int(n * rise))
    return np.concatenate([np.linspace(0, 1, peak) ** 2, np.linspace(1, 0, n - peak) ** 1.5])


def _laugh(k: _Kit, count: int = 5, f0: float = 250.0, vowel: Vowel = AH) -> Floats:
    parts = []
    for i in range(count):
        pitch = f0 * (1 - 0.05 * i)
        gain = 1 - 0.12 * i
        parts += [0.3 * gain * k.breath(0.05, (800, 5000), 0.5)]  # the "h" of "ha"
        parts += [gain * k.voiced(0.11, (pitch, pitch * 0.85), vowel), k.silence(0.06)]
    return np.concatenate(parts)


def _chuckle(k: _Kit) -> Floats:
    return 0.6 * _laugh(k, count=3, f0=160.0, vowel=EH)


def _sigh(k: _Kit) -> Floats:
    inhale = 0.3 * k.breath(0.45, (600, 3000), 0.7)
    exhale = k.breath(0.9, (300, 2200), 0.15)
    hum = 0.5 * k.voiced(0.9, (150, 110), MM)
    return np.concatenate([inhale, k.silence(0.08), exhale + hum])


def _groan(k: _Kit) -> Floats:
    return k.voiced(0.9, (125, 85), OH)


def _gasp(k: _Kit) -> Floats:
    return k.breath(0.35, (900, 5000), 0.85)


def _pant(k: _Kit) -> Floats:
    breaths = [
        np.concatenate([k.breath(0.16, (500, 3500), 0.3), 0.6 * k.breath(0.13, (900, 4000), 0.7)])
        for _ in range(4)
    ]
    return np.concatenate(breaths)


def _yawn(k: _Kit) -> Floats:
    return np.concatenate([0.4 * k.breath(0.3, (500, 2500), 0.8), k.voiced(1.3, (210, 130), AH)])


def _sob(k: _Kit) -> Floats:
    parts = []
    for i in range(3):
        parts += [0.5 * k.breath(0.18, (900, 4500), 0.9), k.silence(0.04)]
        parts += [k.voiced(0.28, (330 - 20 * i, 250), UH), k.silence(0.12)]
    return np.concatenate(parts)


def _cry(k: _Kit) -> Floats:
    wail = k.voiced(1.6, (420, 300), AH)
    wobble = 1 + 0.25 * np.sin(2 * np.pi * 5.5 * k.time(1.6))
    return np.concatenate([0.5 * k.breath(0.25, (900, 4500), 0.9), wail * wobble])


def _snore(k: _Kit) -> Floats:
    parts = []
    for _ in range(2):
        t = k.time(0.9)
        rattle = (1 + np.sin(2 * np.pi * 32 * t)) * k.breath(0.9, (60, 700), 0.5)
        parts += [rattle, 0.4 * k.breath(0.6, (400, 2000), 0.3), k.silence(0.25)]
    return np.concatenate(parts)


def _crowd(k: _Kit) -> Floats:
    """A dozen laughers at different pitches and offsets, blurred together."""
    total = k.silence(2.4)
    for _ in range(12):
        laugh = _laugh(k, int(k.rng.integers(3, 6)), float(k.rng.uniform(150, 330)))
        start = int(k.rng.uniform(0, 0.9) * k.rate)
        end = min(total.size, start + laugh.size)
        total[start:end] += laugh[: end - start] * k.rng.uniform(0.4, 1.0)
    return total * _envelope(total.size, 0.3, 0.8, k.rate)


_EFFECTS: dict[str, Callable[[_Kit], Floats]] = {
    "laughing": _laugh,
    "chuckling": _chuckle,
    "sighing": _sigh,
    "groaning": _groan,
    "gasping": _gasp,
    "panting": _pant,
    "yawning": _yawn,
    "sobbing": _sob,
    "crying loudly": _cry,
    "snoring": _snore,
    "audience laughing": _crowd,
    "crowd laughing": _crowd,
    "background laughter": _crowd,  # the same crowd, further away (see render)
}


def render(name: str, rate: int) -> Samples:
    """The effect's samples, peak-normalised to 1 (the caller sets the level)."""
    kit = _Kit(rate, zlib.crc32(name.encode()))
    sound = _EFFECTS[name](kit)
    peak = float(np.max(np.abs(sound))) or 1.0
    level = 0.35 if name == "background laughter" else 1.0
    return np.asarray(sound / peak * level, dtype=np.float32)
