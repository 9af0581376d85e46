"""Turns a parsed tag script into samples: prosody, whispering, pauses, effects and levels.

Pitch is moved by the resampling trick, without a separate time-stretch: to raise F0 by a factor
``s`` the speaker reads ``s`` times slower, and the result is resampled ``s`` times shorter. The
words land at the requested rate and every frequency, F0 included, rises by ``s``. Formants
move with it, which at a few semitones reads as the brighter, tenser voice that excitement or
fear produce anyway. Loudness is set per stretch as an RMS level over its active frames, so an
emotion's gain is heard as such; a soft limiter then keeps shouting and screaming under full
scale, where it saturates them a little, as a real shout does.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
from scipy.signal import resample_poly  # type: ignore[import-untyped]

from hyperlocal.engines.builtin.audio import effects, world
from hyperlocal.engines.builtin.audio.levels import set_level, soft_limit
from hyperlocal.engines.builtin.audio.tags import Effect, Item, Pause, Speech
from hyperlocal.engines.builtin.audio.voice import Speaker
from hyperlocal.engines.media.audio_codec import Samples

__all__ = ["SPEECH_DBFS", "assemble", "render_item", "repitch"]

SPEECH_DBFS = -20.0  # neutral speech; each emotion's gain_db is relative to this
EFFECT_DBFS = -22.0
GAP_S = 0.15  # between one item and the next


def render_item(item: Item, speaker: Speaker) -> Samples:
    """One speech stretch, pause or effect; blocking (Piper and WORLD run here)."""
    if isinstance(item, Pause):
        return np.zeros(int(item.seconds * speaker.rate), dtype=np.float32)
    if isinstance(item, Effect):
        return set_level(effects.render(item.name, speaker.rate), EFFECT_DBFS)
    return _speak(item, speaker)


def _speak(speech: Speech, speaker: Speaker) -> Samples:
    prosody = speech.prosody
    shift = 2.0 ** (prosody.semitones / 12.0)
    raw = speaker.speak(
        speech.text,
        speed=prosody.rate / shift,  # read slower by the shift; resampling takes it back out
        expressiveness=prosody.expressiveness,
        rhythm=prosody.rhythm,
    )
    voice = repitch(raw, shift)
    if prosody.whisper:
        voice = world.whisper(voice, speaker.rate)
    return set_level(voice, SPEECH_DBFS + prosody.gain_db)


def repitch(samples: Samples, shift: float) -> Samples:
    """Plays ``samples`` ``shift`` times faster: every frequency times ``shift``, length / it."""
    if abs(shift - 1.0) < 1e-3 or not samples.size:
        return samples
    ratio = Fraction(shift).limit_denominator(64)
    out = resample_poly(samples, ratio.denominator, ratio.numerator)
    return np.asarray(out, dtype=np.float32)


def assemble(parts: list[Samples], rate: int) -> Samples:
    """Joins rendered items with short gaps and limits the whole."""
    gap = np.zeros(int(GAP_S * rate), dtype=np.float32)
    joined: list[Samples] = []
    for part in parts:
        joined += [gap, part] if joined else [part]
    if not joined:
        return np.zeros(0, dtype=np.float32)
    return soft_limit(np.concatenate(joined))
