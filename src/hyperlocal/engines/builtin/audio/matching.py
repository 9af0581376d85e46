"""Voice matching without a cloning model: move F0 and formants toward a reference voice.

No CPU voice-cloning model can be had offline, so this is what honest signal processing can do.
A voice is summarised by its *voiceprint*: the median F0 of its voiced frames, and the average
log spectral envelope of those frames (WORLD CheapTrick), which carries its formant structure.
Synthesised speech is then resynthesised by WORLD with

- F0 scaled by ``reference median / own median``, which keeps the intonation's shape, and
- the spectral envelope frequency-warped by one factor: the ratio of the two voices' formant
  scales, estimated as the warp that best lines up the two average envelopes between 150 Hz
  and 5 kHz (level differences removed). A single linear factor is the first-order model of a
  longer or shorter vocal tract.

Breathiness, accent, rhythm and everything else that makes a voice someone's are untouched.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from hyperlocal.engines.builtin.audio import world
from hyperlocal.engines.media.audio_codec import Samples

__all__ = ["Match", "Voiceprint", "formant_ratio", "match", "voiceprint"]

Floats = npt.NDArray[np.float64]
F0_RATIO_LIMITS = (0.4, 2.5)  # past these WORLD resynthesis falls apart
WARP_CANDIDATES = np.geomspace(0.72, 1.4, 69)  # about 1 % apart
BAND_HZ = (150.0, 5000.0)


@dataclass(frozen=True, slots=True)
class Voiceprint:
    f0: float  # median Hz over voiced frames; 0 with none
    envelope: Floats  # mean log power envelope over voiced frames


@dataclass(frozen=True, slots=True)
class Match:
    samples: Samples
    f0_before: float
    f0_after: float
    f0_ratio: float
    formant_ratio: float


def voiceprint(samples: Samples, rate: int) -> Voiceprint:
    return _voiceprint(world.analyse(samples, rate))


def _voiceprint(analysis: world.Analysis) -> Voiceprint:
    voiced = analysis.f0 > 0
    frames = analysis.envelope[voiced] if voiced.any() else analysis.envelope
    log_envelope = np.log(np.maximum(frames, 1e-16)).mean(axis=0)
    return Voiceprint(world.median_f0(analysis.f0), np.asarray(log_envelope, dtype=np.float64))


def formant_ratio(source: Floats, target: Floats, rate: int) -> float:
    """The warp of ``source`` that best matches ``target``'s shape in the speech band."""
    freqs = np.linspace(0, rate / 2, source.size)
    band = (freqs >= BAND_HZ[0]) & (freqs <= BAND_HZ[1])
    costs = [_misfit(world.warp_log(source, float(r)), target, band) for r in WARP_CANDIDATES]
    return float(WARP_CANDIDATES[int(np.argmin(costs))])


def _misfit(warped: Floats, target: Floats, band: npt.NDArray[np.bool_]) -> float:
    difference = warped[band] - target[band]
    return float(np.var(difference))  # variance, not mean square: overall level is ignored


def match(samples: Samples, rate: int, target: Voiceprint) -> Match:
    """Resynthesises ``samples`` with F0 and formants moved to ``target``'s."""
    analysis = world.analyse(samples, rate)
    own = _voiceprint(analysis)
    f0_ratio = _f0_ratio(own.f0, target.f0)
    warp = formant_ratio(own.envelope, target.envelope, rate)
    moved = world.warp_envelope(world.shift_f0(analysis, f0_ratio), warp)
    return Match(world.synthesise(moved), own.f0, own.f0 * f0_ratio, f0_ratio, warp)


def _f0_ratio(own: float, target: float) -> float:
    if own <= 0 or target <= 0:
        return 1.0  # nothing voiced on one side: leave the pitch alone
    return float(np.clip(target / own, *F0_RATIO_LIMITS))
