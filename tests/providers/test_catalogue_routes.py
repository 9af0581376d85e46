"""The shipped catalogue's provider routes (docs/providers.md §6): each names an installed
provider, maps only inputs its entry declares, and carries every input of a valid request to
its provider field with the value converted as the route says."""

from __future__ import annotations

import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from hyperlocal.core.catalog import InputSpec, InputType, ModelEntry, load_catalog
from hyperlocal.core.validation import validate_inputs
from hyperlocal.engines.base import GenerationRequest, InputValue, MediaInput, MediaKind
from hyperlocal.engines.providers.mapping import map_inputs
from hyperlocal.engines.providers.routes import FieldMap, RouteSpec

PYPROJECT = Path(__file__).parents[2] / "pyproject.toml"
CATALOG = load_catalog()
ROUTES = [(entry, route) for entry in CATALOG for route in entry.routes]
ROUTE_IDS = [f"{entry.id}->{route.to}" for entry, route in ROUTES]

MEDIA = {
    InputType.IMAGE: (MediaKind.IMAGE, "image/png", "png"),
    InputType.IMAGES: (MediaKind.IMAGE, "image/png", "png"),
    InputType.AUDIO: (MediaKind.AUDIO, "audio/mpeg", "mp3"),
    InputType.VIDEO: (MediaKind.VIDEO, "video/mp4", "mp4"),
}


def registered_providers() -> set[str]:
    project = tomllib.loads(PYPROJECT.read_text("utf-8"))["project"]
    return set(project["entry-points"]["hyperlocal.providers"])


# --- a valid request for an entry ----------------------------------------------------------


def sample(name: str, spec: InputSpec) -> object:
    """A value of the input's type: an enum's first value, a number inside its range, a media
    URL (two of them for a list, within its bounds)."""
    if spec.enum:
        return spec.enum[0]
    samplers: dict[InputType, Callable[[], object]] = {
        InputType.STRING: lambda: "a red fox in the snow"[: spec.max_length or None],
        InputType.INTEGER: lambda: int(spec.minimum) if spec.minimum is not None else 3,
        InputType.NUMBER: lambda: _middle(spec),
        InputType.BOOLEAN: lambda: True,
        InputType.IMAGES: lambda: [
            f"https://media.example/{name}-{n}.png" for n in range(min(2, spec.max_items or 2))
        ],
    }
    default = f"https://media.example/{name}.{MEDIA.get(spec.type, (None, None, 'bin'))[2]}"
    return samplers.get(spec.type, lambda: default)()


def _middle(spec: InputSpec) -> float:
    if spec.minimum is not None and spec.maximum is not None:
        return (spec.minimum + spec.maximum) / 2
    return 1.5


def request_for(entry: ModelEntry, **overrides: object) -> GenerationRequest:
    raw = {name: sample(name, spec) for name, spec in entry.inputs.items()} | overrides
    params = validate_inputs(entry, raw)
    media = {
        name: [_medium(name, entry.inputs[name], url) for url in _urls(params[name])]
        for name in params
        if entry.inputs[name].type in MEDIA
    }
    return GenerationRequest(
        job_id="job-1", model=entry.id, category=entry.category, params=params, media=media
    )


def _urls(value: InputValue) -> list[str]:
    return [str(url) for url in value] if isinstance(value, list) else [str(value)]


def _medium(name: str, spec: InputSpec, url: str) -> MediaInput:
    kind, content_type, _ = MEDIA[spec.type]
    return MediaInput(name, kind, content_type, f"bytes of {url}".encode(), source=url)


# --- what each input should become, worked out from the route alone -----------------------


def _spelled(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


CONVERSIONS: dict[str | None, Callable[[Any], Any]] = {
    None: lambda v: v,
    "string": _spelled,
    "seconds": lambda v: f"{_spelled(v)}s",
    "integer": lambda v: int(float(v)),
    "number": float,
    "upper": str.upper,
    "lower": str.lower,
    "list": lambda v: v if isinstance(v, list) else [v],
    "first": lambda v: v[0] if isinstance(v, list) else v,
}


def ours(request: GenerationRequest, name: str) -> Any:
    """The input as a route receives it: media as MediaInput (a list for a list input)."""
    if name in request.media:
        media = list(request.media[name])
        return media if isinstance(request.params[name], list) else media[0]
    return request.params.get(name)


def expected(value: Any, field: FieldMap) -> Any:
    scalar = not isinstance(value, MediaInput | list)
    if scalar and field.values is not None:
        value = field.values.get(_spelled(value), value)
    return CONVERSIONS[field.as_](value)


def field_maps(route: RouteSpec) -> dict[str, FieldMap]:
    return {k: FieldMap(to=v) if isinstance(v, str) else v for k, v in route.map.items()}


# --- the routes' shape ---------------------------------------------------------------------


def test_the_five_providers_are_registered() -> None:
    assert registered_providers() == {"fal", "replicate", "openai", "gemini", "bfl"}


@pytest.mark.parametrize(("entry", "route"), ROUTES, ids=ROUTE_IDS)
def test_a_route_names_a_registered_provider_and_declared_inputs(
    entry: ModelEntry, route: RouteSpec
) -> None:
    assert route.provider in registered_providers()
    assert route.target.strip() == route.target != ""
    assert set(route.map) <= set(entry.inputs), "the route maps inputs the entry lacks"
    assert route.note, "every shipped route says where it comes from"


@pytest.mark.parametrize(("entry", "route"), ROUTES, ids=ROUTE_IDS)
def test_a_values_table_translates_values_the_input_can_take(
    entry: ModelEntry, route: RouteSpec
) -> None:
    for name, field in field_maps(route).items():
        if field.values is None:
            continue
        allowed = {_spelled(v) for v in entry.inputs[name].enum or ()}
        assert set(field.values) <= allowed, f"{name}: {set(field.values) - allowed}"


def test_at_least_41_ids_have_a_fal_route() -> None:
    fal = {entry.id for entry, route in ROUTES if route.provider == "fal"}
    assert len(fal) >= 41


def test_no_sora_2_id_has_a_route() -> None:
    sora = [entry for entry in CATALOG if entry.id.startswith("sora-2-")]
    assert {entry.id for entry in sora} == {"sora-2-i2v", "sora-2-t2v"}
    assert all(entry.routes == () for entry in sora)


def test_the_makers_own_api_comes_first_where_we_have_its_adapter() -> None:
    makers = {
        "nano-banana-edit": "gemini",
        "veo-3-1-i2v": "gemini",
        "lyria-3-pro": "gemini",
        "gpt-image-2": "openai",
        "audio-asr": "openai",
    }
    first = {entry.id: entry.routes[0].provider for entry in CATALOG if entry.routes}
    assert {model: first[model] for model in makers} == makers


# --- the mapping, field by field -----------------------------------------------------------


@pytest.mark.parametrize(("entry", "route"), ROUTES, ids=ROUTE_IDS)
def test_every_input_reaches_its_provider_field(entry: ModelEntry, route: RouteSpec) -> None:
    request = request_for(entry)
    payload = map_inputs(request, route)

    sent = {field.to for field in field_maps(route).values()}
    for key, value in route.set.items():
        if key not in sent:
            assert payload[key] == value
    for name, field in field_maps(route).items():
        value = ours(request, name)
        if value is None:
            assert field.to not in payload or field.to in route.set
            continue
        assert payload[field.to] == expected(value, field), f"{name} -> {field.to}"
    assert set(payload) == sent_keys(request, route)


def sent_keys(request: GenerationRequest, route: RouteSpec) -> set[str]:
    mapped = {f.to for name, f in field_maps(route).items() if ours(request, name) is not None}
    return mapped | set(route.set)


@pytest.mark.parametrize(("entry", "route"), ROUTES, ids=ROUTE_IDS)
def test_every_enum_value_maps_as_the_route_says(entry: ModelEntry, route: RouteSpec) -> None:
    for name, field in field_maps(route).items():
        for value in entry.inputs[name].enum or ():
            payload = map_inputs(request_for(entry, **{name: value}), route)
            assert payload[field.to] == expected(value, field), f"{name}={value}"


# Conversions written out by hand, for the provider quirks providers.md §6 names.
SPOT_CHECKS: list[tuple[str, str, dict[str, object], str, object]] = [
    ("gpt-4o-image", "openai:gpt-image-1", {"size": "1792x1024"}, "size", "1536x1024"),
    (
        "gpt-4o-image",
        "fal:fal-ai/gpt-image-1/text-to-image",
        {"size": "1024x1792"},
        "image_size",
        "1024x1536",
    ),
    ("flux-1-dev", "fal:fal-ai/flux/dev", {"aspect_ratio": "16:9"}, "image_size", "landscape_16_9"),
    (
        "flux-1-schnell",
        "fal:fal-ai/flux/schnell",
        {"aspect_ratio": "1:1"},
        "image_size",
        "square_hd",
    ),
    (
        "flux-1-dev",
        "replicate:black-forest-labs/flux-dev",
        {"output_format": "jpeg"},
        "output_format",
        "jpg",
    ),
    (
        "flux-kontext-pro-edit",
        "fal:fal-ai/flux-pro/kontext",
        {"aspect_ratio": "4:5"},
        "aspect_ratio",
        "3:4",
    ),
    (
        "flux-kontext-pro-edit",
        "bfl:flux-kontext-pro",
        {"aspect_ratio": "4:5"},
        "aspect_ratio",
        "4:5",
    ),
    (
        "kling-2-6-i2v-pro",
        "fal:fal-ai/kling-video/v2.6/pro/image-to-video",
        {"duration": 10},
        "duration",
        "10",
    ),
    ("kling-3-0-pro-i2v", "replicate:kwaivgi/kling-v3-video", {"duration": 10}, "duration", 10),
    ("kling-3-0-std-t2v", "replicate:kwaivgi/kling-v3-video", {}, "mode", "standard"),
    (
        "kling-3-0-pro-i2v",
        "fal:fal-ai/kling-video/v3/pro/image-to-video",
        {"sound": False},
        "generate_audio",
        False,
    ),
    ("veo-3-1-i2v", "fal:fal-ai/veo3.1/fast/image-to-video", {"duration": 8}, "duration", "8s"),
    ("veo-3-1-i2v", "gemini:veo-3.1-fast-generate-preview", {"duration": 6}, "duration_seconds", 6),
    ("veo-3-1-i2v", "replicate:google/veo-3.1-fast", {"duration": 6}, "duration", 6),
    (
        "nano-banana-pro-edit",
        "fal:fal-ai/nano-banana-pro/edit",
        {"resolution": "2k"},
        "resolution",
        "2K",
    ),
    (
        "nano-banana-pro-edit",
        "gemini:gemini-3-pro-image-preview",
        {"resolution": "4k"},
        "imageSize",
        "4K",
    ),
    ("nano-banana-pro-t2i", "replicate:google/nano-banana-pro", {}, "resolution", "1K"),
    (
        "hailuo-02-t2v",
        "fal:fal-ai/minimax/hailuo-02/standard/text-to-video",
        {"duration": 10},
        "duration",
        "10",
    ),
    (
        "seedance-2-0-i2v",
        "fal:bytedance/seedance-2.0/image-to-video",
        {"duration": 7},
        "duration",
        "7",
    ),
    ("pixverse-v6-transitions", "fal:fal-ai/pixverse/v6/transition", {}, "duration", 5),
    ("hunyuan3d-v2-base", "fal:fal-ai/hunyuan3d/v2", {}, "textured_mesh", True),
    ("audio-tts", "fal:fal-ai/minimax/speech-02-hd", {}, "output_format", "url"),
]


def route_of(model: str, to: str) -> tuple[ModelEntry, RouteSpec]:
    entry = CATALOG.get(model)
    (route,) = [route for route in entry.routes if route.to == to]
    return entry, route


@pytest.mark.parametrize(("model", "to", "given", "field", "value"), SPOT_CHECKS)
def test_a_provider_quirk_is_mapped(
    model: str, to: str, given: dict[str, object], field: str, value: object
) -> None:
    entry, route = route_of(model, to)
    payload = map_inputs(request_for(entry, **given), route)

    assert payload[field] == value
    assert type(payload[field]) is type(value)


@pytest.mark.parametrize(
    ("model", "to", "field", "as_list"),
    [
        ("nano-banana-edit", "fal:fal-ai/nano-banana/edit", "image_urls", True),
        ("nano-banana-edit", "gemini:gemini-2.5-flash-image", "images", True),
        ("flux-kontext-pro-edit", "fal:fal-ai/flux-pro/kontext", "image_url", False),
        ("flux-kontext-max-edit", "bfl:flux-kontext-max", "input_image", True),
        ("qwen-image-edit", "fal:fal-ai/qwen-image-edit-2511", "image_urls", True),
    ],
)
def test_images_reach_the_provider_as_media_not_urls(
    model: str, to: str, field: str, as_list: bool
) -> None:
    entry, route = route_of(model, to)
    request = request_for(entry)
    sent = map_inputs(request, route)[field]

    images = list(request.media["images"])
    assert len(images) == 2
    assert sent == (images if as_list else images[0])
    assert all(isinstance(m, MediaInput) for m in (sent if isinstance(sent, list) else [sent]))


def test_a_left_out_optional_input_is_not_sent() -> None:
    entry, route = route_of(
        "kling-3-0-std-i2v", "fal:fal-ai/kling-video/v3/standard/image-to-video"
    )
    request = request_for(entry)
    without_end = GenerationRequest(
        job_id="job-1",
        model=entry.id,
        category=entry.category,
        params={k: v for k, v in request.params.items() if k != "end_image"},
        media={k: v for k, v in request.media.items() if k != "end_image"},
    )

    assert "end_image_url" in map_inputs(request, route)
    assert "end_image_url" not in map_inputs(without_end, route)
