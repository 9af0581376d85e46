"""A loopback fake of the Black Forest Labs (FLUX) API, as docs/providers.md §5 "BFL" and §7
describe it (and BFL's API reference at docs.bfl.ml for the shapes of its answers).

Use::

    state = BflState()                        # accepts x-key == state.key
    with serve_in_thread(create_app(state)) as url:
        context = ProviderContext(name="bfl", key=state.key, base_url=url, http=client, ...)

What it speaks:

- ``POST /v1/{model}`` (a known BFL endpoint, else 404): checks ``x-key`` (401), ``prompt``,
  ``output_format`` (jpeg|png), ``aspect_ratio`` (between 21:9 and 9:21), ``safety_tolerance``
  (0-6) and every ``input_image*`` (a URL, or base64 of a real PNG/JPEG, no ``data:`` prefix),
  answering 422 ``{"detail": [{"loc", "msg", "type"}]}`` as FastAPI does. Accepted:
  ``{"id", "polling_url", "cost", "input_mp", "output_mp"}``.
- ``GET /v1/get_result?id=``: ``{"id", "status", "result", "progress", "details",
  "preview"}``, status Pending (with a climbing ``progress``) then the scripted outcome:
  Ready with ``result.sample`` (a URL of this fake), Error with ``error``, Request Moderated,
  Content Moderated; an unknown id answers "Task not found".
- ``GET /files/{id}.{png|jpeg}``: the output, a real small image. No key needed: BFL's
  delivery URLs are signed.

Scripting, on the public :class:`BflState` (between requests, from the test's thread):

- ``requests``: every request received, as :class:`Recorded` (method, path, query, headers
  with lower-case names, json body).
- ``fail_next_submit(status, body=None, headers=None)``: the next submit answers so (queued;
  the body defaults to BFL's for that status, e.g. 429's ``rate_limit_exceeded``).
- ``fail_next_poll(status)``: the next poll answers that HTTP status (queued).
- ``pending_polls``: how many polls answer Pending before the outcome (default 2).
- ``gate``: a ``threading.Event``; while it is set to one that is not set, jobs stay Pending.
- ``outcome``: the terminal status (``Ready``, ``Error``, ``Request Moderated``,
  ``Content Moderated`` or ``Task not found``), with ``error_message`` for ``Error``.
- ``polling_base``: where ``polling_url`` points (default: this fake).
- ``cost``: the credits reported at submit (None leaves it out).
- ``jobs``: the accepted jobs by id, each with its body and how often it was polled.

BFL's webhooks are not faked: their signature format is unconfirmed (providers.md §8), so
hyperlocal never asks for them.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import threading
import uuid
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse

__all__ = ["ENDPOINTS", "BflState", "Job", "Recorded", "create_app"]

ENDPOINTS = frozenset(
    {
        "flux-2-klein-4b",
        "flux-2-klein-9b",
        "flux-2-pro",
        "flux-2-max",
        "flux-2-flex",
        "flux-pro-1.1",
        "flux-pro-1.1-ultra",
        "flux-pro-1.1-raw",
        "flux-kontext-pro",
        "flux-kontext-max",
        "flux-pro-1.0-fill",
    }
)
OUTCOMES = frozenset({"Ready", "Error", "Request Moderated", "Content Moderated", "Task not found"})
_IMAGE_FIELDS = ("input_image", *(f"input_image_{n}" for n in range(2, 9)))
_MAGIC = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff")
_DEFAULT_ERRORS: dict[int, Any] = {
    402: {"error": "insufficient_credits", "message": "Insufficient credits"},
    422: {"detail": [{"loc": ["body"], "msg": "Invalid request", "type": "value_error"}]},
    429: {
        "error": "rate_limit_exceeded",
        "message": "Too many concurrent requests",
        "retry_after": 5,
    },
    500: {"detail": "Internal Server Error"},
    502: {"detail": "Bad Gateway"},
    503: {"detail": "Service Unavailable"},
}


@dataclass(frozen=True)
class Recorded:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    json: Any


@dataclass
class Job:
    id: str
    model: str
    body: dict[str, Any]
    polls: int = 0


@dataclass(frozen=True)
class _Scripted:
    status: int
    body: Any
    headers: dict[str, str]


@dataclass
class BflState:
    key: str = "bfl-test-key"
    pending_polls: int = 2
    outcome: str = "Ready"
    error_message: str = "Generation failed: the model ran out of memory"
    gate: threading.Event | None = None
    polling_base: str | None = None
    cost: float | None = 4.0
    requests: list[Recorded] = field(default_factory=list)
    jobs: dict[str, Job] = field(default_factory=dict)
    _submits: deque[_Scripted] = field(default_factory=deque)
    _polls: deque[int] = field(default_factory=deque)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def fail_next_submit(
        self, status: int, body: Any = None, headers: dict[str, str] | None = None
    ) -> None:
        answer = _DEFAULT_ERRORS.get(status, {"detail": "error"}) if body is None else body
        self._submits.append(_Scripted(status, answer, dict(headers or {})))

    def fail_next_poll(self, status: int) -> None:
        self._polls.append(status)

    def submits(self) -> list[Recorded]:
        return [r for r in self.requests if r.method == "POST"]

    def polls(self) -> list[Recorded]:
        return [r for r in self.requests if r.path == "/v1/get_result"]


def create_app(state: BflState) -> FastAPI:
    app = FastAPI()
    _record_into(app, state)
    _serve_submit(app, state)
    _serve_results(app, state)
    _serve_files(app, state)
    return app


def _record_into(app: FastAPI, state: BflState) -> None:
    @app.middleware("http")
    async def record(request: Request, call_next: Any) -> Response:
        raw = await request.body()
        state.requests.append(
            Recorded(
                method=request.method,
                path=request.url.path,
                query=dict(request.query_params),
                headers={k.lower(): v for k, v in request.headers.items()},
                json=_parsed(raw),
            )
        )
        response: Response = await call_next(request)
        return response


def _serve_submit(app: FastAPI, state: BflState) -> None:
    @app.post("/v1/{model}")
    async def submit(model: str, request: Request) -> Response:
        refused = _refused(state, request)
        if refused is not None:
            return refused
        if model not in ENDPOINTS:
            return JSONResponse({"detail": "Not Found"}, status_code=404)
        with state._lock:
            scripted = state._submits.popleft() if state._submits else None
        if scripted is not None:
            return JSONResponse(scripted.body, scripted.status, headers=scripted.headers)
        body = _parsed(await request.body())
        problems = _problems(body)
        if problems:
            return JSONResponse({"detail": problems}, status_code=422)
        return JSONResponse(_accept(state, model, body, str(request.base_url)))


def _serve_results(app: FastAPI, state: BflState) -> None:
    @app.get("/v1/get_result")
    async def get_result(request: Request, id: str = "") -> Response:
        refused = _refused(state, request)
        if refused is not None:
            return refused
        with state._lock:
            failure = state._polls.popleft() if state._polls else None
        if failure is not None:
            return JSONResponse(_DEFAULT_ERRORS.get(failure, {"detail": "error"}), failure)
        return JSONResponse(_result(state, id, str(request.base_url)))


def _serve_files(app: FastAPI, state: BflState) -> None:
    @app.get("/files/{name}")
    async def files(name: str) -> Response:
        job_id, _, extension = name.rpartition(".")
        if job_id not in state.jobs or extension not in ("png", "jpeg"):
            return JSONResponse({"detail": "Not Found"}, status_code=404)
        return Response(_image(extension), media_type=f"image/{extension}")


def _refused(state: BflState, request: Request) -> Response | None:
    if request.headers.get("x-key") == state.key:
        return None
    return JSONResponse({"detail": "Not authenticated"}, status_code=401)


def _accept(state: BflState, model: str, body: dict[str, Any], base: str) -> dict[str, Any]:
    job = Job(id=str(uuid.uuid4()), model=model, body=body)
    state.jobs[job.id] = job
    poll_base = (state.polling_base or base).rstrip("/")
    answer: dict[str, Any] = {"id": job.id, "polling_url": f"{poll_base}/v1/get_result?id={job.id}"}
    if state.cost is not None:
        answer |= {"cost": state.cost, "input_mp": 1.05, "output_mp": 1.05}
    return answer


def _result(state: BflState, job_id: str, base: str) -> dict[str, Any]:
    job = state.jobs.get(job_id)
    reply: dict[str, Any] = {"id": job_id, "result": None, "progress": None}
    reply |= {"details": None, "preview": None}
    if job is None:
        return reply | {"status": "Task not found"}
    job.polls += 1
    held = state.gate is not None and not state.gate.is_set()
    if held or job.polls <= state.pending_polls:
        progress = min(job.polls / (state.pending_polls + 1), 0.99)
        return reply | {"status": "Pending", "progress": round(progress, 2)}
    return reply | _outcome(state, job, base)


def _outcome(state: BflState, job: Job, base: str) -> dict[str, Any]:
    if state.outcome == "Error":
        return {"status": "Error", "error": state.error_message}
    if state.outcome != "Ready":
        return {"status": state.outcome}
    extension = "jpeg" if job.body.get("output_format") == "jpeg" else "png"
    sample = f"{base.rstrip('/')}/files/{job.id}.{extension}"
    seed = job.body.get("seed", 42)
    return {
        "status": "Ready",
        "result": {"sample": sample, "prompt": job.body["prompt"], "seed": seed},
    }


def _problems(body: Any) -> list[dict[str, Any]]:
    if not isinstance(body, dict):
        return [_problem([], "Input should be a valid dictionary", "dict_type")]
    problems: list[dict[str, Any]] = []
    if not isinstance(body.get("prompt"), str):
        problems.append(_problem(["prompt"], "Field required", "missing"))
    if body.get("output_format") not in (None, "jpeg", "png"):
        problems.append(_problem(["output_format"], "Input should be 'jpeg' or 'png'", "enum"))
    if not _ratio_ok(body.get("aspect_ratio")):
        problems.append(
            _problem(["aspect_ratio"], "Aspect ratio must be between 21:9 and 9:21", "value_error")
        )
    tolerance = body.get("safety_tolerance", 2)
    if not isinstance(tolerance, int) or not 0 <= tolerance <= 6:
        problems.append(
            _problem(["safety_tolerance"], "Input should be between 0 and 6", "less_than_equal")
        )
    problems += [
        _problem([name], "Invalid image: give a URL or base64", "value_error")
        for name in _IMAGE_FIELDS
        if name in body and not _image_ok(body[name])
    ]
    return problems


def _problem(loc: list[str], msg: str, kind: str) -> dict[str, Any]:
    return {"loc": ["body", *loc], "msg": msg, "type": kind}


def _ratio_ok(value: Any) -> bool:
    if value is None:
        return True
    try:
        width, height = (int(part) for part in str(value).split(":"))
    except ValueError:
        return False
    return height > 0 and 9 / 21 <= width / height <= 21 / 9


def _image_ok(value: Any) -> bool:
    """A URL, or base64 of a PNG or JPEG: what BFL documents. A data: URI is neither."""
    if not isinstance(value, str):
        return False
    if value.startswith(("http://", "https://")):
        return True
    try:
        data = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return False
    return data.startswith(_MAGIC)


def _parsed(raw: bytes) -> Any:
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return None


def _image(extension: str) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (16, 16), (30, 90, 200)).save(
        buf, format="PNG" if extension == "png" else "JPEG"
    )
    return buf.getvalue()
