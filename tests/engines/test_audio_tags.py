"""Parsing Fish Audio S1 emotion tags into a script of speech, pauses and effects."""

from __future__ import annotations

import pytest

from hyperlocal.engines.builtin.audio.tags import (
    BREAKS,
    EFFECTS,
    NEUTRAL,
    STYLES,
    Effect,
    Pause,
    Speech,
    parse,
)
from hyperlocal.engines.builtin.audio.tts import script
from hyperlocal.errors import InputError

# The S1 list as the spec (section 7) gives it.
BASIC = [
    *("happy", "sad", "angry", "excited", "calm", "nervous", "confident", "surprised"),
    *("satisfied", "delighted", "scared", "worried", "upset", "frustrated", "depressed"),
    *("empathetic", "embarrassed", "disgusted", "moved", "proud", "relaxed", "grateful"),
    *("curious", "sarcastic"),
]
ADVANCED = [
    *("disdainful", "unhappy", "anxious", "hysterical", "indifferent", "uncertain", "doubtful"),
    *("confused", "disappointed", "regretful", "guilty", "ashamed", "jealous", "envious"),
    *("hopeful", "optimistic", "pessimistic", "nostalgic", "lonely", "bored", "contemptuous"),
    *("sympathetic", "compassionate", "determined", "resigned"),
]
TONES = ["in a hurry tone", "shouting", "screaming", "whispering", "soft tone"]
SOUNDS = [
    *("laughing", "chuckling", "sobbing", "crying loudly", "sighing", "groaning", "panting"),
    *("gasping", "yawning", "snoring", "audience laughing", "background laughter"),
    "crowd laughing",
]


@pytest.mark.parametrize("tag", BASIC + ADVANCED + TONES)
def test_every_emotion_and_tone_tag_changes_the_voice(tag: str) -> None:
    [item] = parse(f"({tag}) Hello there.")
    assert item == Speech("Hello there.", STYLES[tag])
    assert STYLES[tag] != NEUTRAL


@pytest.mark.parametrize("tag", SOUNDS)
def test_every_effect_tag_becomes_an_effect_not_words(tag: str) -> None:
    assert tag in EFFECTS
    assert parse(f"Hi. ({tag}) Bye.") == [
        Speech("Hi.", NEUTRAL),
        Effect(tag),
        Speech("Bye.", NEUTRAL),
    ]


def test_tags_combine_and_last_until_the_next_tag_group() -> None:
    items = parse("(sad)(whispering) I lost it. It is gone. (happy) Found it!")
    sad_whisper = STYLES["sad"] + STYLES["whispering"]
    assert items == [
        Speech("I lost it. It is gone.", sad_whisper),
        Speech("Found it!", STYLES["happy"]),
    ]
    assert sad_whisper.whisper
    assert sad_whisper.rate == pytest.approx(STYLES["sad"].rate * STYLES["whispering"].rate)
    assert sad_whisper.gain_db == STYLES["sad"].gain_db + STYLES["whispering"].gain_db


def test_breaks_are_pauses_and_keep_the_current_style() -> None:
    items = parse("(angry) Stop. (break) Now. (long-break) Please.")
    angry = STYLES["angry"]
    assert items == [
        Speech("Stop.", angry),
        Pause(BREAKS["break"]),
        Speech("Now.", angry),
        Pause(BREAKS["long-break"]),
        Speech("Please.", angry),
    ]
    assert BREAKS == {"break": 0.5, "long-break": 1.5}


@pytest.mark.parametrize(
    ("spelling", "tag"),
    [("whisper", "whispering"), ("in a hurry", "in a hurry tone"), ("Soft", "soft tone")],
)
def test_common_variants_of_tone_tags_are_understood(spelling: str, tag: str) -> None:
    assert parse(f"({spelling}) Hi.") == [Speech("Hi.", STYLES[tag])]


def test_tag_spelling_is_forgiving() -> None:
    assert parse("( Sad ) a (LONG BREAK) b (in_a_hurry_tone) c") == [
        Speech("a", STYLES["sad"]),
        Pause(1.5),
        Speech("b", STYLES["sad"]),
        Speech("c", STYLES["in a hurry tone"]),
    ]


def test_unknown_tags_are_stripped_and_never_spoken() -> None:
    assert parse("(mysterious)(sad) Hello (unknown tag) world.") == [
        Speech("Hello world.", STYLES["sad"])
    ]


def test_parentheses_that_are_not_tags_are_spoken() -> None:
    assert parse("Turn to page (12) now.") == [Speech("Turn to page (12) now.", NEUTRAL)]


def test_a_script_of_nothing_but_tags_is_refused() -> None:
    with pytest.raises(InputError) as info:
        script("(sad)(whispering) (bogus)")
    assert info.value.field == "text"


def test_long_speech_is_cut_at_sentence_ends_for_progress() -> None:
    text = " ".join(f"This is sentence number {n} of a long text." for n in range(40))
    pieces = script(text)
    assert len(pieces) > 3
    assert all(isinstance(p, Speech) and len(p.text) <= 400 for p in pieces)
    assert " ".join(p.text for p in pieces if isinstance(p, Speech)) == text
