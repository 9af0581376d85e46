"""From a prompt to a plan: style, tempo, key, chord progressions and song sections.

The prompt is read for words, not understood: mood words pick one of six styles (each with its
instrumentation and tempo range), tempo words or an explicit "NN bpm" set the tempo, and an
explicit key ("in D minor", "F# major") or mode words set the key. Anything the prompt leaves
open is chosen by a generator seeded from the prompt, so one prompt always gives one piece and
different prompts differ.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

import numpy as np

__all__ = ["STYLES", "Plan", "Section", "Style", "layout", "plan"]

Progression = tuple[int, ...]  # scale degrees, 0-based, one chord per bar


@dataclass(frozen=True, slots=True)
class Style:
    name: str
    bpm: tuple[int, int]
    minor: bool
    pad: str  # instrument voices, see instruments.VOICES; "" for none
    bass: str
    arp: str
    lead: str
    drums: str  # a pattern set in arrangement.PATTERNS; "" for none
    reverb: float  # wet level
    arp_rate: int  # arpeggio notes per beat
    sevenths: bool  # richer chords for the gentler styles


# The six styles; each instrument names a voice in instruments.VOICES ("warm" in the pad column
# is "pad:warm"), and "-" is one the style goes without.
_STYLE_TABLE = """
name        bpm      mode   pad      bass   arp    lead   drums  reverb  arp/beat  7ths
calm        64-80    major  warm     sine   bell   flute  soft   0.50    2         yes
happy       108-124  major  warm     pluck  pluck  pluck  pop    0.25    4         no
sad         60-74    minor  strings  sine   -      piano  -      0.45    2         yes
dark        70-88    minor  strings  saw    bell   bell   soft   0.55    2         no
epic        84-100   minor  strings  saw    pluck  brass  epic   0.45    4         no
electronic  120-128  minor  warm     saw    pluck  saw    four   0.25    4         no
"""


def _style(row: str) -> Style:
    name, bpm, mode, pad, bass, arp, lead, drums, reverb, rate, sevenths = row.split()
    low, high = (int(b) for b in bpm.split("-"))
    return Style(
        name,
        (low, high),
        minor=mode == "minor",
        pad=_voice("pad", pad),
        bass=_voice("bass", bass),
        arp=_voice("arp", arp),
        lead=_voice("lead", lead),
        drums=drums if drums != "-" else "",
        reverb=float(reverb),
        arp_rate=int(rate),
        sevenths=sevenths == "yes",
    )


def _voice(part: str, name: str) -> str:
    return f"{part}:{name}" if name != "-" else ""


STYLES = {style.name: style for style in map(_style, _STYLE_TABLE.strip().splitlines()[1:])}
_MOOD_WORDS = {
    "calm": "calm peaceful relaxing relax ambient chill lofi meditation gentle serene dreamy sleep "
    "lullaby quiet soft",
    "happy": "happy upbeat joyful cheerful bright fun pop summer sunny playful uplifting bouncy",
    "sad": "sad melancholy melancholic sorrow grief lonely emotional ballad piano tearful somber",
    "dark": "dark ominous horror scary mysterious tense suspense eerie creepy sinister",
    "epic": "epic cinematic orchestral heroic trailer battle adventure triumphant majestic",
    "electronic": "electronic edm techno house dance synth synthwave club trance disco",
}
_SLOW = {"slow", "ballad", "lullaby", "downtempo", "adagio", "largo", "sleepy"}
_FAST = {"fast", "upbeat", "energetic", "driving", "uptempo", "frantic", "allegro", "presto"}
_MAJOR = [0, 2, 4, 5, 7, 9, 11]
_MINOR = [0, 2, 3, 5, 7, 8, 10]
_NOTES = {"c": 0, "d": 2, "e": 4, "f": 5, "g": 7, "a": 9, "b": 11}
_KEY = re.compile(r"\b([a-g])(?:\s*(#|♯|b|♭)|\s+(sharp|flat))?\s+(major|minor)\b")
_BPM = re.compile(r"\b(\d{2,3})\s*bpm\b")
_PROGRESSIONS: dict[bool, list[Progression]] = {
    False: [(0, 4, 5, 3), (0, 5, 3, 4), (0, 3, 4, 3), (5, 3, 0, 4), (0, 3, 5, 4)],
    True: [(0, 5, 2, 6), (0, 3, 4, 0), (0, 6, 5, 6), (0, 5, 3, 4), (0, 3, 6, 2)],
}
_ROMAN = {
    False: ["I", "ii", "iii", "IV", "V", "vi", "vii°"],
    True: ["i", "ii°", "III", "iv", "v", "VI", "VII"],
}
_NAMES = ["C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B"]


@dataclass(frozen=True, slots=True)
class Section:
    name: str  # intro, verse, chorus, outro
    bars: int


@dataclass(frozen=True, slots=True)
class Plan:
    style: Style
    bpm: float
    tonic: int  # pitch class, 0 = C
    minor: bool
    verse: Progression
    chorus: Progression
    seed: int

    @property
    def key(self) -> str:
        return f"{_NAMES[self.tonic]} {'minor' if self.minor else 'major'}"

    @property
    def scale(self) -> list[int]:
        return _MINOR if self.minor else _MAJOR

    def roman(self, progression: Progression) -> str:
        return "-".join(_ROMAN[self.minor][d % 7] for d in progression)

    @property
    def bar_seconds(self) -> float:
        return 240.0 / self.bpm


def plan(prompt: str) -> Plan:
    """Reads the prompt; whatever it does not say is drawn from a prompt-seeded generator."""
    text = prompt.lower()
    seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")
    rng = np.random.default_rng(seed)
    style = STYLES[_mood(text, rng)]
    tonic, minor = _key(text, style, rng)
    verse, chorus = _progressions(minor, rng)
    return Plan(style, _tempo(text, style, rng), tonic, minor, verse, chorus, seed)


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z]+", text.replace("lo-fi", "lofi"))


def _mood(text: str, rng: np.random.Generator) -> str:
    words = _words(text)
    scores = {mood: sum(w in vocab.split() for w in words) for mood, vocab in _MOOD_WORDS.items()}
    best = max(scores.values())
    if best == 0:
        return str(rng.choice(list(STYLES)))
    return next(mood for mood, score in scores.items() if score == best)


def _tempo(text: str, style: Style, rng: np.random.Generator) -> float:
    explicit = _BPM.search(text)
    if explicit:
        return float(np.clip(int(explicit.group(1)), 40, 200))
    words = set(_words(text))
    low, high = style.bpm
    if words & _SLOW and not words & _FAST:
        return float(max(52, low - 8))
    if words & _FAST and not words & _SLOW:
        return float(min(176, high + 16))
    return float(rng.integers(low, high + 1))


def _key(text: str, style: Style, rng: np.random.Generator) -> tuple[int, bool]:
    named = _KEY.search(text)
    if named:
        letter, symbol, word, mode = named.groups()
        accidental = {"#": 1, "♯": 1, "sharp": 1, "b": -1, "♭": -1, "flat": -1}.get(
            symbol or word or "", 0
        )
        return (_NOTES[letter] + accidental) % 12, mode == "minor"
    words = set(_words(text))
    minor = style.minor
    if "major" in words or "happy" in words or "bright" in words:
        minor = False
    if "minor" in words or "sad" in words or "dark" in words:
        minor = True
    return int(rng.integers(0, 12)), minor


def _progressions(minor: bool, rng: np.random.Generator) -> tuple[Progression, Progression]:
    options = _PROGRESSIONS[minor]
    first, second = rng.choice(len(options), size=2, replace=False)
    return options[int(first)], options[int(second)]


def layout(bars: int) -> list[Section]:
    """Intro, alternating verses and choruses ending on a chorus, outro; ``bars`` in total."""
    if bars < 3:
        return [Section("chorus", bars)]
    edge = 1 if bars < 10 else 2 if bars < 24 else 4
    middle = bars - 2 * edge
    phrase = 8 if middle >= 16 else 4
    blocks = [phrase] * (middle // phrase)
    remainder = middle % phrase
    if blocks and remainder < phrase // 2:
        blocks[-1] += remainder
    elif remainder:
        blocks.append(remainder)
    names = ["verse" if i % 2 == 0 else "chorus" for i in range(len(blocks))]
    names[-1] = "chorus"  # an odd count ends on a double chorus, as pop songs often do
    return [Section("intro", edge), *map(Section, names, blocks), Section("outro", edge)]
