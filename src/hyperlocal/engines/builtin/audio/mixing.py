"""Renders a score to stereo: one track per part, filtered, panned, sent to a reverb, mastered.

The reverb is a convolution with synthetic impulse responses (decaying, darkened noise, a
different one per channel so the tail is wide), which costs one FFT convolution for the whole
piece instead of a per-sample feedback loop. Mastering sets an RMS level, soft-limits the
peaks and fades the ends, and the result is cut to exactly the requested number of samples.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy.signal import butter, oaconvolve, sosfilt  # type: ignore[import-untyped]

from hyperlocal.engines.builtin.audio import instruments
from hyperlocal.engines.builtin.audio.arrangement import Score
from hyperlocal.engines.builtin.audio.levels import soft_limit

__all__ = ["PARTS", "Part", "mix"]

Floats = npt.NDArray[np.float64]
MASTER_DBFS = -15.0
FADE_OUT_S = 1.2


@dataclass(frozen=True, slots=True)
class Part:
    gain: float
    pan: float  # -1 left .. 1 right
    send: float  # to the reverb
    lowpass: float = 0.0  # Hz; 0 for none
    width_ms: float = 0.0  # Haas delay on the right channel, for pads


PARTS = {
    "pad": Part(0.11, 0.0, 0.6, lowpass=2400, width_ms=14),
    "bass": Part(0.42, 0.0, 0.05, lowpass=900),
    "arp": Part(0.14, 0.35, 0.55),
    "lead": Part(0.26, -0.15, 0.45, lowpass=5000),
    "kick": Part(0.75, 0.0, 0.0),
    "snare": Part(0.4, 0.05, 0.3),
    "clap": Part(0.35, -0.05, 0.3),
    "hat": Part(0.16, 0.3, 0.1),
    "open": Part(0.14, 0.3, 0.15),
    "tom": Part(0.6, -0.1, 0.35),
    "crash": Part(0.22, -0.3, 0.25),
}


def mix(score: Score, samples: int, rate: int) -> Floats:
    """The score as ``(samples, 2)`` floats in [-1, 1]."""
    tracks = _tracks(score, samples, rate)
    dry = np.zeros((samples, 2))
    send = np.zeros(samples)
    for name, track in tracks.items():
        part = PARTS[name]
        filtered = _lowpass(track, part.lowpass, rate) if part.lowpass else track
        dry += _place(filtered, part, rate)
        send += filtered * part.send
    wet = _reverb(send, score.plan.style.reverb, rate, score.plan.seed)
    return _master(dry + wet, rate)


def _tracks(score: Score, samples: int, rate: int) -> dict[str, Floats]:
    tracks: dict[str, Floats] = {}
    sounds: dict[tuple[str, float, float], Floats] = {}  # riffs repeat: render each note once
    for note in score.notes:
        key = (note.voice, note.midi, round(note.held, 4))
        if key not in sounds:
            sounds[key] = instruments.note(note.voice, note.midi, note.held, rate)
        part = note.voice.split(":")[0]
        track = tracks.setdefault(part, np.zeros(samples))
        _add(track, sounds[key] * note.velocity, note.start, rate)
    for hit in score.hits:
        track = tracks.setdefault(hit.drum, np.zeros(samples))
        _add(track, instruments.drum(hit.drum, rate) * hit.velocity, hit.start, rate)
    return {name: track * PARTS[name].gain for name, track in tracks.items()}


def _add(track: Floats, sound: Floats, start_s: float, rate: int) -> None:
    start = round(start_s * rate)
    end = min(track.size, start + sound.size)
    if start < end:
        track[start:end] += sound[: end - start]


def _lowpass(track: Floats, cutoff: float, rate: int) -> Floats:
    sos = butter(2, min(cutoff / (rate / 2), 0.99), btype="low", output="sos")
    return np.asarray(sosfilt(sos, track), dtype=np.float64)


def _place(track: Floats, part: Part, rate: int) -> Floats:
    """Constant-power pan, plus an optional short delay on the right for width."""
    angle = (part.pan + 1) * np.pi / 4
    right = track
    if part.width_ms:
        shift = int(part.width_ms * rate / 1000)
        right = np.concatenate([np.zeros(shift), track[:-shift]])
    return np.stack([track * np.cos(angle), right * np.sin(angle)], axis=1)


def _reverb(send: Floats, amount: float, rate: int, seed: int) -> Floats:
    rt60 = 1.0 + 3.0 * amount  # seconds for the tail to fall 60 dB
    t = np.arange(int(min(rt60, 3.0) * rate)) / rate
    rng = np.random.default_rng(seed % 2**32)
    dark = butter(1, 5000 / (rate / 2), btype="low", output="sos")
    predelay = int(0.025 * rate)
    wet = []
    for _ in range(2):  # an independent tail per channel
        ir = sosfilt(dark, rng.standard_normal(t.size)) * np.exp(-6.9 * t / rt60)
        ir = np.concatenate([np.zeros(predelay), ir / np.sqrt(np.sum(ir**2))])
        wet.append(oaconvolve(send, ir)[: send.size])
    return amount * np.stack(wet, axis=1)


def _master(stereo: Floats, rate: int) -> Floats:
    hum = butter(2, 30 / (rate / 2), btype="high", output="sos")
    stereo = sosfilt(hum, stereo, axis=0)
    rms = float(np.sqrt(np.mean(stereo**2)))
    if rms > 0:
        stereo *= 10 ** (MASTER_DBFS / 20) / rms
    limited = np.asarray(soft_limit(stereo.astype(np.float32)), dtype=np.float64)
    fade = np.ones(limited.shape[0])
    n_in, n_out = min(fade.size, int(0.01 * rate)), min(fade.size, int(FADE_OUT_S * rate))
    fade[:n_in] = np.linspace(0, 1, n_in)
    fade[fade.size - n_out :] *= np.cos(np.linspace(0, np.pi / 2, n_out)) ** 2
    return limited * fade[:, None]
