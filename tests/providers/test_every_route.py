"""Issue 17: every provider route of the shipped catalogue, exercised through the real server.

For each route, its entry is restated in an operator catalogue with that one route, so that the
route under test serves the job. A valid request for the entry (media as ``data:`` URIs of small
real files, each one different) goes through ``create_app``, the router and the provider's
adapter to the provider's loopback fake, which must receive exactly one job whose fields are
what ``map_inputs`` makes of that request for that route, field by field, with media the way
the provider takes them (a data URI, bare base64, a multipart file, an inline part; never a URL
of ours). The job must complete with its output stored here, and its attempts must show the
route, once, ``ok``, with the id the fake gave it.
"""

from __future__ import annotations

import base64
import binascii
import itertools
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from contextlib import ExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI

from hyperlocal.app import create_app
from hyperlocal.core import keys
from hyperlocal.core.catalog import InputSpec, InputType, ModelEntry, load_catalog
from hyperlocal.core.keys import IssuedKey, KeySpec
from hyperlocal.core.validation import validate_inputs
from hyperlocal.engines.base import Category, GenerationRequest, MediaInput, MediaKind
from hyperlocal.engines.providers.base import Payload
from hyperlocal.engines.providers.mapping import map_inputs
from hyperlocal.engines.providers.routes import RouteSpec
from hyperlocal.settings import Settings
from tests.conftest import SettingsFactory, auth
from tests.providers.fakes import bfl, fal, gemini, openai, replicate
from tests.providers.servers import PROVIDERS, Answer, Fake, Fakes, write_catalogue
from tests.providers.test_catalogue_routes import sample
from tests.support import eventually, tiny_png

SHIPPED = load_catalog()
ROUTES = [
    (entry, index)
    for entry in SHIPPED
    for index, route in enumerate(entry.routes)
    if not route.is_engine
]
CASES = [
    pytest.param(entry, index, id=f"{entry.id}#{index}:{entry.routes[index].to}")
    for entry, index in ROUTES
]
ENDPOINTS = {
    Category.IMAGE: "/v1/images/generate",
    Category.IMAGE_EDIT: "/v1/images/edit",
    Category.VIDEO: "/v1/videos/generate",
    Category.AUDIO: "/v1/audio/generate",
    Category.THREE_D: "/v1/3d/generate",
}
# What a stored output of each category is served as.
OUTPUT_TYPES = {
    Category.IMAGE: "image/",
    Category.IMAGE_EDIT: "image/",
    Category.VIDEO: "video/",
    Category.AUDIO: "audio/",
    Category.THREE_D: "model/gltf-binary",
}
# Values picked over the catalogue route tests' own: a real language code (the schema says
# "a string"), and JPEG rather than the first format, so that a route's value table (Replicate
# spells it "jpg") and the Gemini adapter's transcoding are crossed too.
PREFERRED: dict[str, object] = {"language": "en", "output_format": "jpeg"}
# Where the output comes in the format asked for: OpenAI makes it so, Gemini's adapter
# transcodes (providers.md §4.1). The other fakes answer what they have.
FORMAT_KEPT = frozenset({"openai", "gemini"})
DONE_S = 60.0  # bounds a failure only


@pytest.fixture(scope="module")
def fakes() -> Iterator[Fakes]:
    with ExitStack() as stack:
        yield Fakes(stack)


def test_the_cases_reach_every_provider() -> None:
    assert {entry.routes[index].provider for entry, index in ROUTES} == set(PROVIDERS)


@pytest.mark.parametrize(("entry", "index"), CASES)
async def test_a_route_serves_its_entry(
    entry: ModelEntry,
    index: int,
    fakes: Fakes,
    make_settings: SettingsFactory,
    tmp_path: Path,
) -> None:
    route = entry.routes[index]
    fake = fakes[route.provider]
    _script(fake, entry.category)
    sent = Inputs.for_entry(entry)
    settings = make_settings(
        catalog=write_catalogue(tmp_path / "catalog.toml", [_restated(entry, route)]),
        provider_webhooks="off",
        provider_poll_interval=0.01,
        **fake.settings(),
    )
    requests_before, answers_before = len(fake.state.requests), len(fake.answers)

    run = await _run(settings, entry, sent)

    assert run.job["status"] == "completed", f"{run.job}; attempts: {run.attempts}"
    _check_output(settings, entry, run)
    _check_format(route, sent, run)
    submit, answer = _the_one_submit(fake, requests_before, answers_before)
    CHECKS[route.provider](submit, route, sent.payload(entry, route))
    assert len(run.attempts) == 1, run.attempts
    assert run.attempts == [_attempt_of(route, run.attempts[0], _request_id(fake, answer))]


# --- the request ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Inputs:
    raw: dict[str, Any]  # as sent in the body
    media: dict[str, list[MediaInput]]  # each medium input, as the server will read it

    @classmethod
    def for_entry(cls, entry: ModelEntry) -> Inputs:
        """Every input of the entry: media as data URIs of distinct small files, the other
        values as the catalogue's own route tests pick them."""
        raw: dict[str, Any] = {}
        media: dict[str, list[MediaInput]] = {}
        shade = itertools.count(1)
        for name, spec in entry.inputs.items():
            if spec.type not in _MEDIA_KINDS:
                raw[name] = _value(name, spec)
                continue
            count = min(2, spec.max_items or 2) if spec.type is InputType.IMAGES else 1
            media[name] = [_medium(name, spec.type, next(shade)) for _ in range(count)]
            uris = [_data_uri(m) for m in media[name]]
            raw[name] = uris if spec.type is InputType.IMAGES else uris[0]
        return cls(raw, media)

    def payload(self, entry: ModelEntry, route: RouteSpec) -> Payload:
        """What the route makes of this request: the provider's fields."""
        request = GenerationRequest(
            job_id="expected",
            model=entry.id,
            category=entry.category,
            params=validate_inputs(entry, self.raw),
            media=self.media,
        )
        return map_inputs(request, route)

    def body(self, entry: ModelEntry) -> dict[str, Any]:
        if entry.category in (Category.IMAGE, Category.IMAGE_EDIT):
            return {"model": entry.id, **self.raw}
        return {"model": entry.id, "input": self.raw}


_MEDIA_KINDS = {
    InputType.IMAGE: MediaKind.IMAGE,
    InputType.IMAGES: MediaKind.IMAGE,
    InputType.AUDIO: MediaKind.AUDIO,
    InputType.VIDEO: MediaKind.VIDEO,
}


def _value(name: str, spec: InputSpec) -> object:
    preferred = PREFERRED.get(name)
    if preferred is None or (spec.enum and preferred not in spec.enum):
        return sample(name, spec)
    return preferred


def _medium(name: str, kind: InputType, shade: int) -> MediaInput:
    """A small real file; images differ by colour, so that two image fields cannot swap
    unseen."""
    if kind is InputType.AUDIO:
        data, content_type = fal.file_bytes("audio.wav"), "audio/wav"
    elif kind is InputType.VIDEO:
        data, content_type = fal.file_bytes("video.mp4"), "video/mp4"
    else:
        colour = ((53 * shade) % 256, (97 * shade) % 256, (151 * shade) % 256)
        data, content_type = tiny_png(colour, (16, 16)), "image/png"
    return MediaInput(name, _MEDIA_KINDS[kind], content_type, data, "data:")


def _data_uri(medium: MediaInput) -> str:
    return f"data:{medium.content_type};base64,{base64.b64encode(medium.data).decode()}"


def _restated(entry: ModelEntry, route: RouteSpec) -> ModelEntry:
    return entry.model_copy(update={"routes": (route,)})


def _script(fake: Fake, category: Category) -> None:
    """Replicate's fake answers what its script says: the kind of file the category makes."""
    if isinstance(fake.state, replicate.ReplicateState):
        outputs: dict[Category, replicate.Output] = {
            Category.VIDEO: "video",
            Category.AUDIO: "audio",
        }
        fake.state.script = replicate.Script(output=outputs.get(category, "image"))


# --- through the server -----------------------------------------------------------------------


@dataclass(frozen=True)
class Run:
    job: dict[str, Any]  # GET /v1/jobs/{id} once it ended
    attempts: list[dict[str, Any]]  # GET /admin/jobs/{id}/attempts
    output: httpx.Response | None  # GET of its output URL, when it has one
    image_urls: list[str]  # a synchronous image call's data[].url


async def _run(settings: Settings, entry: ModelEntry, sent: Inputs) -> Run:
    async with _served(settings) as (client, user, admin):
        job_id, image_urls = await _submit(client, user, entry, sent)
        job = await _ended(client, user, job_id)
        attempts = await client.get(f"/admin/jobs/{job_id}/attempts", headers=auth(admin))
        assert attempts.status_code == 200, attempts.text
        url = job.get("outputUrl")
        output = await client.get(url) if isinstance(url, str) else None
        return Run(job, attempts.json()["data"], output, image_urls)


@asynccontextmanager
async def _served(
    settings: Settings,
) -> AsyncIterator[tuple[httpx.AsyncClient, IssuedKey, IssuedKey]]:
    app = create_app(settings)
    async with LifespanManager(app, startup_timeout=60, shutdown_timeout=60):
        user = await _key(app, "user", admin=False)
        admin = await _key(app, "admin", admin=True)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=settings.public_url) as client:
            yield client, user, admin


async def _key(app: FastAPI, name: str, *, admin: bool) -> IssuedKey:
    return await keys.create_key(app.state.services.db, KeySpec(name, 10**9, 10**6, 15, admin))


async def _submit(
    client: httpx.AsyncClient, key: IssuedKey, entry: ModelEntry, sent: Inputs
) -> tuple[str, list[str]]:
    """The job's id. Images are called synchronously, as their API is; the other categories
    are asked to answer at once with the job."""
    endpoint = ENDPOINTS[entry.category]
    if entry.category in (Category.IMAGE, Category.IMAGE_EDIT):
        response = await client.post(endpoint, json=sent.body(entry), headers=auth(key))
        assert response.status_code == 200, response.text
        listed = await client.get("/v1/jobs", headers=auth(key))
        (job,) = listed.json()["data"]  # the key's one job
        return str(job["jobId"]), [item["url"] for item in response.json()["data"]]
    headers = {**auth(key), "Prefer": "respond-async"}
    response = await client.post(endpoint, json=sent.body(entry), headers=headers)
    assert response.status_code == 202, response.text
    return str(response.json()["jobId"]), []


async def _ended(client: httpx.AsyncClient, key: IssuedKey, job_id: str) -> dict[str, Any]:
    seen: dict[str, Any] = {}

    async def ended() -> bool:
        response = await client.get(f"/v1/jobs/{job_id}", headers=auth(key))
        assert response.status_code == 200, response.text
        seen.update(response.json())
        return bool(seen["status"] != "processing")

    await eventually(ended, DONE_S, f"job {job_id} to end")
    return seen


def _check_output(settings: Settings, entry: ModelEntry, run: Run) -> None:
    if "text" in run.job:  # speech recognition: the transcript inline (and maybe stored)
        assert run.job["text"].strip() and run.job["segments"], run.job
        if run.output is not None:
            assert run.output.status_code == 200, run.job
            assert run.output.headers["content-type"].startswith("application/json")
        return
    url = run.job["outputUrl"]
    assert url.startswith(settings.public_url + "/files/"), url
    assert all(u.startswith(settings.public_url + "/files/") for u in run.image_urls)
    assert run.output is not None
    assert run.output.status_code == 200, url
    assert run.output.content, url
    assert run.output.headers["content-type"].startswith(OUTPUT_TYPES[entry.category]), url


def _check_format(route: RouteSpec, sent: Inputs, run: Run) -> None:
    asked = sent.raw.get("output_format")
    if route.provider in FORMAT_KEPT and asked is not None and run.output is not None:
        assert run.output.headers["content-type"] == f"image/{asked}"


# --- what the fake received -------------------------------------------------------------------


@dataclass(frozen=True)
class Media:
    """One medium as the provider got it: comparable with what was sent."""

    content_type: str | None  # None where the provider's wire names none (BFL's base64)
    data: bytes


def _the_one_submit(fake: Fake, requests_before: int, answers_before: int) -> tuple[Any, Answer]:
    """The job the fake was given during the case (one, and only one) and its answer."""
    submits = [r for r in fake.state.requests[requests_before:] if r.method == "POST"]
    answers = [a for a in fake.answers[answers_before:] if a.method == "POST"]
    assert len(submits) == 1, [(r.method, r.path) for r in fake.state.requests[requests_before:]]
    assert len(answers) == 1 and answers[0].status < 300, answers
    return submits[0], answers[0]


def _request_id(fake: Fake, answer: Answer) -> str:
    """The id the provider gave the job, where its answer carries it."""
    if fake.provider == "openai" and not answer.path.startswith("/v1/videos"):
        return answer.headers["x-request-id"]  # images and transcriptions: a header
    body = answer.json()
    match fake.provider:
        case "fal":
            return str(body["request_id"])
        case "gemini":
            return str(body.get("responseId") or body["name"])  # an image, or Veo's operation
    return str(body["id"])  # replicate's prediction, BFL's task, an OpenAI video


def _attempt_of(route: RouteSpec, record: dict[str, Any], request_id: str) -> dict[str, Any]:
    """The one attempt the job should show: this route, ``ok``, with the fake's id."""
    return record | {
        "route": route.to,
        "provider": route.provider,
        "requestId": request_id,
        "outcome": "ok",
        "status": None,
        "error": None,
    }


def _as_sent(value: Any) -> Any:
    """A payload value with its media as :class:`Media`, as the provider should have it."""
    if isinstance(value, MediaInput):
        return Media(value.content_type, value.data)
    if isinstance(value, list):
        return [_as_sent(item) for item in value]
    return value


def _unwrapped(value: Any) -> Any:
    """A JSON value as received, with its ``data:`` URIs read as :class:`Media`."""
    if isinstance(value, str) and value.startswith("data:"):
        header, comma, encoded = value[5:].partition(",")
        assert comma and header.endswith(";base64"), value[:80]
        return Media(header.removesuffix(";base64"), _b64(encoded))
    if isinstance(value, list):
        return [_unwrapped(item) for item in value]
    if isinstance(value, dict):
        return {key: _unwrapped(item) for key, item in value.items()}
    return value


def _check_fal(submit: fal.Recorded, route: RouteSpec, payload: Payload) -> None:
    assert submit.path == f"/{route.target}"
    assert "fal_webhook" not in submit.query
    assert _unwrapped(submit.json) == {k: _as_sent(v) for k, v in payload.items()}


def _check_replicate(submit: replicate.Recorded, route: RouteSpec, payload: Payload) -> None:
    model, _, version = route.target.partition(":")
    if version:
        assert (submit.path, submit.json["version"]) == ("/v1/predictions", version)
    else:
        assert submit.path == f"/v1/models/{model}/predictions"
    assert _unwrapped(submit.json["input"]) == {k: _as_sent(v) for k, v in payload.items()}


def _check_bfl(submit: bfl.Recorded, route: RouteSpec, payload: Payload) -> None:
    """BFL takes images as bare base64; a list spreads over input_image, input_image_2, ..."""
    assert submit.path == f"/v1/{route.target}"
    wanted: dict[str, Any] = {}
    for name, value in payload.items():
        items = value if isinstance(value, list) else [value]
        if items and all(isinstance(item, MediaInput) for item in items):
            for n, item in enumerate(items, start=1):
                wanted[name if n == 1 else f"{name}_{n}"] = Media(None, _data(item))
        else:
            wanted[name] = value
    got = {key: _bare(key, value) for key, value in submit.json.items()}
    assert got == wanted


def _data(item: Any) -> bytes:
    assert isinstance(item, MediaInput)
    return item.data


def _bare(key: str, value: Any) -> Any:
    if not key.startswith("input_image"):
        return value
    assert isinstance(value, str) and not value.startswith(("data:", "http")), value[:80]
    return Media(None, _b64(value))


# Fields the OpenAI adapter sets itself, which no route maps: one image per job, and the
# transcript's shape. (``model`` is the route's target.)
_OPENAI_FIXED = {
    "n": "1",
    "response_format": "verbose_json",
    "timestamp_granularities[]": "segment",
}


def _check_openai(submit: openai.Received, route: RouteSpec, payload: Payload) -> None:
    files = {
        name: [Media(u.content_type, u.data) for u in ups] for name, ups in submit.files.items()
    }
    if submit.json is not None:  # images/generations: JSON
        assert submit.path == "/v1/images/generations"
        assert not any(_is_media(v) for v in payload.values()), "media sent as JSON"
        got = dict(submit.json)
        wanted = dict(payload)
    else:  # an image edit or a transcription: a multipart form, media as files
        assert submit.path in ("/v1/images/edits", "/v1/audio/transcriptions")
        got = {name: values[0] for name, values in submit.form.items()}
        got |= {name.removesuffix("[]"): _one_or_all(name, media) for name, media in files.items()}
        wanted = {k: _as_sent(v) if _is_media(v) else _form_text(v) for k, v in payload.items()}
    assert str(got.pop("model")) == route.target
    for name, value in _OPENAI_FIXED.items():
        if name in got:
            assert str(got.pop(name)).lower() == value
    assert got == wanted


def _is_media(value: Any) -> bool:
    items = value if isinstance(value, list) else [value]
    return bool(items) and all(isinstance(item, MediaInput) for item in items)


def _one_or_all(name: str, media: list[Media]) -> Media | list[Media]:
    return media if name.endswith("[]") else media[0]


def _form_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _check_gemini(submit: gemini.Recorded, route: RouteSpec, payload: Payload) -> None:
    method = submit.path.rpartition(":")[2]
    assert submit.path == f"/v1beta/models/{route.target}:{method}"
    if method == "predictLongRunning":
        _check_veo(submit.json, payload)
    else:
        assert method == "generateContent"
        _check_generate(submit.json, payload)


def _either(mapping: Mapping[str, Any], *names: str) -> Any:
    """A field under its JSON name or its proto name (google-genai sends either)."""
    return next((mapping[name] for name in names if name in mapping), None)


def _inline(part: Mapping[str, Any]) -> Media:
    blob = _either(part, "inlineData", "inline_data")
    return Media(_either(blob, "mimeType", "mime_type"), gemini.b64decode(blob["data"]))


# Gemini's generateContent: where each payload field goes (providers.md §4.1, §4.3).
_IMAGE_CONFIG = {
    "aspectRatio": ("aspectRatio", "aspect_ratio"),
    "imageSize": ("imageSize", "image_size"),
}
_NOT_ON_THE_WIRE = ("output_format", "outputFormat")  # transcoded here (§4.1): _check_format


def _check_generate(body: Mapping[str, Any], payload: Payload) -> None:
    (content,) = body["contents"]
    parts = content["parts"]
    texts = [part["text"] for part in parts if "text" in part]
    inline = [_inline(part) for part in parts if "text" not in part]
    config = _either(body, "generationConfig", "generation_config") or {}
    image_config = _either(config, "imageConfig", "image_config") or {}
    known = {"prompt", "image", "images", "duration", *_NOT_ON_THE_WIRE}
    known |= {name for names in _IMAGE_CONFIG.values() for name in names}
    assert set(payload) <= known, f"fields with no place on Gemini's wire: {set(payload) - known}"
    media = [_as_sent(v) for name in ("image", "images") for v in _listed(payload.get(name))]
    assert inline == media
    (text,) = texts
    _check_prompt(text, payload)
    got = {name: _either(image_config, *names) for name, names in _IMAGE_CONFIG.items()}
    wanted = {name: _either(payload, *names) for name, names in _IMAGE_CONFIG.items()}
    assert got == wanted


def _check_prompt(text: str, payload: Payload) -> None:
    """The prompt as it is; Lyria has no duration field, so a duration is told in the prompt
    (providers.md §6, lyria-3-pro)."""
    duration = payload.get("duration")
    if duration is None:
        assert text == payload["prompt"]
        return
    assert text.startswith(str(payload["prompt"])) and f"{duration} seconds" in text, text


def _listed(value: Any) -> list[Any]:
    return [] if value is None else value if isinstance(value, list) else [value]


# Veo's predictLongRunning: payload field -> (where, its name there) (providers.md §4.2).
_VEO = {
    "prompt": ("instance", "prompt"),
    "image": ("instance", "image"),
    "last_frame": ("instance", "lastFrame"),
    "aspect_ratio": ("parameters", "aspectRatio"),
    "duration_seconds": ("parameters", "durationSeconds"),
    "resolution": ("parameters", "resolution"),
    "negative_prompt": ("parameters", "negativePrompt"),
}


def _check_veo(body: Mapping[str, Any], payload: Payload) -> None:
    (instance,) = body["instances"]
    places = {"instance": instance, "parameters": body.get("parameters") or {}}
    assert set(payload) <= set(_VEO), (
        f"fields with no place on Veo's wire: {set(payload) - set(_VEO)}"
    )
    got: dict[str, Any] = {}
    for name, (where, wire) in _VEO.items():
        value = places[where].pop(wire, None)
        if isinstance(value, dict):
            encoded = _either(value, "bytesBase64Encoded", "bytes_base64_encoded")
            value = Media(_either(value, "mimeType", "mime_type"), gemini.b64decode(encoded))
        if value is not None:
            got[name] = value
    assert places == {"instance": {}, "parameters": {}}, f"sent beyond the payload: {places}"
    wanted = {name: _as_sent(value) for name, value in payload.items()}
    assert got == wanted


Check = Callable[[Any, RouteSpec, Payload], None]
CHECKS: dict[str, Check] = {
    "fal": _check_fal,
    "replicate": _check_replicate,
    "openai": _check_openai,
    "gemini": _check_gemini,
    "bfl": _check_bfl,
}


def _b64(value: str) -> bytes:
    try:
        return base64.b64decode(value, validate=True)
    except binascii.Error as exc:
        raise AssertionError(f"not base64: {value[:80]}") from exc
