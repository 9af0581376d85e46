"""Pricing: every PriceRule kind, multipliers, and rounding up to whole credits."""

from __future__ import annotations

from typing import Any

import pytest

from hyperlocal.core.catalog import ModelEntry, load_catalog
from hyperlocal.core.pricing import price
from hyperlocal.core.validation import validate_inputs

CATALOG = load_catalog()


def cost(model_id: str, **raw: Any) -> int:
    """The price of a request, through validation as the server computes it."""
    entry = CATALOG.get(model_id)
    return price(entry, validate_inputs(entry, raw))


def rule_entry(**rule: Any) -> ModelEntry:
    return ModelEntry.model_validate(
        {"id": "m", "category": "video", "name": "m", "engine": "e", "price": rule}
    )


@pytest.mark.parametrize(
    ("model_id", "raw", "credits"),
    [
        ("audio-clone", {"text": "hi", "audio": "https://x/a.wav"}, 107),
        ("meshy6-text-to-3d", {"prompt": "a chair"}, 84),
        (
            "tripo3d-multiview-to-3d",
            dict.fromkeys(
                ("front_image_url", "back_image_url", "left_image_url"), "https://x/v.png"
            ),
            45,
        ),
        ("gemini-3-1-flash-t2i", {"prompt": "p"}, 4),
        ("nano-banana-edit", {"prompt": "p", "images": ["https://x/a.png"]}, 4),
        ("grok-imagine-video-edit", {"prompt": "p", "video": "https://x/v.mp4"}, 55),
    ],
)
def test_flat(model_id: str, raw: dict[str, Any], credits: int) -> None:
    assert cost(model_id, **raw) == credits


I2V = {"prompt": "p", "image": "https://x/a.png"}


def test_per_second_scales_linearly_and_defaults_to_the_default_duration() -> None:
    assert cost("sora-2-i2v", **I2V) == 69
    assert cost("sora-2-i2v", **I2V, duration=5) == 69
    assert cost("sora-2-i2v", **I2V, duration=10) == 138
    assert cost("sora-2-i2v", **I2V, duration=4) == 56  # 55.2, rounded up


def test_per_second_without_a_duration_charges_one_block() -> None:
    entry = rule_entry(kind="per_second", credits=69, per_seconds=5, field="duration")
    assert price(entry, {}) == 69


def test_per_resolution() -> None:
    edit = {"prompt": "p", "images": ["https://x/a.png"]}
    assert cost("nano-banana-pro-edit", **edit) == 11
    assert cost("nano-banana-pro-edit", **edit, resolution="2k") == 11
    assert cost("nano-banana-pro-edit", **edit, resolution="4K") == 22
    assert price(CATALOG.get("nano-banana-pro-edit"), {}) == 11


def test_multipliers_apply_after_the_base() -> None:
    assert cost("kling-3-0-pro-i2v", **I2V) == 57
    assert cost("kling-3-0-pro-i2v", **I2V, sound=True) == 86  # 85.5, rounded up
    assert cost("kling-3-0-pro-i2v", **I2V, generate_audio="true", duration=10) == 171
    assert cost("kling-2-6-i2v-pro", **I2V, sound=True) == 70


def test_veo_charges_72_for_its_default_eight_seconds_with_audio() -> None:
    assert cost("veo-3-1-i2v", **I2V) == 72
    assert cost("veo-3-1-i2v", **I2V, generate_audio=False) == 48
    assert cost("veo-3-1-i2v", **I2V, duration=4) == 36


def test_seedance_prices_reproduce_what_clients_saw() -> None:
    assert cost("seedance-2-0-i2v", **I2V, duration=10) == 281
    assert cost("seedance-2-0-i2v", **I2V, resolution="480p") == 58
    assert cost("seedance-2-0-fast-i2v", **I2V, duration=10) == 140
    assert cost("seedance-2-0-t2v", prompt="p") == 100
    assert cost("seedance-2-0-fast-t2v", prompt="p") == 53


def test_a_boolean_multiplier_does_not_fire_on_the_number_one() -> None:
    entry = rule_entry(
        kind="flat", credits=10, multipliers=[{"field": "sound", "equals": True, "factor": 2}]
    )
    assert price(entry, {"sound": 1}) == 10
    assert price(entry, {"sound": True}) == 20


def test_float_noise_never_costs_a_credit() -> None:
    # 100 * 1.1 is 110.00000000000001 in floating point.
    entry = rule_entry(
        kind="flat", credits=100, multipliers=[{"field": "x", "equals": "y", "factor": 1.1}]
    )
    assert price(entry, {"x": "y"}) == 110


@pytest.mark.parametrize(
    ("seconds", "credits"),
    [(None, 1), (0, 1), (2.5, 1), (60, 1), (60.5, 2), (600, 10)],
)
def test_per_minute_counts_started_minutes_with_a_one_minute_minimum(
    seconds: float | None, credits: int
) -> None:
    entry = CATALOG.get("audio-asr")
    assert price(entry, {"audio": "https://x/a.wav"}, media_seconds=seconds) == credits


@pytest.mark.parametrize(
    ("chars", "credits"),
    [(0, 2), (1, 2), (2000, 2), (2001, 3), (4000, 3), (4001, 4), (10_000, 6)],
)
def test_per_message_rises_with_the_conversation(chars: int, credits: int) -> None:
    assert price(CATALOG.get("smollm2-135m"), {}, conversation_chars=chars) == credits


def test_per_message_without_a_block_size_is_flat() -> None:
    assert price(rule_entry(kind="per_message", credits=2), {}, conversation_chars=10**6) == 2
