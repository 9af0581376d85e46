"""A loopback fake of fal.ai's queue API, as ``providers.md`` §1 and §7 document it.

Use::

    with serve_fal() as fal:                      # a FalState, its server on 127.0.0.1
        fal.url                                   # the base URL (HYPERLOCAL_FAL_BASE_URL)
        fal.jwks_url                              # its key set, for ProviderContext.jwks_url
        fal.key                                   # the key it takes: "Authorization: Key <key>"
        fal.script(JobScript(queued=2, running=1))      # how the next submitted job behaves
        fal.fail_submit(Reply.rate_limited(3))          # answer the next submit with an error
        fal.fail_status(Reply.server_error())           # ... or the next status poll
        fal.fail_stream(Reply.server_error())           # ... or the next status stream's open
        fal.cut_stream()                          # end the next status stream after one event
        fal.release(request_id)                   # finish a job scripted with hold=True
        fal.requests                              # every request received (Recorded), in order
        fal.jobs[request_id]                      # a job: its endpoint, input, state, cancel
        fal.webhooks                              # webhooks sent (Delivery), once delivered

What it reproduces:

- ``POST /{endpoint}[?fal_webhook=url]`` -> 200 ``{status: IN_QUEUE, request_id, response_url,
  status_url, cancel_url, queue_position, gateway_request_id}``; the URLs point back here.
- ``GET /{owner}/{app}/requests/{id}/status[?logs=1]`` (owner/app only: a subpath is a 404)
  -> 202 ``IN_QUEUE`` + ``queue_position`` (counting down), 202 ``IN_PROGRESS`` + ``logs``,
  200 ``COMPLETED`` + ``logs`` + ``metrics`` (+ ``error``, ``error_type`` when it failed).
  ``logs`` is present always, null unless asked for.
- ``GET /{owner}/{app}/requests/{id}/status/stream[?logs=1]`` -> 200 ``text/event-stream``: one
  ``data:`` event per status, each a step of the job as one poll would see it (same fields),
  ``STREAM_STEP_S`` apart, a comment line after each, closed after COMPLETED. A held job's
  stream waits for ``release`` or a cancel.
- ``GET /{owner}/{app}/requests/{id}`` -> the output JSON, or the failed job's error body.
- ``PUT /{owner}/{app}/requests/{id}/cancel`` -> 202 ``CANCELLATION_REQUESTED``, 400
  ``ALREADY_COMPLETED``, 404 ``NOT_FOUND``.
- Errors: a ``detail`` list (422), or ``{detail, error_type}`` with ``X-Fal-Error-Type``.
- The app checks its input when the job runs, as fal's apps do: every ``*_url`` must be an
  http(s) URL or a ``data:`` URI (``*_urls``: a list of them), and the fields that
  ``state.required`` lists for the endpoint must be there. A bad input fails the job (COMPLETED
  with ``error``), and its result is the 422 ``detail`` list.
- Outputs follow the endpoint (``output_for``): ``images`` / ``video`` / ``audio`` / 3D
  ``model_mesh`` ... / wizper's ``text`` + ``chunks``; files are real PNG, MP4, WAV and GLB bytes
  served at ``/files/<name>``.
- Webhooks: when a job finishes, an ED25519-signed POST ``{request_id, gateway_request_id,
  status: OK|ERROR, payload[, error]}`` to its ``fal_webhook`` URL with the four
  ``X-Fal-Webhook-*`` headers; the public key is at ``/.well-known/jwks.json``.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import hashlib
import io
import json
import threading
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from tests.support import serve_in_thread

__all__ = [
    "REQUIRED_FIELDS",
    "Delivery",
    "FalJob",
    "FalState",
    "JobScript",
    "Recorded",
    "Reply",
    "create_app",
    "output_for",
    "serve_fal",
]

USER_ID = "fake-fal-user"
NAMESPACES = ("workflows", "comfy")
STREAM_STEP_S = 0.005  # a status stream's pace: one step of the job, or a look for a release

# Fields that an app will not run without (its main input, per providers.md §6). Endpoints not
# listed only check their ``*_url`` fields; ``text-to-*`` endpoints also need a prompt.
REQUIRED_FIELDS: dict[str, tuple[str, ...]] = {
    "fal-ai/flux/dev": ("prompt",),
    "fal-ai/flux/schnell": ("prompt",),
    "fal-ai/nano-banana": ("prompt",),
    "fal-ai/nano-banana/edit": ("prompt", "image_urls"),
    "fal-ai/nano-banana-pro/edit": ("prompt", "image_urls"),
    "fal-ai/kling-video/v2.6/pro/image-to-video": ("prompt", "start_image_url"),
    "fal-ai/kling-video/v3/pro/image-to-video": ("start_image_url",),
    "fal-ai/kling-video/v3/standard/image-to-video": ("start_image_url",),
    "fal-ai/kling-video/v2.5-turbo/pro/image-to-video": ("prompt", "image_url"),
    "fal-ai/hunyuan3d/v2": ("input_image_url",),
    "fal-ai/hunyuan3d/v2/multi-view": ("front_image_url", "back_image_url", "left_image_url"),
    "fal-ai/wizper": ("audio_url",),
    "fal-ai/minimax/speech-02-hd": ("text",),
}


@dataclass(frozen=True)
class Recorded:
    """One request as the fake received it (header names lower-case)."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    json: Any  # the parsed JSON body; None when there was none


@dataclass(frozen=True)
class Reply:
    """An answer to give instead of the usual one."""

    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def validation(cls, **messages: str) -> Reply:
        """422 with fal's ``detail`` list: one ``field=message`` per bad field."""
        detail = [
            {"loc": ["body", name], "msg": msg, "type": "value_error"}
            for name, msg in messages.items()
        ]
        return cls(422, {"detail": detail})

    @classmethod
    def infrastructure(cls, error_type: str = "runner_disconnected", status: int = 503) -> Reply:
        detail = error_type.replace("_", " ").capitalize()
        body = {"detail": detail, "error_type": error_type}
        return cls(status, body, {"X-Fal-Error-Type": error_type})

    @classmethod
    def rate_limited(cls, retry_after: float) -> Reply:
        return cls(429, {"detail": "Too many requests"}, {"Retry-After": f"{retry_after:g}"})

    @classmethod
    def server_error(cls) -> Reply:
        return cls(500, {"detail": "Internal Server Error"})

    def response(self) -> JSONResponse:
        return JSONResponse(self.body, self.status, headers=self.headers)


@dataclass(frozen=True)
class JobScript:
    """How one submitted job behaves. Status polls see it ``queued`` times IN_QUEUE (its
    ``queue_position`` counting down to 0), then ``running`` times IN_PROGRESS, then (unless
    ``hold`` keeps it running until ``FalState.release``) COMPLETED. A job with nothing to wait
    for completes at submit. ``output`` replaces ``output_for``'s; ``error`` fails the job:
    its status carries ``error`` (and ``error_type``), and its result is this reply."""

    queued: int = 0
    running: int = 0
    hold: bool = False
    output: dict[str, Any] | None = None
    error: Reply | None = None


@dataclass
class FalJob:
    request_id: str
    endpoint: str
    app: str  # owner/app (with its namespace), as status, result and cancel take it
    input: Any
    webhook_url: str | None
    script: JobScript
    base_url: str
    queued: int = 0
    running: int = 0
    held: bool = False
    state: str = "IN_QUEUE"  # IN_QUEUE | IN_PROGRESS | COMPLETED
    canceled: bool = False
    error: Reply | None = None
    output: dict[str, Any] | None = None


@dataclass(frozen=True)
class Delivery:
    url: str
    body: dict[str, Any]
    status_code: int | None  # None: the POST failed


class FalState:
    """The fake's state and its scripts; see the module docstring."""

    def __init__(self, key: str = "fal-test-key") -> None:
        self.key = key
        self.url = ""  # set by serve_fal
        self.requests: list[Recorded] = []
        self.jobs: dict[str, FalJob] = {}
        self.webhooks: list[Delivery] = []
        self.required: dict[str, tuple[str, ...]] = dict(REQUIRED_FIELDS)
        self.signing_key = Ed25519PrivateKey.generate()
        self._scripts: deque[JobScript] = deque()
        self._submit_replies: deque[Reply] = deque()
        self._status_replies: deque[Reply] = deque()
        self._stream_replies: deque[Reply] = deque()
        self._cuts = 0
        self._lock = threading.RLock()

    @property
    def jwks_url(self) -> str:
        return f"{self.url}/.well-known/jwks.json"

    def script(self, *scripts: JobScript) -> None:
        self._scripts.extend(scripts)

    def fail_submit(self, *replies: Reply) -> None:
        self._submit_replies.extend(replies)

    def fail_status(self, *replies: Reply) -> None:
        self._status_replies.extend(replies)

    def fail_stream(self, *replies: Reply) -> None:
        self._stream_replies.extend(replies)

    def cut_stream(self, count: int = 1) -> None:
        """End the next ``count`` status streams after their first event, as a dropped
        connection would, without COMPLETED."""
        self._cuts += count

    def rotate_key(self) -> None:
        """Sign with a new key from now on; the key set then holds only the new one."""
        self.signing_key = Ed25519PrivateKey.generate()

    def jwks(self) -> dict[str, Any]:
        raw = self.signing_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        x = base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
        kid = hashlib.sha256(raw).hexdigest()[:16]
        return {"keys": [{"kty": "OKP", "crv": "Ed25519", "x": x, "kid": kid}]}

    def sign(self, request_id: str, body: bytes, timestamp: int | None = None) -> dict[str, str]:
        """The four ``X-Fal-Webhook-*`` headers for ``body``, as fal signs them."""
        stamp = str(int(time.time()) if timestamp is None else timestamp)
        digest = hashlib.sha256(body).hexdigest()
        message = f"{request_id}\n{USER_ID}\n{stamp}\n{digest}".encode()
        return {
            "X-Fal-Webhook-Request-Id": request_id,
            "X-Fal-Webhook-User-Id": USER_ID,
            "X-Fal-Webhook-Timestamp": stamp,
            "X-Fal-Webhook-Signature": self.signing_key.sign(message).hex(),
        }

    def release(self, request_id: str) -> None:
        """Let a held job finish: at once if its scripted polls are spent, else after them."""
        with self._lock:
            job = self.jobs[request_id]
            job.held = False
            if job.state != "COMPLETED" and job.queued == 0 and job.running == 0:
                self._complete(job)

    def of(self, method: str, suffix: str = "") -> list[Recorded]:
        """The recorded requests with this method whose path ends with ``suffix``."""
        return [r for r in self.requests if r.method == method and r.path.endswith(suffix)]

    # --- the queue, as the routes drive it ------------------------------------------------

    def submit(self, endpoint: str, body: Any, webhook_url: str | None, base: str) -> FalJob:
        script = self._scripts.popleft() if self._scripts else JobScript()
        job = FalJob(
            request_id=str(uuid.uuid4()),
            endpoint=endpoint,
            app=app_of(endpoint),
            input=body,
            webhook_url=webhook_url,
            script=script,
            base_url=base,
            queued=script.queued,
            running=script.running,
            held=script.hold,
        )
        with self._lock:
            self.jobs[job.request_id] = job
            if job.queued == 0 and job.running == 0 and not job.held:
                self._complete(job)
        return job

    def next_submit_reply(self) -> Reply | None:
        return self._submit_replies.popleft() if self._submit_replies else None

    def next_status_reply(self) -> Reply | None:
        return self._status_replies.popleft() if self._status_replies else None

    def next_stream_reply(self) -> Reply | None:
        return self._stream_replies.popleft() if self._stream_replies else None

    def take_cut(self) -> bool:
        with self._lock:
            if self._cuts == 0:
                return False
            self._cuts -= 1
            return True

    def waiting(self, job: FalJob) -> bool:
        """A held job that no poll can move on: its stream waits for a release or a cancel."""
        with self._lock:
            return job.state == "IN_PROGRESS" and job.held and job.running == 0

    def advance(self, job: FalJob) -> int | None:
        """One status poll's worth of progress; the queue position while queued."""
        with self._lock:
            if job.state == "COMPLETED":
                return None
            if job.queued > 0:
                job.queued -= 1
                return job.queued
            job.state = "IN_PROGRESS"
            if job.running > 0:
                job.running -= 1
            elif not job.held:
                self._complete(job)
            return None

    def cancel(self, job: FalJob) -> bool:
        with self._lock:
            if job.state == "COMPLETED":
                return False
            job.canceled = True
            job.error = Reply(400, {"detail": "Request was cancelled"})
            self._finish(job)
            return True

    def _complete(self, job: FalJob) -> None:
        job.error = job.script.error or self._checked(job)
        if job.error is None:
            job.output = job.script.output or output_for(job.endpoint, job.base_url)
        self._finish(job)

    def _finish(self, job: FalJob) -> None:
        job.state = "COMPLETED"
        if job.webhook_url and not job.canceled:
            body = webhook_body(job)
            threading.Thread(target=self._deliver, args=(job, body), daemon=True).start()

    def _checked(self, job: FalJob) -> Reply | None:
        """The app's own input check (what it answers 422 for)."""
        body = job.input if isinstance(job.input, dict) else {}
        needed = self.required.get(job.endpoint)
        if needed is None:
            needed = ("prompt",) if "text-to-" in job.endpoint else ()
        problems = {name: "Field required" for name in needed if body.get(name) in (None, "", [])}
        problems.update(bad_urls(body))
        return Reply.validation(**problems) if problems else None

    def _deliver(self, job: FalJob, body: dict[str, Any]) -> None:
        raw = json.dumps(body).encode()
        headers = {"Content-Type": "application/json", **self.sign(job.request_id, raw)}
        assert job.webhook_url is not None
        try:
            response = httpx.post(job.webhook_url, content=raw, headers=headers)
        except httpx.HTTPError:
            self.webhooks.append(Delivery(job.webhook_url, body, None))
            return
        self.webhooks.append(Delivery(job.webhook_url, body, response.status_code))


def app_of(endpoint: str) -> str:
    parts = endpoint.strip("/").split("/")
    return "/".join(parts[: 3 if parts[0] in NAMESPACES else 2])


def bad_urls(body: dict[str, Any]) -> dict[str, str]:
    problems: dict[str, str] = {}
    for name, value in body.items():
        values = value if name.endswith("_urls") and isinstance(value, list) else [value]
        if (name.endswith("_url") or name.endswith("_urls")) and not all(
            isinstance(v, str) and _takes_url(v) for v in values
        ):
            problems[name] = "Input should be a valid URL or data URI"
    return problems


def _takes_url(value: str) -> bool:
    if value.startswith("data:"):
        header, comma, _ = value[5:].partition(",")
        return bool(comma) and "/" in header
    return value.startswith(("http://", "https://"))


def webhook_body(job: FalJob) -> dict[str, Any]:
    body: dict[str, Any] = {"request_id": job.request_id, "gateway_request_id": job.request_id}
    if job.error is None:
        return {**body, "status": "OK", "payload": job.output}
    error = f"Invalid status code: {job.error.status}"
    return {**body, "status": "ERROR", "error": error, "payload": job.error.body}


# --- outputs ------------------------------------------------------------------------------

_ASR = ("wizper", "speech-to-text")
_MESH = ("hunyuan3d", "hunyuan-3d", "tripo", "meshy", "to-3d")
_AUDIO = ("tts", "speech-", "lyria", "voice-clone", "music", "audio")
_VIDEO = ("video", "seedance", "hailuo", "veo", "pixverse", "avatar", "lipsync", "omnihuman")


def output_for(endpoint: str, base_url: str) -> dict[str, Any]:
    """The output JSON that the app at ``endpoint`` answers, in fal's shapes."""
    name = endpoint.lower()
    if any(word in name for word in _ASR):
        chunks = [
            {"text": " Hello there.", "timestamp": [0.0, 1.2]},
            {"text": " General Kenobi.", "timestamp": [1.2, None]},
        ]
        return {"text": "Hello there. General Kenobi.", "chunks": chunks, "languages": ["en"]}
    if any(word in name for word in _MESH):
        return _mesh_output(name, _file(base_url, "model.glb"))
    if any(word in name for word in _VIDEO) and "video-to-audio" not in name:
        return {"video": {**_file(base_url, "video.mp4"), "duration": 1.0, "fps": 12}}
    if any(word in name for word in _AUDIO):
        return {"audio": _file(base_url, "audio.wav")}
    image = {**_file(base_url, "image.png"), "width": 8, "height": 8}
    return {"images": [image], "seed": 42, "has_nsfw_concepts": [False], "prompt": ""}


def _mesh_output(name: str, glb: dict[str, Any]) -> dict[str, Any]:
    if "meshy" in name:
        return {"model_glb": glb, "model_urls": {"glb": glb}, "seed": 7}
    if "tripo" in name:
        return {"task_id": "tripo-task", "model_mesh": glb, "pbr_model": glb}
    return {"model_mesh": glb, "seed": 7}


_CONTENT_TYPES = {
    "png": "image/png",
    "mp4": "video/mp4",
    "wav": "audio/wav",
    "glb": "model/gltf-binary",
}


def _file(base_url: str, name: str) -> dict[str, Any]:
    data = file_bytes(name)
    content_type = _CONTENT_TYPES[name.rsplit(".", 1)[1]]
    url = f"{base_url}/files/{name}"
    return {"url": url, "content_type": content_type, "file_name": name, "file_size": len(data)}


@functools.cache
def file_bytes(name: str) -> bytes:
    """Small real files of each kind (built once)."""
    match name.rsplit(".", 1)[1]:
        case "png":
            from tests.support import tiny_png

            return tiny_png()
        case "mp4":
            return _mp4()
        case "wav":
            return _wav()
        case "glb":
            import trimesh

            data = trimesh.creation.box().export(file_type="glb")
            assert isinstance(data, bytes)
            return data
    raise KeyError(name)


def _mp4() -> bytes:
    import av
    import numpy as np

    buffer = io.BytesIO()
    with av.open(buffer, "w", format="mp4") as out:
        stream = out.add_stream("libx264", rate=12)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        black = np.zeros((48, 64, 3), dtype=np.uint8)
        for _ in range(12):
            out.mux(stream.encode(av.VideoFrame.from_ndarray(black, format="rgb24")))
        out.mux(stream.encode())
    return buffer.getvalue()


def _wav() -> bytes:
    import wave

    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(8000)
        out.writeframes(b"\x00\x00" * 8000)
    return buffer.getvalue()


# --- the app ------------------------------------------------------------------------------


def create_app(state: FalState) -> FastAPI:
    routes = _Routes(state)
    app = FastAPI()
    app.add_api_route("/.well-known/jwks.json", routes.jwks, methods=["GET"])
    app.add_api_route("/files/{name}", routes.files, methods=["GET"])
    requests = "/{app_path:path}/requests/{request_id}"
    app.add_api_route(f"{requests}/status", routes.status, methods=["GET"])
    app.add_api_route(f"{requests}/status/stream", routes.status_stream, methods=["GET"])
    app.add_api_route(requests, routes.result, methods=["GET"])
    app.add_api_route(f"{requests}/cancel", routes.cancel, methods=["PUT"])
    app.add_api_route("/{endpoint:path}", routes.submit, methods=["POST"])
    return app


class _Routes:
    def __init__(self, state: FalState) -> None:
        self.state = state

    async def jwks(self, request: Request) -> JSONResponse:
        await _record(self.state, request)
        return JSONResponse(self.state.jwks())

    async def files(self, name: str, request: Request) -> Response:
        await _record(self.state, request)
        extension = name.rsplit(".", 1)[-1]
        if extension not in _CONTENT_TYPES:
            return JSONResponse({"detail": "Not Found"}, 404)
        return Response(file_bytes(name), media_type=_CONTENT_TYPES[extension])

    async def status(self, app_path: str, request_id: str, request: Request) -> JSONResponse:
        job = await self._job(request, app_path, request_id)
        if isinstance(job, JSONResponse):
            return job
        scripted = self.state.next_status_reply()
        if scripted is not None:
            return scripted.response()
        position = self.state.advance(job)
        logs = request.query_params.get("logs", "").lower() in ("1", "true")
        return _status_response(job, position, logs)

    async def status_stream(self, app_path: str, request_id: str, request: Request) -> Response:
        job = await self._job(request, app_path, request_id)
        if isinstance(job, JSONResponse):
            return job
        scripted = self.state.next_stream_reply()
        if scripted is not None:
            return scripted.response()
        logs = request.query_params.get("logs", "").lower() in ("1", "true")
        cut = self.state.take_cut()
        return StreamingResponse(
            _events(self.state, job, logs, cut), media_type="text/event-stream"
        )

    async def result(self, app_path: str, request_id: str, request: Request) -> JSONResponse:
        job = await self._job(request, app_path, request_id)
        if isinstance(job, JSONResponse):
            return job
        if job.state != "COMPLETED":
            return JSONResponse({"detail": "Request is still in progress"}, 400)
        if job.error is not None:
            return job.error.response()
        return JSONResponse(job.output)

    async def cancel(self, app_path: str, request_id: str, request: Request) -> JSONResponse:
        job = await self._job(request, app_path, request_id)
        if isinstance(job, JSONResponse):
            return JSONResponse({"status": "NOT_FOUND"}, 404) if job.status_code == 404 else job
        if self.state.cancel(job):
            return JSONResponse({"status": "CANCELLATION_REQUESTED"}, 202)
        return JSONResponse({"status": "ALREADY_COMPLETED"}, 400)

    async def submit(self, endpoint: str, request: Request) -> JSONResponse:
        recorded = await _record(self.state, request)
        if not _authorized(self.state, request):
            return _unauthorized()
        scripted = self.state.next_submit_reply()
        if scripted is not None:
            return scripted.response()
        if not isinstance(recorded.json, dict):
            return Reply.validation(body="Input should be a valid dictionary").response()
        base = str(request.base_url).rstrip("/")
        webhook = request.query_params.get("fal_webhook")
        job = self.state.submit(endpoint, recorded.json, webhook, base)
        return JSONResponse(
            {
                **_urls(job),
                "status": "IN_QUEUE",
                "queue_position": job.script.queued,
                "gateway_request_id": job.request_id,
            }
        )

    async def _job(self, request: Request, app_path: str, request_id: str) -> FalJob | JSONResponse:
        """The job a status, result or cancel names, or fal's refusal."""
        await _record(self.state, request)
        if not _authorized(self.state, request):
            return _unauthorized()
        job = self.state.jobs.get(request_id)
        if job is None or job.app != app_path:  # a subpath here is fal's 404 too
            return JSONResponse({"detail": "Request not found"}, 404)
        return job


async def _record(state: FalState, request: Request) -> Recorded:
    raw = await request.body()
    try:
        body = json.loads(raw) if raw else None
    except ValueError:
        body = None
    recorded = Recorded(
        request.method,
        request.url.path,
        dict(request.query_params),
        {name.lower(): value for name, value in request.headers.items()},
        body,
    )
    state.requests.append(recorded)
    return recorded


def _authorized(state: FalState, request: Request) -> bool:
    return request.headers.get("authorization") == f"Key {state.key}"


def _unauthorized() -> JSONResponse:
    return JSONResponse({"detail": "Unauthorized: invalid API key"}, 401)


def _urls(job: FalJob) -> dict[str, str]:
    base = f"{job.base_url}/{job.app}/requests/{job.request_id}"
    return {
        "request_id": job.request_id,
        "response_url": base,
        "status_url": f"{base}/status",
        "cancel_url": f"{base}/cancel",
    }


def _status_response(job: FalJob, position: int | None, logs: bool) -> JSONResponse:
    body: dict[str, Any] = {**_urls(job), "status": job.state, "logs": None}
    if job.state == "IN_QUEUE":
        return JSONResponse({**body, "queue_position": position}, 202)
    if logs:
        body["logs"] = [_log_line(f"running {job.endpoint}")]
    if job.state == "IN_PROGRESS":
        return JSONResponse(body, 202)
    body["metrics"] = {"inference_time": 0.05}
    if job.error is not None:
        body["error"] = f"Invalid status code: {job.error.status}"
        error_type = job.error.body.get("error_type") if isinstance(job.error.body, dict) else None
        if error_type:
            body["error_type"] = error_type
    return JSONResponse(body, 200)


async def _events(state: FalState, job: FalJob, logs: bool, cut: bool) -> AsyncIterator[str]:
    """A status stream: each step of the job, as a poll would see it, until COMPLETED."""
    while True:
        answer = _status_response(job, state.advance(job), logs)
        yield f"data: {bytes(answer.body).decode()}\n\n: keep-alive\n\n"
        if cut or answer.status_code == 200:
            return
        await asyncio.sleep(STREAM_STEP_S)
        while state.waiting(job):  # a held job: until a release or a cancel
            await asyncio.sleep(STREAM_STEP_S)


def _log_line(message: str) -> dict[str, Any]:
    stamp = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return {"message": message, "level": "INFO", "source": "user", "timestamp": stamp}


@contextmanager
def serve_fal(state: FalState | None = None) -> Iterator[FalState]:
    """The fake on a real loopback server, for the duration of the ``with``."""
    state = state or FalState()
    with serve_in_thread(create_app(state)) as url:
        state.url = url
        yield state
