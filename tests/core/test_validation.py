"""Input validation: aliases, defaults, coercion, and the exact wording of every error."""

from __future__ import annotations

from typing import Any

import pytest

from hyperlocal.core.catalog import InputType, ModelEntry, load_catalog
from hyperlocal.core.validation import media_fields, validate_inputs
from hyperlocal.errors import InputError

URL = "https://example.com/a.png"
DATA = "data:image/png;base64,iVBORw0KGgo="

ENTRY = ModelEntry.model_validate(
    {
        "id": "test-model",
        "category": "video",
        "name": "Test",
        "engine": "test",
        "price": {"kind": "flat", "credits": 1},
        "inputs": {
            "prompt": {"type": "string", "required": True, "max_length": 10},
            "duration": {"type": "integer", "enum": [5, 10], "default": 5},
            "steps": {"type": "integer", "minimum": 1},
            "seed": {"type": "integer", "maximum": 99},
            "cfg_scale": {"type": "number", "minimum": 0, "maximum": 1, "default": 0.5},
            "sound": {"type": "boolean", "default": False, "aliases": ["generate_audio"]},
            "resolution": {"type": "string", "enum": ["720p", "1080p"]},
            "image": {"type": "image", "aliases": ["image_url", "start_image"]},
            "end_image": {"type": "image", "aliases": ["last_image", "tail_image"]},
            "images": {"type": "images", "min_items": 2, "max_items": 3},
            "audio": {"type": "audio"},
            "video": {"type": "video"},
        },
    }
)


def check(**raw: Any) -> dict[str, Any]:
    return validate_inputs(ENTRY, {"prompt": "hi"} | raw)


def error(**raw: Any) -> str:
    with pytest.raises(InputError) as caught:
        check(**raw)
    assert caught.value.code == "E1004"
    return caught.value.message


def test_defaults_fill_in_and_absent_optionals_are_left_out() -> None:
    assert check() == {"prompt": "hi", "duration": 5, "cfg_scale": 0.5, "sound": False}


def test_required_field_missing_null_or_empty() -> None:
    for raw in ({}, {"prompt": None}, {"prompt": ""}):
        with pytest.raises(InputError) as caught:
            validate_inputs(ENTRY, raw)
        assert caught.value.message == "prompt: is required"
        assert (caught.value.field, caught.value.problem) == ("prompt", "is required")


def test_unknown_keys_are_ignored() -> None:
    assert "mode" not in check(mode="fast", webhook_url="x", nonsense=[1, 2])


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ({"prompt": 5}, "prompt: must be a string"),
        ({"prompt": "x" * 11}, "prompt: must be at most 10 characters"),
        ({"duration": 7}, "duration: must be one of: 5, 10"),
        ({"duration": "7"}, "duration: must be one of: 5, 10"),
        ({"duration": True}, "duration: must be an integer"),
        ({"duration": 5.5}, "duration: must be an integer"),
        ({"duration": "five"}, "duration: must be an integer"),
        ({"duration": [5]}, "duration: must be an integer"),
        ({"steps": 0}, "steps: must be at least 1"),
        ({"seed": 100}, "seed: must be at most 99"),
        ({"cfg_scale": 1.5}, "cfg_scale: must be between 0 and 1"),
        ({"cfg_scale": "high"}, "cfg_scale: must be a number"),
        ({"cfg_scale": "nan"}, "cfg_scale: must be a number"),
        ({"cfg_scale": False}, "cfg_scale: must be a number"),
        ({"sound": "yes"}, "sound: must be true or false"),
        ({"sound": 1}, "sound: must be true or false"),
        ({"resolution": "4k"}, "resolution: must be one of: 720p, 1080p"),
        ({"image": "ftp://example.com/a.png"}, "image: must be an http(s) URL or a data: URI"),
        ({"image": "/etc/passwd"}, "image: must be an http(s) URL or a data: URI"),
        ({"image": {"url": URL}}, "image: must be an http(s) URL or a data: URI"),
        ({"audio": 3}, "audio: must be an http(s) URL or a data: URI"),
        ({"video": ["https://x/v.mp4"]}, "video: must be an http(s) URL or a data: URI"),
        ({"images": [URL, "nope"]}, "images[1]: must be an http(s) URL or a data: URI"),
        ({"images": {"a": URL}}, "images: must be a list of http(s) URLs or data: URIs"),
        ({"images": [URL]}, "images: must have at least 2 items"),
        ({"images": [URL] * 4}, "images: must have at most 3 items"),
    ],
)
def test_error_messages(raw: dict[str, Any], expected: str) -> None:
    assert error(**raw) == expected


def test_an_error_names_the_alias_the_client_sent() -> None:
    assert error(last_image="nope") == "last_image: must be an http(s) URL or a data: URI"
    assert error(generate_audio="maybe") == "generate_audio: must be true or false"


@pytest.mark.parametrize(
    ("field", "given", "expected"),
    [
        ("duration", 10, 10),
        ("duration", 10.0, 10),
        ("duration", "10", 10),
        ("duration", " 10.0 ", 10),
        ("steps", 10**30, 10**30),
        ("cfg_scale", 1, 1),
        ("cfg_scale", "0.25", 0.25),
        ("sound", True, True),
        ("sound", "true", True),
        ("sound", "FALSE", False),
        ("resolution", "1080P", "1080p"),
        ("image", DATA, DATA),
        ("image", "http://example.com/a.png", "http://example.com/a.png"),
    ],
)
def test_coercions(field: str, given: object, expected: object) -> None:
    value = check(**{field: given})[field]
    assert value == expected
    assert type(value) is type(expected)


def test_a_single_string_becomes_a_list() -> None:
    entry = load_catalog().get("nano-banana-edit")
    assert validate_inputs(entry, {"prompt": "p", "images": URL})["images"] == [URL]
    assert validate_inputs(entry, {"prompt": "p", "image": URL})["images"] == [URL]


def test_canonical_name_wins_then_aliases_in_order() -> None:
    assert check(image="https://a/1.png", image_url="https://a/2.png")["image"] == "https://a/1.png"
    both = check(image_url="https://a/2.png", start_image="https://a/3.png")
    assert both["image"] == "https://a/2.png"
    assert check(start_image="https://a/3.png")["image"] == "https://a/3.png"


def test_empty_alias_fields_do_not_hide_a_later_one() -> None:
    # motionmax sends end_image, last_image, last_frame_image and tail_image all at once.
    got = check(end_image="", last_image=None, tail_image=URL)
    assert got["end_image"] == URL


def test_real_client_body_for_kling() -> None:
    entry = load_catalog().get("kling-3-0-std-i2v")
    body = {
        "prompt": "a cat",
        "image": URL,
        "end_image": URL,
        "last_image": URL,
        "last_frame_image": URL,
        "tail_image": URL,
        "duration": "10",
        "generate_audio": True,
        "aspect_ratio": "16:9",
    }
    assert validate_inputs(entry, body) == {
        "prompt": "a cat",
        "image": URL,
        "end_image": URL,
        "duration": 10,
        "cfg_scale": 0.5,
        "sound": True,
    }


def test_legacy_flat_seedance_body() -> None:
    entry = load_catalog().get("seedance-1-5-pro")
    got = validate_inputs(entry, {"image_url": URL, "prompt": "go"})
    assert got == {"prompt": "go", "image": URL, "duration": 5}


def test_media_fields() -> None:
    assert media_fields(ENTRY) == {
        "image": InputType.IMAGE,
        "end_image": InputType.IMAGE,
        "images": InputType.IMAGES,
        "audio": InputType.AUDIO,
        "video": InputType.VIDEO,
    }
    multiview = load_catalog().get("tripo3d-multiview-to-3d")
    assert set(media_fields(multiview)) == {
        "front_image_url",
        "back_image_url",
        "left_image_url",
        "right_image_url",
    }
    assert media_fields(load_catalog().get("meshy6-text-to-3d")) == {}


def test_messages_for_one_item_and_boolean_enums() -> None:
    entry = ModelEntry.model_validate(
        {
            "id": "m",
            "category": "image_edit",
            "name": "m",
            "engine": "e",
            "price": {"kind": "flat", "credits": 1},
            "inputs": {
                "images": {"type": "images", "max_items": 1},
                "hq": {"type": "boolean", "enum": [True]},
            },
        }
    )
    with pytest.raises(InputError, match=r"^images: must have at most 1 item$"):
        validate_inputs(entry, {"images": [URL, URL]})
    with pytest.raises(InputError, match=r"^hq: must be one of: true$"):
        validate_inputs(entry, {"hq": "false"})
