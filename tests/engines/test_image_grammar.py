"""The edit-prompt grammar: which phrases become which operations, in which order."""

from __future__ import annotations

import pytest

from hyperlocal.engines.builtin.image.grammar import parse


@pytest.mark.parametrize(
    ("prompt", "labels"),
    [
        # crop
        ("crop to the center square", "crop(1:1)"),
        ("Crop it to a square", "crop(1:1)"),
        ("square crop", "crop(1:1)"),
        ("crop to 16:9", "crop(16:9)"),
        ("crop 20%", "crop(80%)"),
        ("crop to 60%", "crop(60%)"),
        ("crop to the left half", "crop(left-half)"),
        ("keep the bottom half", "crop(bottom-half)"),
        ("zoom in 2x", "crop(zoom-2x)"),
        # size
        ("resize to 512x512", "resize(512x512)"),
        ("resize it to 800 x 600 px", "resize(800x600)"),
        ("scale to 50%", "scale(50%)"),
        ("shrink by 25%", "scale(75%)"),
        ("enlarge by 50%", "scale(150%)"),
        ("upscale 2x", "scale(200%)"),
        ("downscale 4x", "scale(25%)"),
        ("half size", "scale(50%)"),
        # turn and flip
        ("rotate 90", "rotate(90)"),
        ("rotate", "rotate(90)"),
        ("rotate 90 degrees counterclockwise", "rotate(-90)"),
        ("rotate left", "rotate(-90)"),
        ("rotate by 45°", "rotate(45)"),
        ("turn it upside down", "rotate(180)"),
        ("flip horizontally", "flip(horizontal)"),
        ("mirror the image", "flip(horizontal)"),
        ("flip it vertically", "flip(vertical)"),
        ("flip upside down", "flip(vertical)"),
        # colour
        ("make it black and white", "grayscale"),
        ("greyscale", "grayscale"),
        ("B&W please", "grayscale"),
        ("monochrome", "grayscale"),
        ("sepia tone", "sepia"),
        ("invert the colours", "invert"),
        ("make it warmer", "warmer"),
        ("cooler tones", "cooler"),
        ("tint blue", "tint(blue)"),
        ("make it pink", "tint(pink)"),
        ("a gold tint", "tint(gold)"),
        ("recolour it red", "recolour(red)"),
        ("colorize #ff8800", "recolour(#ff8800)"),
        # tone
        ("increase brightness", "brightness(+30%)"),
        ("increase the contrast by 20%", "contrast(+20%)"),
        ("reduce saturation", "saturation(-30%)"),
        ("contrast +15%", "contrast(+15%)"),
        ("brighter", "brightness(+30%)"),
        ("make it darker", "brightness(-30%)"),
        ("more vivid", "saturation(+30%)"),
        # detail
        ("blur", "blur"),
        ("blur 5", "blur(5)"),
        ("blur it by 3px", "blur(3)"),
        ("make it blurry", "blur"),
        ("sharpen", "sharpen(2)"),
        ("sharpen 3", "sharpen(3)"),
        # backdrop
        ("remove the background", "remove-background"),
        ("cut out the subject", "remove-background"),
        ("transparent background", "remove-background"),
        ("replace background with white", "background(white)"),
        ("replace the background with a blue one", "background(blue)"),
        ("put it on a black background", "background(black)"),
        ("blur the background", "blur-background"),
        ("blurred background 12", "blur-background(12)"),
    ],
)
def test_each_phrase_gives_its_operation(prompt: str, labels: str) -> None:
    plan = parse(prompt)
    assert (plan.labels, plan.ignored) == (labels, "")


def test_operations_keep_the_order_the_prompt_gives() -> None:
    plan = parse("Crop to the center square, make it black and white, then blur 3")
    assert plan.labels == "crop(1:1),grayscale,blur(3)"
    assert parse("blur 3 and then crop to the center square").labels == "blur(3),crop(1:1)"


def test_the_longer_phrase_wins_where_two_overlap() -> None:
    assert parse("blur the background").labels == "blur-background"
    assert parse("make it black and white").labels == "grayscale"


def test_negated_phrases_are_not_applied() -> None:
    assert parse("don't blur it, just sharpen").labels == "sharpen(2)"
    assert parse("don't make it darker, make it brighter").labels == "brightness(+30%)"
    assert parse("no blur").labels == ""


@pytest.mark.parametrize(
    ("prompt", "ignored"),
    [
        ("Make it look like autumn", "look like autumn"),
        ("add a hat", "add hat"),
        ("Add a crown to the cat and make the background blue", "add crown cat"),
    ],
)
def test_words_no_rule_uses_are_reported(prompt: str, ignored: str) -> None:
    assert parse(prompt).ignored == ignored


@pytest.mark.parametrize(
    "prompt",
    ["Make it look like autumn", "a cat in a hat", "make the sky blue", "", "crop"],
)
def test_prompts_without_a_classical_edit_give_no_operations(prompt: str) -> None:
    assert parse(prompt).operations == ()


def test_numbers_are_clamped_to_sane_ranges() -> None:
    assert parse("blur 100000").labels == "blur(100)"
    assert parse("resize to 99999x10").labels == "resize(4096x64)"
    assert parse("crop 99%").labels == "crop(5%)"
