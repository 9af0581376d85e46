"""A loopback fake of Replicate's HTTP API, as providers.md §2 and §7 (shared/spec) describe it,
with the shapes that the official ``replicate`` SDK 1.0.x reads.

Use::

    with running() as state:                  # accepts "Authorization: Bearer <state.token>"
        context = ProviderContext(name="replicate", key=state.token, base_url=state.url, ...)
        client = replicate.Client(api_token=state.token, base_url=state.url)  # the SDK too

(``running(state)`` serves a state of your own; ``create_app(state)`` is the bare app.)

What it speaks (every ``/v1`` route checks the Bearer token: 401 problem+json otherwise):

- ``POST /v1/models/{owner}/{name}/predictions`` ``{input, webhook?, webhook_completed?,
  webhook_events_filter?, stream?}`` and ``POST /v1/predictions`` (the same with ``version``:
  ``owner/name:hash``, or a hash whose model ``state.versions`` names). ``input`` must be an
  object holding every field of ``state.require[model]``; else 422 problem+json with
  ``invalid_fields``. Answers 201 with the prediction ``{id, model, version, input, logs,
  output, data_removed, error, status, created_at, started_at, completed_at, metrics, urls:
  {get, cancel, stream?, web}}``; ``get``, ``cancel`` and ``stream`` point back at the fake.
- ``Prefer: wait`` / ``Prefer: wait=N``: a prediction with no scripted steps (below) ends
  before the answer; a held one is held up to N seconds (60 for a bare ``wait``, never more
  than ``state.max_wait``, 1 s by default so that held predictions do not slow tests) or
  until released, then answered as it is, maybe incomplete. One
  with steps left answers ``starting`` at once: its steps stand for time a test observes by
  polling.
- ``GET /v1/predictions/{id}``: each poll moves the prediction one step (see :class:`Script`).
- ``POST /v1/predictions/{id}/cancel``: an unfinished prediction becomes ``canceled``.
- ``GET /v1/predictions/{id}/stream``: server-sent ``output`` events, then ``done`` (or
  ``error``), once the prediction ends.
- ``POST /v1/files`` (multipart field ``content``, optional ``metadata`` JSON): 201 with the
  file object; ``GET /v1/files/{id}`` the same.
- ``GET /v1/webhooks/default/secret``: ``{"key": state.secret}`` (``whsec_<base64>``).
- ``GET /output/{id}/{name}``: the outputs, real small PNG/MP4/WAV bytes, without a token
  (as replicate.delivery serves them).
- Webhooks: a prediction created with ``webhook`` gets POSTs of the whole prediction for the
  events of ``webhook_events_filter`` (all four when absent): ``start`` at creation, ``logs``
  per progress step and ``output`` at the end (these two at most one per 500 ms), and
  ``completed`` at the end (also to ``webhook_completed``). Signed as Standard Webhooks:
  ``webhook-id``, ``webhook-timestamp``, ``webhook-signature: v1,<base64 HMAC-SHA256>`` with
  ``state.secret``; delivered in order, one at a time, each recorded in ``state.webhooks``.

Scripting, on the public :class:`ReplicateState` (from any thread):

- ``script``: a :class:`Script` for every prediction created from then on.
- ``fail_next(status, detail=None, on="create", headers=None)``: the next request of kind
  ``on`` (``create``, ``get``, ``cancel``, ``files``, ``secret``) answers so, as problem+json
  ``{title, status, detail}`` (queued, in order).
- ``throttle_next(retry_after=30, on="create")``: a 429 with ``Retry-After`` and Replicate's
  ``{"detail": "Request was throttled. Your rate limit resets in ~30s."}``.
- ``release(prediction_id=None)``: held predictions (one, or all) may end; one with no steps
  left ends at once (and its webhooks go).
- ``require``, ``versions``, ``max_wait``: see above.
- ``signed(body, timestamp=None)``: Standard Webhooks headers for a body, signed as the fake
  signs (a test's own, or a stale, webhook).

Recorded: ``requests`` (:class:`Recorded`: method, path, lower-case headers, json, form, files),
``predictions`` (id -> the prediction as last shown, from its creation on), ``uploads``
(id -> :class:`Upload`), ``webhooks`` (:class:`SentWebhook`). ``requests_to(path, method)``
filters the first; ``url`` is where the fake listens.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import email.policy
import functools
import hashlib
import io
import json
import secrets
import threading
import time
import wave
from collections import defaultdict, deque
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.parser import BytesParser
from http import HTTPStatus
from typing import Any, Literal

import httpx
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from standardwebhooks import Webhook

from tests.support import serve_in_thread, tiny_png

__all__ = [
    "Recorded",
    "ReplicateState",
    "Script",
    "SentWebhook",
    "Upload",
    "create_app",
    "running",
    "tqdm_line",
]

RequestKind = Literal["create", "get", "cancel", "files", "secret"]
Output = Literal["image", "images", "video", "audio", "text", "data_uri"]
End = Literal["succeeded", "failed", "canceled", "aborted"]
TERMINAL = frozenset({"succeeded", "failed", "canceled", "aborted"})
ALL_EVENTS = frozenset({"start", "output", "logs", "completed"})
THROTTLED_EVENTS = frozenset({"output", "logs"})
PROBLEM = "application/problem+json"
_ID_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789"
_MEDIA = {".png": "image/png", ".mp4": "video/mp4", ".wav": "audio/wav"}


@dataclass(frozen=True)
class Script:
    """How a prediction runs. Each poll moves it one step: ``starting_polls`` polls answer
    ``starting`` (queued or booting), then one poll per ``progress`` percentage answers
    ``processing`` with a tqdm line added to ``logs``, then it stays ``processing`` while
    ``hold`` is set and it is not released, then the next poll shows ``end``."""

    starting_polls: int = 0
    progress: tuple[int, ...] = ()
    hold: bool = False
    end: End = "succeeded"
    error: str = "CUDA out of memory. Tried to allocate 2.00 GiB"
    output: Output = "image"


@dataclass(frozen=True)
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    json: Any = None
    form: dict[str, str] = field(default_factory=dict)
    files: dict[str, Upload] = field(default_factory=dict)


@dataclass(frozen=True)
class Upload:
    filename: str
    content_type: str
    data: bytes


@dataclass(frozen=True)
class SentWebhook:
    url: str
    event: str
    prediction_id: str
    headers: dict[str, str]
    body: bytes
    status: int | None  # the receiver's answer; None when it could not be reached


@dataclass(frozen=True)
class _Failure:
    status: int
    body: dict[str, Any]
    headers: dict[str, str]


@dataclass
class _Job:
    prediction: dict[str, Any]
    script: Script
    starting_left: int
    progress_left: deque[int]
    changed: asyncio.Event
    webhook: str | None = None
    webhook_completed: str | None = None
    events: frozenset[str] = ALL_EVENTS
    released: bool = False
    last_sent: dict[str, float] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return str(self.prediction["id"])

    @property
    def done(self) -> bool:
        return self.prediction["status"] in TERMINAL

    @property
    def steps_left(self) -> bool:
        return self.starting_left > 0 or bool(self.progress_left)


@dataclass
class ReplicateState:
    url: str = ""  # where the fake listens, once running() serves it
    token: str = field(default="r8_fake0000000000000000000000000000000000", repr=False)
    secret: str = field(
        default_factory=lambda: "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode(),
        repr=False,
    )
    script: Script = field(default_factory=Script)
    require: dict[str, list[str]] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)  # version hash -> owner/name
    max_wait: float = 1.0  # how long a Prefer: wait holds a held prediction, at most
    requests: list[Recorded] = field(default_factory=list, repr=False)
    predictions: dict[str, dict[str, Any]] = field(default_factory=dict, repr=False)
    uploads: dict[str, Upload] = field(default_factory=dict, repr=False)
    webhooks: list[SentWebhook] = field(default_factory=list, repr=False)
    _failures: dict[str, deque[_Failure]] = field(
        default_factory=lambda: defaultdict(deque), repr=False
    )
    _jobs: dict[str, _Job] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _loop: asyncio.AbstractEventLoop | None = field(default=None, repr=False)
    _outbox: asyncio.Queue[tuple[str, str, str, bytes]] | None = field(default=None, repr=False)

    # --- scripting, from the test ------------------------------------------------------------

    def fail_next(
        self,
        status: int,
        detail: str | None = None,
        *,
        on: RequestKind = "create",
        headers: dict[str, str] | None = None,
    ) -> None:
        title = HTTPStatus(status).phrase
        body = {"title": title, "status": status, "detail": detail or title}
        with self._lock:
            self._failures[on].append(_Failure(status, body, headers or {}))

    def throttle_next(self, retry_after: int = 30, *, on: RequestKind = "create") -> None:
        detail = f"Request was throttled. Your rate limit resets in ~{retry_after}s."
        failure = _Failure(429, {"detail": detail}, {"Retry-After": str(retry_after)})
        with self._lock:
            self._failures[on].append(failure)

    def release(self, prediction_id: str | None = None) -> None:
        with self._lock:
            for job in self._jobs.values():
                if prediction_id in (None, job.id):
                    job.released = True
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._end_released)

    def requests_to(self, path: str, method: str | None = None) -> list[Recorded]:
        with self._lock:
            return [r for r in self.requests if r.path == path and method in (None, r.method)]

    def signed(self, body: bytes, *, timestamp: int | None = None) -> dict[str, str]:
        """Standard Webhooks headers for ``body``, as this fake signs its webhooks."""
        msg_id = f"msg_{secrets.token_hex(12)}"
        stamp = int(time.time()) if timestamp is None else timestamp
        when = datetime.fromtimestamp(stamp, UTC)
        signature = Webhook(self.secret).sign(msg_id, when, body)
        return {
            "webhook-id": msg_id,
            "webhook-timestamp": str(stamp),
            "webhook-signature": signature,
        }

    # --- the fake's own side ------------------------------------------------------------------

    def _failure(self, kind: RequestKind) -> _Failure | None:
        with self._lock:
            queue = self._failures[kind]
            return queue.popleft() if queue else None

    def _record(self, entry: Recorded) -> None:
        with self._lock:
            self.requests.append(entry)

    def _publish(self, job: _Job) -> dict[str, Any]:
        with self._lock:
            self.predictions[job.id] = dict(job.prediction)
        return job.prediction

    def _end_released(self) -> None:
        for job in list(self._jobs.values()):
            if job.released and not job.done and not job.steps_left:
                self._end(job)

    def _advance(self, job: _Job) -> None:
        """One step of the script (a poll, or the time a Prefer: wait stands for)."""
        if job.done:
            return
        if job.starting_left > 0:
            job.starting_left -= 1
            return
        self._start(job)
        if job.progress_left:
            percent = job.progress_left.popleft()
            job.prediction["logs"] += tqdm_line(percent) + "\n"
            self._notify(job, "logs")
            return
        if job.script.hold and not job.released:
            return
        self._end(job)

    def _start(self, job: _Job) -> None:
        if job.prediction["status"] == "starting":
            job.prediction["status"] = "processing"
            job.prediction["started_at"] = _now()

    def _end(self, job: _Job, status: str | None = None) -> None:
        self._start(job)
        end = status or job.script.end
        prediction = job.prediction
        prediction["status"] = end
        prediction["completed_at"] = _now()
        prediction["metrics"] = {"predict_time": 0.01, "total_time": 0.02}
        if end == "succeeded":
            prediction["output"] = _output(job)
            self._notify(job, "output")
        elif end == "failed":
            prediction["error"] = job.script.error
        self._notify(job, "completed")
        self._publish(job)
        job.changed.set()

    def _notify(self, job: _Job, event: str) -> None:
        targets = [job.webhook] if job.webhook and event in job.events else []
        if event == "completed" and job.webhook_completed:
            targets.append(job.webhook_completed)
        now = time.monotonic()
        if event in THROTTLED_EVENTS and now - job.last_sent.get(event, -1.0) < 0.5:
            return
        job.last_sent[event] = now
        body = json.dumps(job.prediction).encode()  # as it is now, not when delivered
        for url in targets:
            if self._outbox is not None:
                self._outbox.put_nowait((url, event, job.id, body))

    async def _deliver(self, client: httpx.AsyncClient) -> None:
        assert self._outbox is not None
        while True:
            url, event, prediction_id, body = await self._outbox.get()
            headers = self.signed(body)
            status: int | None
            try:
                answer = await client.post(
                    url, content=body, headers={**headers, "content-type": "application/json"}
                )
                status = answer.status_code
            except httpx.HTTPError:
                status = None
            sent = SentWebhook(url, event, prediction_id, headers, body, status)
            with self._lock:
                self.webhooks.append(sent)


def tqdm_line(percent: int, total: int = 20) -> str:
    """A progress line as tqdm prints it into a prediction's logs."""
    done = total * percent // 100
    bar = ("█" * (percent // 10)).ljust(10)
    return f"{percent:3d}%|{bar}| {done}/{total} [00:0{percent // 50}<00:01,  9.87it/s]"


# --- the app ----------------------------------------------------------------------------------


@contextmanager
def running(state: ReplicateState | None = None) -> Iterator[ReplicateState]:
    """Serve a fake on loopback for the ``with`` block; its URL is ``state.url``."""
    state = state if state is not None else ReplicateState()
    with serve_in_thread(create_app(state)) as url:
        state.url = url
        try:
            yield state
        finally:
            state.release()  # no held answer outlives the test


def create_app(state: ReplicateState) -> FastAPI:
    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        state._loop = asyncio.get_running_loop()
        state._outbox = asyncio.Queue()
        async with httpx.AsyncClient(trust_env=False, timeout=10.0) as client:
            worker = asyncio.create_task(state._deliver(client))
            try:
                yield
            finally:
                worker.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await worker

    app = FastAPI(lifespan=lifespan)
    routes = _Routes(state)
    app.post("/v1/models/{owner}/{name}/predictions")(routes.create_for_model)
    app.post("/v1/predictions")(routes.create_for_version)
    app.get("/v1/predictions/{prediction_id}")(routes.get)
    app.post("/v1/predictions/{prediction_id}/cancel")(routes.cancel)
    app.get("/v1/predictions/{prediction_id}/stream")(routes.stream)
    app.post("/v1/files")(routes.upload)
    app.get("/v1/files/{file_id}")(routes.file)
    app.get("/v1/webhooks/default/secret")(routes.secret)
    app.get("/output/{prediction_id}/{name}")(routes.output)
    return app


class _Routes:
    def __init__(self, state: ReplicateState) -> None:
        self.state = state

    async def create_for_model(self, owner: str, name: str, request: Request) -> Response:
        return await self._create(request, f"{owner}/{name}")

    async def create_for_version(self, request: Request) -> Response:
        return await self._create(request, None)

    async def get(self, prediction_id: str, request: Request) -> Response:
        refused = await self._gate(request, "get")
        if refused is not None:
            return refused
        job = self.state._jobs.get(prediction_id)
        if job is None:
            return _problem(404, "Not found", "The requested resource could not be found.")
        self.state._advance(job)
        return JSONResponse(self.state._publish(job))

    async def cancel(self, prediction_id: str, request: Request) -> Response:
        refused = await self._gate(request, "cancel")
        if refused is not None:
            return refused
        job = self.state._jobs.get(prediction_id)
        if job is None:
            return _problem(404, "Not found", "The requested resource could not be found.")
        if not job.done:
            self.state._end(job, "canceled")
        return JSONResponse(self.state._publish(job))

    async def stream(self, prediction_id: str, request: Request) -> Response:
        refused = await self._gate(request, None)
        if refused is not None:
            return refused
        job = self.state._jobs.get(prediction_id)
        if job is None:
            return _problem(404, "Not found", "The requested resource could not be found.")
        while not job.done and (job.steps_left or not job.script.hold or job.released):
            self.state._advance(job)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(job.changed.wait(), 60.0)
        return Response(_events(job), media_type="text/event-stream")

    async def upload(self, request: Request) -> Response:
        fields, files = await _multipart(request)
        refused = await self._gate(request, "files", form=fields, files=files)
        if refused is not None:
            return refused
        if "content" not in files:
            return _invalid("content", "Required")
        file_id = _new_id()
        with self.state._lock:
            self.state.uploads[file_id] = files["content"]
        metadata = json.loads(fields.get("metadata", "{}"))
        return JSONResponse(_file_object(request, file_id, files["content"], metadata), 201)

    async def file(self, file_id: str, request: Request) -> Response:
        refused = await self._gate(request, None)
        if refused is not None:
            return refused
        upload = self.state.uploads.get(file_id)
        if upload is None:
            return _problem(404, "Not found", "The requested resource could not be found.")
        return JSONResponse(_file_object(request, file_id, upload, {}))

    async def secret(self, request: Request) -> Response:
        refused = await self._gate(request, "secret")
        return refused or JSONResponse({"key": self.state.secret})

    async def output(self, prediction_id: str, name: str) -> Response:
        suffix = name[name.rfind(".") :]
        if prediction_id not in self.state._jobs or suffix not in _MEDIA:
            return Response(status_code=404)
        return Response(_media_bytes(suffix), media_type=_MEDIA[suffix])

    # --- creating ---------------------------------------------------------------------------

    async def _create(self, request: Request, model: str | None) -> Response:
        body = await _json_or_none(request)
        refused = await self._gate(request, "create", body=body)
        if refused is not None:
            return refused
        if not isinstance(body, dict) or not isinstance(body.get("input"), dict):
            return _invalid("input", "Invalid type. Expected: object, given: null")
        if model is None:
            resolved = self._resolve(body.get("version"))
            if resolved is None:
                return _problem(422, "Invalid version", "Invalid version or not permitted")
            model, version = resolved
        else:
            version = hashlib.sha256(model.encode()).hexdigest()
        missing = [f for f in self.state.require.get(model, []) if f not in body["input"]]
        if missing:
            return _invalid(f"input.{missing[0]}", f"{missing[0]} is required")
        job = self._new_job(request, body, model, version)
        await self._hold(job, _prefer_wait(request.headers.get("prefer")))
        return JSONResponse(self.state._publish(job), status_code=201)

    def _resolve(self, version: object) -> tuple[str, str] | None:
        if not isinstance(version, str) or not version:
            return None
        model, _, hash_ = version.rpartition(":")
        if model and "/" in model:
            return model, hash_
        return self.state.versions.get(hash_, "unknown/unknown"), hash_

    def _new_job(self, request: Request, body: dict[str, Any], model: str, version: str) -> _Job:
        prediction_id = _new_id()
        base = _base(request)
        urls = {
            "get": f"{base}/v1/predictions/{prediction_id}",
            "cancel": f"{base}/v1/predictions/{prediction_id}/cancel",
            "web": f"https://replicate.com/p/{prediction_id}",
        }
        if body.get("stream"):
            urls["stream"] = f"{base}/v1/predictions/{prediction_id}/stream"
        prediction = {
            "id": prediction_id, "model": model, "version": version, "input": body["input"],
            "logs": "", "output": None, "data_removed": False, "error": None,
            "status": "starting", "created_at": _now(), "started_at": None,
            "completed_at": None, "metrics": {}, "urls": urls,
        }  # fmt: skip
        script = self.state.script
        job = _Job(
            prediction, script, script.starting_polls, deque(script.progress), asyncio.Event()
        )
        job.webhook, job.webhook_completed = body.get("webhook"), body.get("webhook_completed")
        if isinstance(body.get("webhook_events_filter"), list):
            job.events = frozenset(body["webhook_events_filter"])
        with self.state._lock:
            self.state._jobs[prediction_id] = job
        self.state._publish(job)
        self.state._notify(job, "start")
        return job

    async def _hold(self, job: _Job, wait: float | None) -> None:
        """``Prefer: wait``: hold while the prediction runs, then answer it as it is."""
        if wait is None or job.steps_left:
            return
        self.state._advance(job)
        if not job.done:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(job.changed.wait(), min(wait, self.state.max_wait))

    async def _gate(
        self,
        request: Request,
        kind: RequestKind | None,
        *,
        body: Any = None,
        form: dict[str, str] | None = None,
        files: dict[str, Upload] | None = None,
    ) -> Response | None:
        """Record the request; answer a missing token, or a scripted failure, here."""
        if body is None and request.method == "POST" and form is None:
            body = await _json_or_none(request)
        headers = {k.lower(): v for k, v in request.headers.items()}
        entry = Recorded(request.method, request.url.path, headers, body, form or {}, files or {})
        self.state._record(entry)
        if headers.get("authorization") != f"Bearer {self.state.token}":
            detail = "You did not pass a valid authentication token"
            return _problem(401, "Unauthenticated", detail)
        failure = self.state._failure(kind) if kind is not None else None
        if failure is None:
            return None
        media = "application/json" if failure.status == 429 else PROBLEM
        return JSONResponse(failure.body, failure.status, headers=failure.headers, media_type=media)


# --- shapes -----------------------------------------------------------------------------------


def _problem(status: int, title: str, detail: str, **extra: Any) -> Response:
    body = {"title": title, "status": status, "detail": detail, **extra}
    return JSONResponse(body, status, media_type=PROBLEM)


def _invalid(field_name: str, description: str) -> Response:
    detail = f"- {field_name}: {description}\n"
    invalid = [{"type": "required", "field": field_name, "description": description}]
    return _problem(422, "Input validation failed", detail, invalid_fields=invalid)


def _file_object(
    request: Request, file_id: str, upload: Upload, metadata: dict[str, Any]
) -> dict[str, Any]:
    return {
        "id": file_id, "name": upload.filename, "content_type": upload.content_type,
        "size": len(upload.data), "etag": hashlib.md5(upload.data).hexdigest(),
        "checksums": {
            "sha256": hashlib.sha256(upload.data).hexdigest(),
            "md5": hashlib.md5(upload.data).hexdigest(),
        },
        "metadata": metadata, "created_at": _now(), "expires_at": None,
        "urls": {"get": f"{_base(request)}/v1/files/{file_id}"},
    }  # fmt: skip


def _output(job: _Job) -> Any:
    base = job.prediction["urls"]["get"].rsplit("/v1/", 1)[0]
    files = f"{base}/output/{job.id}"
    kind = job.script.output
    if kind == "images":
        return [f"{files}/out-0.png", f"{files}/out-1.png"]
    if kind == "text":
        return "a transcript from the fake"
    if kind == "data_uri":
        return "data:image/png;base64," + base64.b64encode(tiny_png()).decode()
    name = {"image": "out-0.png", "video": "output.mp4", "audio": "output.wav"}[kind]
    return f"{files}/{name}"


def _events(job: _Job) -> bytes:
    prediction = job.prediction
    lines: list[str] = []
    if prediction["status"] == "succeeded":
        output = prediction["output"]
        for n, item in enumerate(output if isinstance(output, list) else [output]):
            lines += ["event: output", f"id: {job.id}:{n}", f"data: {item}", ""]
        lines += ["event: done", f"id: {job.id}:done", "data: {}", ""]
    elif prediction["status"] == "failed":
        lines += ["event: error", f"id: {job.id}:error", f"data: {prediction['error']}", ""]
    else:
        reason = json.dumps({"reason": prediction["status"]})
        lines += ["event: done", f"id: {job.id}:done", f"data: {reason}", ""]
    return ("\n".join(lines) + "\n").encode()


@functools.cache
def _media_bytes(suffix: str) -> bytes:
    if suffix == ".png":
        return tiny_png()
    if suffix == ".wav":
        return _tiny_wav()
    return _tiny_mp4()


def _tiny_wav() -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(8000)
        out.writeframes(b"\x00\x00" * 800)
    return buffer.getvalue()


def _tiny_mp4() -> bytes:
    import av
    import numpy as np

    buffer = io.BytesIO()
    with av.open(buffer, "w", format="mp4") as container:
        stream = container.add_stream("mpeg4", rate=8)
        stream.width, stream.height, stream.pix_fmt = 16, 16, "yuv420p"
        for _ in range(4):
            frame = av.VideoFrame.from_ndarray(np.zeros((16, 16, 3), np.uint8), format="rgb24")
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return buffer.getvalue()


def _prefer_wait(value: str | None) -> float | None:
    """``Prefer: wait`` holds up to 60 s; ``wait=N`` up to N (1 to 60)."""
    for part in (value or "").split(","):
        name, _, seconds = part.strip().partition("=")
        if name == "wait":
            return float(min(max(int(seconds or 60), 1), 60))
    return None


async def _multipart(request: Request) -> tuple[dict[str, str], dict[str, Upload]]:
    """A form's fields and files, parsed with the standard library's MIME parser (the fake
    needs no python-multipart); a part with a file name is a file, as the SDK sends them."""
    content_type = request.headers.get("content-type", "")
    if not content_type.startswith("multipart/form-data"):
        return {}, {}
    header = f"Content-Type: {content_type}\r\n\r\n".encode()
    message = BytesParser(policy=email.policy.HTTP).parsebytes(header + await request.body())
    fields: dict[str, str] = {}
    files: dict[str, Upload] = {}
    for part in message.iter_parts():
        name = str(part.get_param("name", "", header="content-disposition"))
        data = part.get_payload(decode=True)
        data = data if isinstance(data, bytes) else b""
        filename = part.get_filename()
        if filename is None:
            fields[name] = data.decode()
        else:
            files[name] = Upload(filename, str(part.get("content-type", "")), data)
    return fields, files


async def _json_or_none(request: Request) -> Any:
    try:
        return await request.json()
    except ValueError:
        return None


def _base(request: Request) -> str:
    return str(request.base_url).rstrip("/")


def _new_id() -> str:
    return "".join(secrets.choice(_ID_ALPHABET) for _ in range(26))


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")
