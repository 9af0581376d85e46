"""From a plan to a score: which part plays which notes, bar by bar, in every section.

Pads hold each bar's chord, the bass follows the root in a pattern the style picks, the
arpeggio walks the chord tones up and down, and drums play a 16-step pattern with a fill
before each chorus and a crash on its first beat. The melody is built from two one-bar motifs
(a rhythm and a contour of scale steps), one for verses and one, higher, for choruses, arranged
in four-bar phrases: statement, repeat, variation (the contour inverted), cadence on the tonic.
Notes on strong beats are pulled to the nearest chord tone so the melody sits on the harmony.
The last bar holds the tonic chord.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hyperlocal.engines.builtin.audio.composition import Plan, Progression, Section

__all__ = ["Hit", "Note", "Score", "arrange"]

_PARTS = {
    "intro": {"pad", "arp"},
    "verse": {"pad", "bass", "lead", "drums"},
    "chorus": {"pad", "bass", "arp", "lead", "drums"},
    "outro": {"pad", "arp", "bass"},
}
_BASS = {  # (beat, length in beats, interval above the root)
    "bass:sine": [(0.0, 4.0, 0)],
    "bass:pluck": [(0.0, 1.0, 0), (1.5, 0.5, 0), (2.0, 1.0, 7), (3.0, 1.0, 12)],
    "bass:saw": [(b / 2, 0.45, 12 if b % 4 == 3 else 0) for b in range(8)],
}
_DRUMS = {
    "pop": {"kick": "x.......x.x.....", "snare": "....x.......x...", "hat": "x.x.x.x.x.x.x.x."},
    "four": {
        "kick": "x...x...x...x...",
        "clap": "....x.......x...",
        "hat": "..x...x...x.....",
        "open": "..............x.",
    },
    "soft": {"kick": "x.........x.....", "snare": "............x...", "hat": "x...x...x...x..."},
    "epic": {"tom": "x..x..x.x...x.x.", "kick": "x.......x.......", "snare": "....x.......x..."},
}
_SLOW_RHYTHMS = [(2.0, 2.0), (1.5, 0.5, 2.0), (1.0, 1.0, 2.0), (3.0, 1.0), (1.0, 1.0, 1.0, 1.0)]
_FAST_RHYTHMS = [
    (1.0, 1.0, 1.0, 1.0),
    (0.5, 0.5, 1.0, 2.0),
    (1.5, 0.5, 1.0, 1.0),
    (0.5, 0.5, 0.5, 0.5, 2.0),
    (1.0, 0.5, 0.5, 2.0),
]
_STEPS = [-2, -1, -1, 0, 1, 1, 2, 3, -3]


@dataclass(frozen=True, slots=True)
class Note:
    voice: str  # instruments.VOICES key, e.g. "lead:piano"
    start: float  # seconds
    held: float  # seconds
    midi: float
    velocity: float


@dataclass(frozen=True, slots=True)
class Hit:
    drum: str
    start: float
    velocity: float


@dataclass(frozen=True, slots=True)
class Score:
    plan: Plan
    sections: list[Section]
    notes: list[Note]
    hits: list[Hit]


@dataclass(frozen=True, slots=True)
class _Motif:
    rhythm: tuple[float, ...]  # beats, summing to a bar
    steps: tuple[int, ...]  # scale steps from the previous note
    resolve: bool = False  # the last note lands on the tonic


@dataclass(slots=True)
class _Bar:
    index: int  # from the start of the piece
    section: str
    position: int  # within its section
    degree: int  # the chord's scale degree
    last: bool  # the final bar of the piece
    before_chorus: bool
    ring: float  # seconds the final bar's notes are held past its end; 0 for the others


def arrange(plan: Plan, sections: list[Section], ring: float = 2.0) -> Score:
    """The notes and drum hits of the piece; the last chord is held ``ring`` s past its bar."""
    rng = np.random.default_rng(plan.seed)
    fast = plan.bpm >= 100
    motifs = {"verse": _motif(rng, fast), "chorus": _motif(rng, fast)}
    notes: list[Note] = []
    hits: list[Hit] = []
    melody = {"degree": 4}  # the melody's last scale degree, carried from bar to bar
    for bar in _bars(plan, sections, ring):
        parts = _PARTS[bar.section]
        notes += _chord_parts(plan, bar, parts)
        if "lead" in parts or bar.last:
            notes += _melody(plan, bar, motifs.get(bar.section, motifs["verse"]), melody)
        if "drums" in parts and plan.style.drums:
            hits += _drums(plan, bar, rng)
    return Score(plan, sections, notes, hits)


def _bars(plan: Plan, sections: list[Section], ring: float) -> list[_Bar]:
    bars: list[_Bar] = []
    total = sum(s.bars for s in sections)
    for number, section in enumerate(sections):
        following = sections[number + 1].name if number + 1 < len(sections) else ""
        progression: Progression = plan.chorus if section.name == "chorus" else plan.verse
        for j in range(section.bars):
            index = len(bars)
            degree = 0 if index == total - 1 else progression[j % len(progression)]
            before = following == "chorus" and j == section.bars - 1
            last = index == total - 1
            bars.append(_Bar(index, section.name, j, degree, last, before, ring if last else 0.0))
    return bars


def _chord(plan: Plan, degree: int) -> list[int]:
    """Semitones above the tonic: a triad on ``degree``, or a seventh chord for gentle styles."""
    steps = (0, 2, 4, 6) if plan.style.sevenths else (0, 2, 4)
    scale = plan.scale
    return [scale[(degree + s) % 7] + 12 * ((degree + s) // 7) for s in steps]


def _chord_parts(plan: Plan, bar: _Bar, parts: set[str]) -> list[Note]:
    beat = 60.0 / plan.bpm
    start = bar.index * 4 * beat
    tones = _chord(plan, bar.degree)
    ring = bar.ring
    notes: list[Note] = []
    if "pad" in parts and plan.style.pad:
        for tone in tones:
            midi = 52 + (plan.tonic + tone - 52) % 12
            notes.append(Note(plan.style.pad, start, 4 * beat + ring, midi, 0.5))
    if "bass" in parts and plan.style.bass:
        notes += _bass(plan, bar, start, ring)
    if "arp" in parts and plan.style.arp and not bar.last:
        notes += _arpeggio(plan, tones, start)
    return notes


def _bass(plan: Plan, bar: _Bar, start: float, ring: float) -> list[Note]:
    beat = 60.0 / plan.bpm
    root = 36 + (plan.tonic + plan.scale[bar.degree % 7]) % 12
    if bar.last:
        return [Note(plan.style.bass, start, 4 * beat + ring, root, 0.9)]
    pattern = _BASS[plan.style.bass]
    return [Note(plan.style.bass, start + b * beat, n * beat, root + i, 0.9) for b, n, i in pattern]


def _arpeggio(plan: Plan, tones: list[int], start: float) -> list[Note]:
    step = 60.0 / plan.bpm / plan.style.arp_rate
    base = 60 + plan.tonic if plan.tonic < 6 else 48 + plan.tonic
    up = [base + t for t in tones] + [base + 12 + t for t in tones[:2]]
    cycle = up + up[-2:0:-1]  # up and back down, without repeating the ends
    count = 4 * plan.style.arp_rate
    return [
        Note(
            plan.style.arp,
            start + i * step,
            step * 0.9,
            cycle[i % len(cycle)],
            0.55 + 0.2 * (i % 4 == 0),
        )
        for i in range(count)
    ]


def _motif(rng: np.random.Generator, fast: bool) -> _Motif:
    rhythms = _FAST_RHYTHMS if fast else _SLOW_RHYTHMS
    rhythm = rhythms[int(rng.integers(len(rhythms)))]
    steps = tuple(int(rng.choice(_STEPS)) for _ in rhythm)
    return _Motif(rhythm, steps)


def _phrase_variant(motif: _Motif, position: int, last: bool) -> _Motif:
    """Statement, repeat, inversion, cadence: the four bars of a phrase; a held tonic to end."""
    if last:
        return _Motif((4.0,), (0,), resolve=True)
    if position % 4 == 3:
        return _Motif((2.0, 2.0), (0, 0), resolve=True)
    if position % 4 == 2:
        return _Motif(motif.rhythm, tuple(-s for s in motif.steps))
    return motif


def _melody(plan: Plan, bar: _Bar, motif: _Motif, state: dict[str, int]) -> list[Note]:
    beat = 60.0 / plan.bpm
    variant = _phrase_variant(motif, bar.position, bar.last)
    lift = 3 if bar.section == "chorus" else 0  # choruses sit a third higher
    chord = {(bar.degree + s) % 7 for s in (0, 2, 4)}
    base = 57 + (plan.tonic - 9) % 12  # the tonic between A3 and G#4
    notes: list[Note] = []
    onset = 0.0
    for i, (length, step) in enumerate(zip(variant.rhythm, variant.steps, strict=True)):
        final = variant.resolve and i == len(variant.rhythm) - 1
        degree = 7 if final else _place(state["degree"] + step, chord, onset, lift)
        state["degree"] = degree
        midi = base + plan.scale[degree % 7] + 12 * (degree // 7)
        held = length * beat * 0.95 + 0.7 * bar.ring
        velocity = 0.8 if onset % 2 == 0 else 0.65
        notes.append(Note(plan.style.lead, (bar.index * 4 + onset) * beat, held, midi, velocity))
        onset += length
    return notes


def _place(degree: int, chord: set[int], onset: float, lift: int) -> int:
    """Keeps the melody in range, and on a chord tone at the bar's strong beats (1 and 3)."""
    low, high = 2 + lift, 9 + lift
    while degree < low:
        degree += 7
    while degree > high:
        degree -= 7
    if onset % 2 == 0:
        tones = (d for d in range(low - 2, high + 3) if d % 7 in chord)
        return min(tones, key=lambda d: abs(d - degree))
    return degree


def _drums(plan: Plan, bar: _Bar, rng: np.random.Generator) -> list[Hit]:
    sixteenth = 15.0 / plan.bpm
    start = bar.index * 16 * sixteenth
    level = 1.0 if bar.section == "chorus" else 0.75
    hits = [
        Hit(drum, start + step * sixteenth, level * float(rng.uniform(0.85, 1.0)))
        for drum, pattern in _DRUMS[plan.style.drums].items()
        for step, mark in enumerate(pattern)
        if mark == "x" and not (bar.before_chorus and step >= 12 and drum in {"snare", "clap"})
    ]
    if bar.before_chorus:  # a fill of rising sixteenths into the chorus
        fill = "tom" if plan.style.drums == "epic" else "snare"
        hits += [Hit(fill, start + s * sixteenth, 0.5 + 0.12 * (s - 12)) for s in range(12, 16)]
    if bar.section == "chorus" and bar.position == 0:
        hits.append(Hit("crash", start, 0.9))
    return hits
