"""Synthesised instruments for the music engine: numpy only, one note or drum hit at a time.

Sustained voices (pads, bass, leads) read band-limited wavetables (16 harmonics, so notes up to
about 1.3 kHz stay below Nyquist at 44.1 kHz) under ADSR envelopes; plucks and the piano are
additive with per-harmonic decay, higher partials dying first; bells and brass are two-operator
FM. Drums are pitch-swept sines and shaped noise. Every function returns the note *with* its
release tail, so the caller adds it into a track at the note's start.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cache

import numpy as np
import numpy.typing as npt
from scipy.signal import butter, sosfilt  # type: ignore[import-untyped]

__all__ = ["DRUMS", "VOICES", "Envelope", "drum", "note"]

Floats = npt.NDArray[np.float64]
TABLE_SIZE = 4096
HARMONICS = 16


@dataclass(frozen=True, slots=True)
class Envelope:
    attack: float
    decay: float
    sustain: float  # level, 0..1
    release: float

    def render(self, held: float, rate: int) -> Floats:
        """The envelope of a note held for ``held`` seconds, release tail included."""
        a, d, r = (max(1, int(x * rate)) for x in (self.attack, self.decay, self.release))
        h = max(int(held * rate), 1)
        curve = np.concatenate(
            [
                np.linspace(0, 1, a),
                np.linspace(1, self.sustain, d),
                np.full(max(h - a - d, 0), self.sustain),
            ]
        )[:h]
        tail = curve[-1] * np.linspace(1, 0, r) ** 2
        return np.concatenate([curve, tail])


@cache
def _table(shape: str) -> Floats:
    x = np.arange(TABLE_SIZE) * 2 * np.pi / TABLE_SIZE
    k = np.arange(1, HARMONICS + 1)[:, None]
    amplitudes = {
        "saw": 1 / k,
        "square": (k % 2) / k,
        "triangle": (k % 2) * (-1.0) ** ((k - 1) // 2) / k**2,
    }[shape]
    wave = (amplitudes * np.sin(k * x)).sum(axis=0)
    return np.asarray(wave / np.abs(wave).max(), dtype=np.float64)


def _phase(freq: float, n: int, rate: int, vibrato: float = 0.0) -> Floats:
    """Cycles elapsed per sample; ``vibrato`` is its depth as a fraction, at 5.5 Hz."""
    t = np.arange(n) / rate
    wobble = 1 + vibrato * np.sin(2 * np.pi * 5.5 * t) * np.clip(t / 0.4, 0, 1)
    return np.cumsum(freq * wobble / rate)


def _wave(shape: str, freq: float, n: int, rate: int, vibrato: float = 0.0) -> Floats:
    phase = _phase(freq, n, rate, vibrato)
    if shape == "sine":
        return np.sin(2 * np.pi * phase)
    index = (phase * TABLE_SIZE).astype(np.int64) % TABLE_SIZE
    return _table(shape)[index]


def _detuned(shape: str, freq: float, n: int, rate: int, *, cents: float, vibrato: float) -> Floats:
    """Three oscillators spread by ``cents``: the slow beating that makes a pad or string wide."""
    if not cents:
        return _wave(shape, freq, n, rate, vibrato)
    spread = [2 ** (c / 1200) for c in (-cents, 0.0, cents)]
    return sum((_wave(shape, freq * s, n, rate, vibrato) for s in spread), np.zeros(n)) / 3


# shape, frequency ratio, level, detune in cents, vibrato depth
Layer = tuple[str, float, float, float, float]

_SUSTAINED: dict[str, tuple[Envelope, tuple[Layer, ...]]] = {
    "pad:warm": (Envelope(0.5, 0.4, 0.8, 0.9), (("saw", 1, 1, 7, 0), ("sine", 0.5, 0.4, 0, 0))),
    "pad:strings": (Envelope(0.7, 0.3, 0.9, 1.0), (("saw", 1, 1, 10, 0.004),)),
    "bass:sine": (
        Envelope(0.01, 0.2, 0.8, 0.15),
        (("sine", 1, 1, 0, 0), ("triangle", 2, 0.25, 0, 0)),
    ),
    "bass:saw": (Envelope(0.005, 0.15, 0.7, 0.1), (("saw", 1, 1, 0, 0), ("sine", 1, 0.6, 0, 0))),
    "lead:flute": (
        Envelope(0.07, 0.1, 0.85, 0.15),
        (("sine", 1, 1, 0, 0.006), ("sine", 2, 0.12, 0, 0.006)),
    ),
    "lead:saw": (Envelope(0.01, 0.2, 0.7, 0.15), (("saw", 1, 1, 5, 0.003),)),
}


def _sustained(voice: str, freq: float, held: float, rate: int) -> Floats:
    envelope, layers = _SUSTAINED[voice]
    shape = envelope.render(held, rate)
    out = np.zeros(shape.size)
    for wave, ratio, level, cents, vibrato in layers:
        out += level * _detuned(wave, freq * ratio, shape.size, rate, cents=cents, vibrato=vibrato)
    return out * shape


def _decaying(
    freq: float, held: float, rate: int, *, partials: int, base: float, slope: float
) -> Floats:
    """Additive partials, each dying faster than the one below (plucked or struck strings)."""
    n = int((held + 0.6) * rate)
    t = np.arange(n) / rate
    out = np.zeros(n)
    for k in range(1, partials + 1):
        if k * freq < rate / 2:
            out += np.sin(2 * np.pi * k * freq * t) * np.exp(-t * (base + slope * k)) / k**1.2
    damp = np.clip(1 - (t - held) / 0.6, 0, 1)  # the key or string is let go
    return out * damp * np.clip(t / 0.004, 0, 1)


def _fm(freq: float, rate: int, *, ratio: float, index: Floats, env: Floats) -> Floats:
    """Two-operator FM: a sine whose phase is pushed by another at ``ratio`` times its pitch."""
    t = np.arange(env.size) / rate
    modulator = index * np.sin(2 * np.pi * freq * ratio * t)
    return np.sin(2 * np.pi * freq * t + modulator) * env


def _bass_pluck(f: float, held: float, rate: int) -> Floats:
    body = _decaying(f, held, rate, partials=6, base=2.5, slope=1.5)
    return body + 0.5 * _decaying(f, held, rate, partials=1, base=1.0, slope=0.0)


def _pluck(f: float, held: float, rate: int) -> Floats:
    return _decaying(f, min(held, 0.5), rate, partials=10, base=4.0, slope=2.5)


def _piano(f: float, held: float, rate: int) -> Floats:
    return _decaying(f, held, rate, partials=10, base=0.9, slope=0.8)


def _bell(f: float, held: float, rate: int) -> Floats:
    """Inharmonic (3.5:1) FM whose brightness dies faster than its loudness, as a bell's does."""
    t = np.arange(int((held + 1.4) * rate)) / rate
    env = np.exp(-t / 1.1) * np.clip(t / 0.003, 0, 1)
    return _fm(f, rate, ratio=3.5, index=2.2 * np.exp(-t / 0.35), env=env)


def _brass(f: float, held: float, rate: int) -> Floats:
    """FM at 1:1 with the index following loudness: louder is brighter, as with a real horn."""
    env = Envelope(0.09, 0.2, 0.8, 0.2).render(held, rate)
    return _fm(f, rate, ratio=1.0, index=2.6 * env, env=env)


_STRUCK: dict[str, Callable[[float, float, int], Floats]] = {
    "bass:pluck": _bass_pluck,
    "arp:pluck": _pluck,
    "lead:pluck": _pluck,
    "lead:piano": _piano,
    "arp:bell": _bell,
    "lead:bell": _bell,
    "lead:brass": _brass,
}
VOICES = frozenset(_SUSTAINED) | frozenset(_STRUCK)


def note(voice: str, midi: float, held: float, rate: int) -> Floats:
    """One note of ``voice`` ("pad:warm", "lead:piano", ...) at MIDI pitch ``midi``."""
    freq = 440.0 * 2 ** ((midi - 69) / 12)
    if voice in _SUSTAINED:
        return _sustained(voice, freq, held, rate)
    return _STRUCK[voice](freq, held, rate)


# -- drums -------------------------------------------------------------------------------------


def _noise(n: int, seed: int) -> Floats:
    return np.random.default_rng(seed).standard_normal(n)


def _filtered(x: Floats, rate: int, kind: str, cutoff: float | tuple[float, float]) -> Floats:
    nyquist = rate / 2
    wn = [c / nyquist for c in cutoff] if isinstance(cutoff, tuple) else cutoff / nyquist
    btype = "band" if isinstance(cutoff, tuple) else kind
    return np.asarray(sosfilt(butter(2, wn, btype=btype, output="sos"), x), dtype=np.float64)


def _kick(rate: int) -> Floats:
    t = np.arange(int(0.5 * rate)) / rate
    freq = 48 + 110 * np.exp(-t / 0.035)
    body = np.sin(2 * np.pi * np.cumsum(freq) / rate) * np.exp(-t / 0.22)
    click = _noise(t.size, 1) * np.exp(-t / 0.002) * 0.3
    return body + click


def _snare(rate: int) -> Floats:
    t = np.arange(int(0.3 * rate)) / rate
    tone = np.sin(2 * np.pi * 185 * t) * np.exp(-t / 0.06) * 0.6
    rattle = _filtered(_noise(t.size, 2), rate, "high", 1500) * np.exp(-t / 0.1)
    return tone + rattle


def _clap(rate: int) -> Floats:
    t = np.arange(int(0.3 * rate)) / rate
    bursts = sum(
        (np.exp(-np.clip(t - d, 0, None) / 0.008) * (t >= d) for d in (0, 0.011, 0.022)),
        np.zeros(t.size),
    )
    tail = np.exp(-t / 0.12) * 0.5
    return _filtered(_noise(t.size, 3), rate, "band", (900, 3500)) * (bursts + tail)


def _hat(rate: int, decay: float = 0.035) -> Floats:
    t = np.arange(int((decay * 6) * rate)) / rate
    return _filtered(_noise(t.size, 4), rate, "high", 7000) * np.exp(-t / decay) * 0.6


def _tom(rate: int) -> Floats:
    t = np.arange(int(1.0 * rate)) / rate
    freq = 68 + 40 * np.exp(-t / 0.08)
    body = np.sin(2 * np.pi * np.cumsum(freq) / rate) * np.exp(-t / 0.45)
    skin = _filtered(_noise(t.size, 5), rate, "low", 900) * np.exp(-t / 0.06) * 0.5
    return body + skin


def _crash(rate: int) -> Floats:
    t = np.arange(int(2.2 * rate)) / rate
    return _filtered(_noise(t.size, 6), rate, "high", 4000) * np.exp(-t / 0.8) * 0.35


DRUMS: dict[str, Callable[[int], Floats]] = {
    "kick": _kick,
    "snare": _snare,
    "clap": _clap,
    "hat": _hat,
    "open": lambda rate: _hat(rate, 0.18),
    "tom": _tom,
    "crash": _crash,
}


@cache
def drum(name: str, rate: int) -> Floats:
    """One hit of drum ``name`` (kick, snare, clap, hat, open, tom, crash), peak 1."""
    hit = DRUMS[name](rate)
    return np.asarray(hit / np.abs(hit).max(), dtype=np.float64)
