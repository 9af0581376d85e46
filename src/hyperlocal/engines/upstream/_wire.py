"""The Hypereal wire contract as the upstream speaks it: where each category submits, what
body it sends, and the one lenient shape that every reply (sync, 202, or a polled job) fits."""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import httpx
from pydantic import BaseModel, ConfigDict, ValidationError

from hyperlocal.engines.base import Category, GenerationRequest, InputValue, MediaInput
from hyperlocal.errors import GenerationError, GenerationTimeoutError

__all__ = [
    "Route",
    "UpstreamReply",
    "UpstreamSegment",
    "build_body",
    "error_text",
    "parse_reply",
    "route_for",
    "wire_type",
]

JsonBody = dict[str, object]


@dataclass(frozen=True, slots=True)
class Route:
    path: str
    nested: bool  # {"model", "input": {...}} rather than the images endpoints' flat body


_ROUTES = {
    Category.IMAGE: Route("/v1/images/generate", nested=False),
    Category.IMAGE_EDIT: Route("/v1/images/edit", nested=False),
    Category.VIDEO: Route("/v1/videos/generate", nested=True),
    Category.AUDIO: Route("/v1/audio/generate", nested=True),
    Category.THREE_D: Route("/v1/3d/generate", nested=True),
}

_WIRE_TYPES = {Category.IMAGE_EDIT: "image"}


def route_for(category: Category) -> Route:
    route = _ROUTES.get(category)
    if route is None:
        raise GenerationError(f"upstream: category '{category}' is not served upstream")
    return route


def wire_type(category: Category) -> str:
    """The ``type`` query parameter of ``GET /v1/jobs/{id}``."""
    return _WIRE_TYPES.get(category, category.value)


def build_body(request: GenerationRequest, model: str) -> JsonBody:
    """The request's inputs, with fetched media sent inline as ``data:`` URIs.

    Inputs already checked here are sent as bytes rather than URLs: the upstream may not reach
    the client's URLs, and the bytes are the ones that were checked and charged for.
    """
    inputs = {**request.params, **_inline_media(request.params, request.media)}
    if route_for(request.category).nested:
        return {"model": model, "input": inputs}
    return {**inputs, "model": model}


def _inline_media(
    params: Mapping[str, InputValue], media: Mapping[str, Sequence[MediaInput]]
) -> dict[str, InputValue]:
    inline: dict[str, InputValue] = {}
    for name, items in media.items():
        uris = [_data_uri(item) for item in items]
        inline[name] = uris if isinstance(params.get(name), list) else uris[0]
    return inline


def _data_uri(item: MediaInput) -> str:
    return f"data:{item.content_type};base64,{base64.b64encode(item.data).decode('ascii')}"


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class UpstreamWord(_Lenient):
    word: str
    start: float
    end: float


class UpstreamSegment(_Lenient):
    text: str
    start: float
    end: float
    words: tuple[UpstreamWord, ...] = ()


class UpstreamImage(_Lenient):
    url: str


class UpstreamReply(_Lenient):
    """Any upstream answer: an image response, a media response, a 202, or a polled job."""

    jobId: str | None = None
    status: str | None = None
    data: tuple[UpstreamImage, ...] = ()
    outputUrl: str | None = None
    outputUrls: tuple[str, ...] = ()
    progress: float | None = None
    error: str | None = None
    code: str | None = None
    text: str | None = None
    duration: float | None = None
    segments: tuple[UpstreamSegment, ...] = ()

    def output_urls(self) -> list[str]:
        if self.data:
            return [image.url for image in self.data]
        if self.outputUrls:
            return list(self.outputUrls)
        return [self.outputUrl] if self.outputUrl else []

    def failure(self) -> GenerationError:
        """The upstream's failure as ours, keeping a timeout a timeout (E1002)."""
        cls = (
            GenerationTimeoutError if self.code == GenerationTimeoutError.code else GenerationError
        )
        return cls(f"upstream: {self.error or 'generation failed'}")


def parse_reply(response: httpx.Response) -> UpstreamReply:
    try:
        return UpstreamReply.model_validate_json(response.content)
    except ValidationError as exc:
        raise GenerationError(f"upstream: unreadable answer (HTTP {response.status_code})") from exc


def error_text(response: httpx.Response) -> tuple[str, str | None]:
    """The upstream's ``error`` text and ``code``, or the start of a non-JSON body."""
    try:
        body = json.loads(response.content)
    except ValueError:
        body = None
    if isinstance(body, dict) and body.get("error"):
        code = body.get("code")
        return str(body["error"]), str(code) if code else None
    snippet = response.content[:200].decode("utf-8", "replace").strip()
    return snippet or f"HTTP {response.status_code}", None
