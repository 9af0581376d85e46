"""A loopback fake of Google's Gemini API (``generativelanguage``, ``v1beta``), as
shared/spec/providers.md §4 and §7 describe it, and as the ``google-genai`` SDK reads it.

Use::

    state = GeminiState()                     # accepts x-goog-api-key == state.key
    with serve_in_thread(create_app(state)) as url:   # the API root: the SDK adds /v1beta
        context = ProviderContext(name="gemini", key=state.key, base_url=url, http=client)

What it speaks (every route checks ``x-goog-api-key``: none answers 403 PERMISSION_DENIED, a
wrong one 400 INVALID_ARGUMENT with an ``ErrorInfo`` reason ``API_KEY_INVALID``, as Google
does):

- ``POST /v1beta/models/{model}:generateContent``: checks ``contents[].parts[]`` (text, or
  ``inlineData`` with a ``mimeType`` and base64 ``data``; like Google it also takes the proto
  names, ``mime_type``, and URL-safe base64, which google-genai 3.x sends), and
  ``generationConfig.imageConfig``
  (``aspectRatio`` among Google's ten, ``imageSize`` 1K|2K|4K). Answers
  ``candidates[0].content.parts``: for ``lyria-*`` models a text part (the lyrics) and an
  ``audio/mpeg`` part (a real MP3); for the others an ``image/png`` part (a real PNG whose
  shape follows ``aspectRatio``), after an interim ``"thought": true`` image for ``*-pro-*``
  models, as Nano Banana Pro sends. ``block_prompt`` answers ``promptFeedback.blockReason``
  and no candidates.
- ``POST /v1beta/models/{model}:predictLongRunning``: checks ``instances[0]`` (a ``prompt`` or
  an ``image``; images as ``bytesBase64Encoded`` + ``mimeType``) and ``parameters``
  (``durationSeconds`` 4|6|8, ``aspectRatio`` 16:9|9:16, ``resolution`` 720p|1080p|4k).
  Answers ``{"name": "models/{model}/operations/{id}"}``.
- ``GET /v1beta/models/{model}/operations/{id}``: ``{name}`` while running, then ``done`` with
  ``response.generateVideoResponse.generatedSamples[].video.uri``
  (``{uri_base}/v1beta/files/{id}:download?alt=media``), or the scripted ``error`` or safety
  filter. An unknown id answers 404 NOT_FOUND.
- ``GET /v1beta/files/{id}:download?alt=media``: the video, a real small MP4.

Errors use Google's envelope ``{"error": {"code", "message", "status", "details"}}``.

Scripting, on the public :class:`GeminiState` (from the test's thread, between requests):

- ``requests``: every request received, as :class:`Recorded` (method, path, query, headers
  with lower-case names, json body); ``generates()``, ``submits()``, ``polls()`` and
  ``downloads()`` pick them by route.
- ``fail_next(route, status, message=None, *, retry_delay=None, headers=None,
  grpc_status=None)``: the next request to ``route`` (``generate``, ``submit``, ``poll`` or
  ``download``) answers that error (queued; the gRPC status name follows the HTTP status
  unless given, and ``retry_delay`` such as ``"7s"`` adds a ``google.rpc.RetryInfo`` detail).
- ``pending_polls``: how many polls answer "not done" before the outcome (default 1).
- ``gate``: a ``threading.Event``; while it is not set, operations stay running.
- ``operation_error``: ``{"code", "message"}`` that operations end with instead of a video.
- ``filtered_reasons``: operations end with ``raiMediaFilteredCount`` and these reasons, and
  no samples.
- ``block_prompt``: a ``blockReason`` (e.g. ``"PROHIBITED_CONTENT"``) for generateContent.
- ``uri_base``: what a ``video.uri`` starts with (default: this fake's own URL; set
  ``"https://generativelanguage.googleapis.com"`` for Google's exact shape).
- ``redirect_downloads``: a download answers 302 to ``http://localhost:{port}/storage/{id}``
  (another origin, as Google's storage is; no key needed there).
- ``operations``: the accepted operations by id, with their body and how often polled.

``png_bytes(aspect)``, ``mp3_bytes()`` and ``mp4_bytes()`` are the exact bytes it serves, and
``b64decode`` reads the base64 it is sent, for tests to compare with.
"""

from __future__ import annotations

import base64
import binascii
import functools
import io
import json
import threading
import uuid
from collections import deque
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse, RedirectResponse

__all__ = [
    "GeminiState",
    "Operation",
    "Recorded",
    "b64decode",
    "create_app",
    "mp3_bytes",
    "mp4_bytes",
    "png_bytes",
]

ROUTES = ("generate", "submit", "poll", "download")
ASPECT_RATIOS = frozenset({"1:1", "2:3", "3:2", "3:4", "4:3", "4:5", "5:4", "9:16", "16:9", "21:9"})
IMAGE_SIZES = frozenset({"1K", "2K", "4K"})
VIDEO_ASPECTS = frozenset({"16:9", "9:16"})
VIDEO_SECONDS = frozenset({4, 6, 8})
VIDEO_RESOLUTIONS = frozenset({"720p", "1080p", "4k"})
_STATUS_NAMES = {
    400: "INVALID_ARGUMENT",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}
_UNREGISTERED = (
    "Method doesn't allow unregistered callers (callers without established identity). "
    "Please use API Key or other form of API consumer identity to call this API."
)
_BAD_KEY_DETAILS = [
    {
        "@type": "type.googleapis.com/google.rpc.ErrorInfo",
        "reason": "API_KEY_INVALID",
        "domain": "googleapis.com",
        "metadata": {"service": "generativelanguage.googleapis.com"},
    }
]
_RESPONSE_TYPE = (
    "type.googleapis.com/google.ai.generativelanguage.v1beta.PredictLongRunningResponse"
)
LYRICS = "[Verse 1]\nFake lyrics for a loopback song\n"


@dataclass(frozen=True)
class Recorded:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    json: Any


@dataclass
class Operation:
    id: str
    model: str
    body: dict[str, Any]
    file_id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    polls: int = 0

    @property
    def name(self) -> str:
        return f"models/{self.model}/operations/{self.id}"


@dataclass(frozen=True)
class _Scripted:
    status: int
    body: dict[str, Any]
    headers: dict[str, str]


@dataclass
class GeminiState:
    key: str = "gemini-test-key"
    pending_polls: int = 1
    gate: threading.Event | None = None
    operation_error: dict[str, Any] | None = None
    filtered_reasons: list[str] | None = None
    block_prompt: str | None = None
    uri_base: str | None = None
    redirect_downloads: bool = False
    requests: list[Recorded] = field(default_factory=list)
    operations: dict[str, Operation] = field(default_factory=dict)
    _scripted: dict[str, deque[_Scripted]] = field(
        default_factory=lambda: {route: deque() for route in ROUTES}
    )
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def fail_next(
        self,
        route: str,
        status: int,
        message: str | None = None,
        *,
        retry_delay: str | None = None,
        headers: dict[str, str] | None = None,
        grpc_status: str | None = None,
    ) -> None:
        details = [] if retry_delay is None else [_retry_info(retry_delay)]
        body = _envelope(status, message or f"scripted {status}", details)
        if grpc_status is not None:
            body["error"]["status"] = grpc_status
        self._scripted[route].append(_Scripted(status, body, dict(headers or {})))

    def generates(self) -> list[Recorded]:
        return [r for r in self.requests if r.path.endswith(":generateContent")]

    def submits(self) -> list[Recorded]:
        return [r for r in self.requests if r.path.endswith(":predictLongRunning")]

    def polls(self) -> list[Recorded]:
        return [r for r in self.requests if "/operations/" in r.path]

    def downloads(self) -> list[Recorded]:
        return [r for r in self.requests if r.path.endswith(":download")]

    def _next_failure(self, route: str) -> Response | None:
        with self._lock:
            queue = self._scripted[route]
            scripted = queue.popleft() if queue else None
        if scripted is None:
            return None
        return JSONResponse(scripted.body, scripted.status, headers=scripted.headers)


def create_app(state: GeminiState) -> FastAPI:
    app = FastAPI()

    @app.middleware("http")
    async def record(request: Request, call_next: Any) -> Response:
        state.requests.append(
            Recorded(
                method=request.method,
                path=request.url.path,
                query=dict(request.query_params),
                headers={k.lower(): v for k, v in request.headers.items()},
                json=_parsed(await request.body()),
            )
        )
        response: Response = await call_next(request)
        return response

    @app.post("/v1beta/models/{target}")
    async def model_method(target: str, request: Request) -> Response:
        return await _model_method(state, target, request)

    @app.get("/v1beta/models/{model}/operations/{operation_id}")
    async def get_operation(model: str, operation_id: str, request: Request) -> Response:
        return _get_operation(state, f"models/{model}/operations/{operation_id}", request)

    @app.get("/v1beta/files/{target}")
    async def download(target: str, request: Request) -> Response:
        return _download(state, target, request)

    @app.get("/storage/{file_id}")
    async def storage(file_id: str) -> Response:
        return Response(mp4_bytes(), media_type="video/mp4")

    return app


async def _model_method(state: GeminiState, target: str, request: Request) -> Response:
    model, _, method = target.rpartition(":")
    route = {"generateContent": "generate", "predictLongRunning": "submit"}.get(method)
    if route is None or not model:
        return _error(404, f"Method not found: {target}")
    refused = _refused(state, request) or state._next_failure(route)
    if refused is not None:
        return refused
    body = _parsed(await request.body())
    if not isinstance(body, dict):
        return _error(400, "Invalid JSON payload received.")
    if route == "generate":
        return _generate(state, model, body)
    return _submit(state, model, body)


def _get_operation(state: GeminiState, name: str, request: Request) -> Response:
    refused = _refused(state, request) or state._next_failure("poll")
    if refused is not None:
        return refused
    operation = state.operations.get(name.rpartition("/")[2])
    if operation is None or operation.name != name:
        return _error(404, f"Operation not found: {name}")
    return JSONResponse(_poll(state, operation, str(request.base_url).rstrip("/")))


def _download(state: GeminiState, target: str, request: Request) -> Response:
    refused = _refused(state, request) or state._next_failure("download")
    if refused is not None:
        return refused
    file_id, _, method = target.partition(":")
    known = {operation.file_id for operation in state.operations.values()}
    if method != "download" or file_id not in known:
        return _error(404, f"File files/{file_id} not found.")
    if request.query_params.get("alt") != "media":
        return JSONResponse({"name": f"files/{file_id}", "mimeType": "video/mp4"})
    if state.redirect_downloads:  # to another origin, as Google's storage is
        return RedirectResponse(f"http://localhost:{request.url.port}/storage/{file_id}", 302)
    return Response(mp4_bytes(), media_type="video/mp4")


# --- generateContent --------------------------------------------------------------------------


def _generate(state: GeminiState, model: str, body: dict[str, Any]) -> Response:
    problem = _content_problem(body)
    if problem:
        return _error(400, problem)
    if state.block_prompt:
        return JSONResponse(
            {"promptFeedback": {"blockReason": state.block_prompt}, "modelVersion": model}
        )
    config = body.get("generationConfig") or {}
    aspect = (config.get("imageConfig") or {}).get("aspectRatio", "1:1")
    parts = _lyria_parts() if model.startswith("lyria") else _image_parts(model, aspect)
    return JSONResponse(
        {
            "candidates": [
                {"content": {"role": "model", "parts": parts}, "finishReason": "STOP", "index": 0}
            ],
            "usageMetadata": {"promptTokenCount": 12, "candidatesTokenCount": 1290},
            "modelVersion": model,
            "responseId": uuid.uuid4().hex[:22],
        }
    )


def _content_problem(body: dict[str, Any]) -> str | None:
    contents = body.get("contents")
    if not isinstance(contents, list) or not contents:
        return "* GenerateContentRequest.contents: contents is not specified"
    for content in contents:
        parts = content.get("parts") if isinstance(content, dict) else None
        if not isinstance(parts, list) or not parts:
            return "* GenerateContentRequest.contents.parts: contents.parts must not be empty."
        if not all(_valid_part(part) for part in parts):
            return "Unable to process input image. Please retry or report in the forum."
    image_config = (body.get("generationConfig") or {}).get("imageConfig") or {}
    if image_config.get("aspectRatio", "1:1") not in ASPECT_RATIOS:
        return f"Unsupported aspect ratio: {image_config['aspectRatio']}"
    if image_config.get("imageSize", "1K") not in IMAGE_SIZES:
        return f"Unsupported image size: {image_config['imageSize']}"
    return None


def _valid_part(part: Any) -> bool:
    if not isinstance(part, dict):
        return False
    if isinstance(part.get("text"), str):
        return True
    inline = _either(part, "inlineData", "inline_data")
    return (
        isinstance(inline, dict)
        and bool(_either(inline, "mimeType", "mime_type"))
        and _b64(inline.get("data"))
    )


def _image_parts(model: str, aspect: str) -> list[dict[str, Any]]:
    final = {"inlineData": {"mimeType": "image/png", "data": _b64encode(png_bytes(aspect))}}
    if "-pro-" not in model:
        return [final]
    interim = png_bytes(aspect, color=(90, 90, 90))
    thought = {"inlineData": {"mimeType": "image/png", "data": _b64encode(interim)}}
    return [{**thought, "thought": True}, final]


def _lyria_parts() -> list[dict[str, Any]]:
    audio = {"inlineData": {"mimeType": "audio/mpeg", "data": _b64encode(mp3_bytes())}}
    return [{"text": LYRICS}, audio]


# --- predictLongRunning and its operation -----------------------------------------------------


def _submit(state: GeminiState, model: str, body: dict[str, Any]) -> Response:
    problem = _video_problem(body)
    if problem:
        return _error(400, problem)
    operation = Operation(id=uuid.uuid4().hex[:12], model=model, body=body)
    with state._lock:
        state.operations[operation.id] = operation
    return JSONResponse({"name": operation.name})


def _video_problem(body: dict[str, Any]) -> str | None:
    instances = body.get("instances")
    if not isinstance(instances, list) or len(instances) != 1 or not isinstance(instances[0], dict):
        return "instances must hold exactly one instance."
    instance, parameters = instances[0], body.get("parameters") or {}
    if not instance.get("prompt") and not instance.get("image"):
        return "A prompt or an image is required."
    for name in ("image", "lastFrame"):
        image = instance.get(name)
        if image is None:
            continue
        encoded = _either(image, "bytesBase64Encoded", "bytes_base64_encoded")
        if not (_either(image, "mimeType", "mime_type") and _b64(encoded)):
            return f"instances[0].{name}: bytesBase64Encoded and mimeType are required."
    checks = (
        ("durationSeconds", VIDEO_SECONDS, 8),
        ("aspectRatio", VIDEO_ASPECTS, "16:9"),
        ("resolution", VIDEO_RESOLUTIONS, "720p"),
    )
    for name, allowed, default in checks:
        if parameters.get(name, default) not in allowed:
            return f"The {name} you specified ({parameters[name]}) is not supported."
    return None


def _poll(state: GeminiState, operation: Operation, own_url: str) -> dict[str, Any]:
    with state._lock:
        operation.polls += 1
        running = operation.polls <= state.pending_polls or (
            state.gate is not None and not state.gate.is_set()
        )
    if running:
        return {"name": operation.name}
    if state.operation_error is not None:
        return {"name": operation.name, "done": True, "error": state.operation_error}
    return {
        "name": operation.name,
        "done": True,
        "response": _video_response(state, operation, own_url),
    }


def _video_response(state: GeminiState, operation: Operation, own_url: str) -> dict[str, Any]:
    if state.filtered_reasons is not None:
        answer: dict[str, Any] = {
            "raiMediaFilteredCount": 1,
            "raiMediaFilteredReasons": state.filtered_reasons,
        }
    else:
        base = (state.uri_base or own_url).rstrip("/")
        uri = f"{base}/v1beta/files/{operation.file_id}:download?alt=media"
        answer = {"generatedSamples": [{"video": {"uri": uri}}]}
    return {"@type": _RESPONSE_TYPE, "generateVideoResponse": answer}


# --- auth, errors, media ----------------------------------------------------------------------


def _refused(state: GeminiState, request: Request) -> Response | None:
    key = request.headers.get("x-goog-api-key")
    if key is None:
        return _error(403, _UNREGISTERED)
    if key != state.key:
        return _error(400, "API key not valid. Please pass a valid API key.", _BAD_KEY_DETAILS)
    return None


def _envelope(status: int, message: str, details: list[dict[str, Any]]) -> dict[str, Any]:
    name = _STATUS_NAMES.get(status, "UNKNOWN" if status < 500 else "INTERNAL")
    error: dict[str, Any] = {"code": status, "message": message, "status": name}
    if details:
        error["details"] = details
    return {"error": error}


def _error(status: int, message: str, details: list[dict[str, Any]] | None = None) -> Response:
    return JSONResponse(_envelope(status, message, details or []), status_code=status)


def _retry_info(delay: str) -> dict[str, Any]:
    return {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": delay}


def _parsed(raw: bytes) -> Any:
    try:
        return json.loads(raw) if raw else None
    except ValueError:
        return raw.decode(errors="replace")


def _either(body: dict[str, Any], camel: str, snake: str) -> Any:
    """Google's JSON parser takes a proto field by its JSON name or its original name (the SDK
    sends ``inlineData`` with ``mime_type`` inside)."""
    return body.get(camel, body.get(snake))


def b64decode(value: str) -> bytes:
    """Proto3 JSON bytes: standard or URL-safe base64 (the SDK sends URL-safe), padded or not."""
    normal = value.replace("-", "+").replace("_", "/")
    return base64.b64decode(normal + "=" * (-len(normal) % 4), validate=True)


def _b64(value: Any) -> bool:
    if not isinstance(value, str) or not value:
        return False
    try:
        b64decode(value)
    except (binascii.Error, ValueError):
        return False
    return True


def _b64encode(data: bytes) -> str:
    return base64.b64encode(data).decode()


@functools.cache
def png_bytes(aspect: str = "1:1", color: tuple[int, int, int] = (30, 120, 200)) -> bytes:
    """A real PNG, 8 px per unit of ``aspect`` (16:9 is 128x72)."""
    from PIL import Image

    ratio = Fraction(*(int(side) for side in aspect.split(":")))
    size = (ratio.numerator * 8, ratio.denominator * 8)
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, format="PNG")
    return buffer.getvalue()


@functools.cache
def mp3_bytes() -> bytes:
    """A real MP3: a tenth of a second of stereo silence at 44.1 kHz, as Lyria's are."""
    import lameenc  # type: ignore[import-not-found]

    encoder = lameenc.Encoder()
    encoder.set_bit_rate(128)
    encoder.set_in_sample_rate(44_100)
    encoder.set_channels(2)
    encoder.set_quality(7)
    return bytes(encoder.encode(bytes(4 * 4_410)) + encoder.flush())


@functools.cache
def mp4_bytes() -> bytes:
    """A real MP4: four 32x32 frames of MPEG-4 video."""
    import av
    import numpy as np

    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format="mp4") as container:
        stream = container.add_stream("mpeg4", rate=8)
        stream.width, stream.height, stream.pix_fmt = 32, 32, "yuv420p"
        for shade in range(4):
            pixels = np.full((32, 32, 3), shade * 60, dtype=np.uint8)
            frame = av.VideoFrame.from_ndarray(pixels, format="rgb24")
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return buffer.getvalue()
