"""Fish Audio S1 emotion tags: parse ``(sad)(whispering) Text. (break) More.`` into a script.

A tag is a short parenthesised word or phrase. Tags that sit together form a group; a group
with emotion or tone tags sets the voice for everything that follows, until the next such group
(``(sad)(whispering)`` combines both). ``(break)`` and ``(long-break)`` become silences, effect
tags such as ``(laughing)`` become short synthesised sounds, and unknown tags are dropped. No
tag is ever spoken as a word. A tag is any parenthesised run of letters, spaces, hyphens and
apostrophes up to 41 characters, so an aside like "(see above)" is dropped too; parentheses
holding digits or other punctuation are left in the text and spoken.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

__all__ = [
    "BREAKS",
    "EFFECTS",
    "NEUTRAL",
    "STYLES",
    "Effect",
    "Item",
    "Pause",
    "Prosody",
    "Speech",
    "parse",
]


@dataclass(frozen=True, slots=True)
class Prosody:
    """How one stretch of speech is rendered, relative to the voice's neutral delivery."""

    rate: float = 1.0  # speaking-rate factor: 1.2 is 20 % faster (divides Piper's length_scale)
    semitones: float = 0.0  # F0 shift
    gain_db: float = 0.0  # loudness relative to neutral speech
    expressiveness: float = 1.0  # scales Piper's noise_scale: livelier or flatter intonation
    rhythm: float = 1.0  # scales Piper's noise_w: more or less varied phoneme durations
    whisper: bool = False  # resynthesised by WORLD with no F0: breath only

    def __add__(self, other: Prosody) -> Prosody:
        return Prosody(
            rate=self.rate * other.rate,
            semitones=self.semitones + other.semitones,
            gain_db=self.gain_db + other.gain_db,
            expressiveness=self.expressiveness * other.expressiveness,
            rhythm=self.rhythm * other.rhythm,
            whisper=self.whisper or other.whisper,
        )


NEUTRAL = Prosody()

# rate, semitones, gain dB, expressiveness, rhythm. Arousal drives rate, pitch and loudness up
# (excited, angry, scared); low-arousal states (sad, bored, resigned) are slower, lower, quieter
# and flatter. Values are picked by ear to be clearly audible without breaking the voice.
_EMOTIONS: dict[str, tuple[float, float, float, float, float]] = {
    # basic
    "happy": (1.08, 2.0, 1.5, 1.2, 1.1),
    "sad": (0.80, -2.5, -4.0, 0.6, 0.8),
    "angry": (1.08, 1.0, 5.0, 1.3, 1.2),
    "excited": (1.18, 3.5, 3.0, 1.35, 1.2),
    "calm": (0.90, -1.0, -2.0, 0.7, 0.8),
    "nervous": (1.12, 1.5, -1.0, 1.2, 1.4),
    "confident": (0.98, -0.5, 2.0, 0.9, 0.9),
    "surprised": (1.05, 4.0, 2.0, 1.4, 1.1),
    "satisfied": (0.95, 0.5, 0.0, 0.9, 0.9),
    "delighted": (1.08, 3.0, 2.0, 1.3, 1.1),
    "scared": (1.15, 3.0, -2.0, 1.3, 1.4),
    "worried": (0.95, 1.0, -2.0, 1.0, 1.2),
    "upset": (1.05, 1.5, 2.0, 1.2, 1.2),
    "frustrated": (1.02, 0.5, 3.0, 1.2, 1.2),
    "depressed": (0.75, -3.5, -6.0, 0.5, 0.7),
    "empathetic": (0.90, -0.5, -2.0, 0.8, 0.9),
    "embarrassed": (1.05, 1.0, -3.0, 1.0, 1.2),
    "disgusted": (0.92, -1.5, 1.0, 1.1, 1.0),
    "moved": (0.88, 0.5, -2.0, 1.1, 1.0),
    "proud": (0.95, 1.0, 2.0, 1.1, 0.9),
    "relaxed": (0.88, -1.5, -2.0, 0.7, 0.8),
    "grateful": (0.95, 1.0, 0.0, 1.0, 0.9),
    "curious": (1.00, 2.0, 0.0, 1.2, 1.0),
    "sarcastic": (0.90, -1.0, 1.0, 1.4, 1.2),
    # advanced
    "disdainful": (0.90, -2.0, 0.0, 1.1, 1.0),
    "unhappy": (0.88, -2.0, -3.0, 0.7, 0.9),
    "anxious": (1.15, 2.0, -1.0, 1.2, 1.4),
    "hysterical": (1.30, 5.0, 6.0, 1.5, 1.5),
    "indifferent": (0.95, -1.5, -2.0, 0.4, 0.7),
    "uncertain": (0.90, 0.5, -2.0, 1.0, 1.3),
    "doubtful": (0.90, 0.5, -1.0, 1.1, 1.2),
    "confused": (0.92, 1.5, -1.0, 1.2, 1.3),
    "disappointed": (0.85, -2.0, -3.0, 0.7, 0.9),
    "regretful": (0.85, -2.0, -3.0, 0.8, 0.9),
    "guilty": (0.88, -2.0, -4.0, 0.8, 1.0),
    "ashamed": (0.85, -2.5, -5.0, 0.7, 1.0),
    "jealous": (1.00, 0.0, 1.0, 1.1, 1.1),
    "envious": (0.98, -0.5, 0.0, 1.1, 1.1),
    "hopeful": (1.00, 2.0, 0.0, 1.1, 1.0),
    "optimistic": (1.06, 2.0, 1.0, 1.2, 1.0),
    "pessimistic": (0.88, -2.0, -2.0, 0.7, 0.9),
    "nostalgic": (0.85, -1.0, -2.0, 0.9, 0.9),
    "lonely": (0.82, -2.5, -4.0, 0.6, 0.9),
    "bored": (0.85, -2.0, -3.0, 0.3, 0.7),
    "contemptuous": (0.90, -2.0, 1.0, 1.0, 1.0),
    "sympathetic": (0.90, -0.5, -2.0, 0.9, 0.9),
    "compassionate": (0.88, -0.5, -2.0, 0.9, 0.9),
    "determined": (1.00, -0.5, 3.0, 0.9, 0.8),
    "resigned": (0.82, -2.5, -4.0, 0.5, 0.8),
    # tone: loudness carries shouting and screaming, which the output limiter then saturates
    "in a hurry tone": (1.45, 1.0, 1.0, 1.0, 0.8),
    "shouting": (0.95, 4.0, 9.0, 1.3, 1.0),
    "screaming": (0.92, 7.0, 12.0, 1.5, 1.2),
    "whispering": (0.92, 0.0, -8.0, 1.0, 1.0),
    "soft tone": (0.90, -1.0, -7.0, 0.6, 0.8),
}

STYLES: dict[str, Prosody] = {
    name: Prosody(*values, whisper=name == "whispering") for name, values in _EMOTIONS.items()
}
EFFECTS = frozenset(
    {
        "laughing",
        "chuckling",
        "sobbing",
        "crying loudly",
        "sighing",
        "groaning",
        "panting",
        "gasping",
        "yawning",
        "snoring",
        "audience laughing",
        "background laughter",
        "crowd laughing",
    }
)
BREAKS = {"break": 0.5, "long-break": 1.5}  # seconds of silence


@dataclass(frozen=True, slots=True)
class Speech:
    text: str
    prosody: Prosody


@dataclass(frozen=True, slots=True)
class Pause:
    seconds: float


@dataclass(frozen=True, slots=True)
class Effect:
    name: str


Item = Speech | Pause | Effect

_TAG = re.compile(r"\(\s*([A-Za-z][A-Za-z' _-]{0,40}?)\s*\)")


def parse(text: str) -> list[Item]:
    """Splits tagged text into speech, pauses and effects, in order."""
    items: list[Item] = []
    current, pending = NEUTRAL, list[Prosody]()
    for kind, value in _tokens(text):
        if kind == "text":
            if pending:  # a new style group ends here: it replaces the previous one
                current, pending = sum(pending, NEUTRAL), []
            _say(items, Speech(value, current))
        elif value in STYLES:
            pending.append(STYLES[value])
        elif value in BREAKS:
            items.append(Pause(BREAKS[value]))
        elif value in EFFECTS:
            items.append(Effect(value))
    return items


def _say(items: list[Item], speech: Speech) -> None:
    """Appends, joining text split only by a dropped tag, so sentences stay whole for Piper."""
    last = items[-1] if items else None
    if isinstance(last, Speech) and last.prosody == speech.prosody:
        items[-1] = Speech(f"{last.text} {speech.text}", speech.prosody)
    else:
        items.append(speech)


def _tokens(text: str) -> Iterator[tuple[str, str]]:
    """Yields ("text", words) and ("tag", normalised name); blank text between tags is skipped."""
    position = 0
    for match in _TAG.finditer(text):
        yield from _text(text[position : match.start()])
        yield "tag", _normalise(match.group(1))
        position = match.end()
    yield from _text(text[position:])


def _text(chunk: str) -> Iterator[tuple[str, str]]:
    words = " ".join(chunk.split())
    if any(ch.isalnum() for ch in words):  # a lone "." left between tags says nothing
        yield "text", words


# Spellings people use for the same tags.
_ALIASES = {
    "long break": "long-break",
    "longbreak": "long-break",
    "pause": "break",
    "long pause": "long-break",
    "in a hurry": "in a hurry tone",
    "hurried": "in a hurry tone",
    "soft": "soft tone",
    "whisper": "whispering",
    "whispers": "whispering",
    "shout": "shouting",
    "scream": "screaming",
    "laughs": "laughing",
    "laugh": "laughing",
    "sighs": "sighing",
    "sigh": "sighing",
}


def _normalise(name: str) -> str:
    name = " ".join(name.lower().replace("_", " ").split())
    return _ALIASES.get(name, name)
