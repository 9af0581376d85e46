"""A lean loopback fake of fal.ai's queue API, for ``providers.py``: both sides of that
benchmark (a fal user with httpx, and hyperlocal's fal adapter) call this one process.

Run by uvicorn as ``_fal_fake:create --factory``. It speaks the same protocol as
``tests/providers/fakes/fal.py`` (providers.md §1), but keeps only what a completed image job
needs, so that the fake costs as little CPU per job as it can and is never the bottleneck:
no request log, no scripts, webhooks sent from one shared async client (the test fake starts a
thread and a new client for each).

- ``POST /{endpoint}[?fal_webhook=url]`` -> ``{status: IN_QUEUE, request_id, response_url,
  status_url, cancel_url, queue_position: 0}``. The job finishes ``BENCH_FAL_JOB_MS`` after
  the submit (0, the default: at once).
- ``GET /{owner}/{app}/requests/{id}/status`` -> 202 ``IN_PROGRESS`` until then, then 200
  ``COMPLETED`` (with ``logs`` and ``metrics``); ``.../status/stream``: the same statuses as
  server-sent events, closed after COMPLETED.
- ``GET /{owner}/{app}/requests/{id}`` -> ``{images: [{url, content_type, width, height}], ...}``;
  the image is ``BENCH_FAL_IMAGE`` (a PNG), served at ``/files/image.png``.
- ``PUT .../cancel`` -> 202 ``CANCELLATION_REQUESTED`` or 400 ``ALREADY_COMPLETED``.
- When a job finishes and it has a ``fal_webhook``: an ED25519-signed POST ``{request_id,
  gateway_request_id, status: OK, payload}`` with the four ``X-Fal-Webhook-*`` headers; the
  public key is at ``/.well-known/jwks.json``.

Every call but the file and the key set needs ``Authorization: Key <BENCH_FAL_KEY>``.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

__all__ = ["USER_ID", "create"]

USER_ID = "bench-fal-user"
_NAMESPACES = ("workflows", "comfy")


@dataclass(slots=True)
class _Job:
    app: str  # owner/app: what status, result and cancel take
    done_at: float  # time.monotonic()
    webhook_url: str | None
    canceled: bool = False


class _Fal:
    """The fake's state: its jobs, its signing key, its one outgoing client."""

    def __init__(self, key: str, job_s: float, image: bytes, side: int) -> None:
        self.key, self.job_s, self.image, self.side = key, job_s, image, side
        self.jobs: dict[str, _Job] = {}
        self.signing_key = Ed25519PrivateKey.generate()
        self.http: httpx.AsyncClient | None = None
        self.pending: set[asyncio.Task[None]] = set()

    def authorized(self, request: Request) -> bool:
        return request.headers.get("authorization") == f"Key {self.key}"

    def jwks(self) -> dict[str, Any]:
        raw = self.signing_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        x = base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
        return {"keys": [{"kty": "OKP", "crv": "Ed25519", "x": x, "kid": "bench"}]}

    def output(self, base: str) -> dict[str, Any]:
        image = {
            "url": f"{base}/files/image.png",
            "content_type": "image/png",
            "width": self.side,
            "height": self.side,
        }
        return {"images": [image], "seed": 42, "has_nsfw_concepts": [False], "prompt": ""}

    def submitted(self, job_id: str, job: _Job, base: str) -> None:
        self.jobs[job_id] = job
        if job.webhook_url:
            delay = max(0.0, job.done_at - time.monotonic())
            asyncio.get_running_loop().call_later(delay, self._notify, job_id, job, base)

    def _notify(self, job_id: str, job: _Job, base: str) -> None:
        if job.canceled:
            return
        task = asyncio.create_task(self._deliver(job_id, job, base))
        self.pending.add(task)
        task.add_done_callback(self.pending.discard)

    async def _deliver(self, job_id: str, job: _Job, base: str) -> None:
        body = {
            "request_id": job_id,
            "gateway_request_id": job_id,
            "status": "OK",
            "payload": self.output(base),
        }
        raw = json.dumps(body).encode()
        headers = {"content-type": "application/json", **self._signed(job_id, raw)}
        assert self.http is not None and job.webhook_url is not None
        try:
            await self.http.post(job.webhook_url, content=raw, headers=headers)
        except httpx.HTTPError:
            return  # fal retries; this fake does not, and the poll still finds the job

    def _signed(self, job_id: str, body: bytes) -> dict[str, str]:
        stamp = str(int(time.time()))
        digest = hashlib.sha256(body).hexdigest()
        message = f"{job_id}\n{USER_ID}\n{stamp}\n{digest}".encode()
        return {
            "x-fal-webhook-request-id": job_id,
            "x-fal-webhook-user-id": USER_ID,
            "x-fal-webhook-timestamp": stamp,
            "x-fal-webhook-signature": self.signing_key.sign(message).hex(),
        }


def _app_of(endpoint: str) -> str:
    parts = endpoint.strip("/").split("/")
    return "/".join(parts[: 3 if parts[0] in _NAMESPACES else 2])


def _urls(base: str, app: str, job_id: str) -> dict[str, str]:
    url = f"{base}/{app}/requests/{job_id}"
    return {
        "request_id": job_id,
        "response_url": url,
        "status_url": f"{url}/status",
        "cancel_url": f"{url}/cancel",
    }


def _status(job: _Job, request: Request) -> dict[str, Any]:
    body: dict[str, Any] = {**_urls(_base(request), job.app, request.path_params["request_id"])}
    if time.monotonic() < job.done_at and not job.canceled:
        return body | {"status": "IN_PROGRESS", "logs": None}
    return body | {"status": "COMPLETED", "logs": None, "metrics": {"inference_time": 0.0}}


async def _events(job: _Job, request: Request) -> AsyncIterator[str]:
    """The status stream: IN_PROGRESS while the job runs, then COMPLETED, and the end."""
    while (status := _status(job, request))["status"] != "COMPLETED":
        yield f"data: {json.dumps(status)}\n\n"
        await asyncio.sleep(max(0.0, job.done_at - time.monotonic()))
    yield f"data: {json.dumps(status)}\n\n"


def _base(request: Request) -> str:
    return str(request.base_url).rstrip("/")


_UNAUTHORIZED = {"detail": "Unauthorized: invalid API key"}
_NOT_FOUND = {"detail": "Request not found"}


class _Routes:
    def __init__(self, fal: _Fal) -> None:
        self.fal = fal

    async def jwks(self, _request: Request) -> JSONResponse:
        return JSONResponse(self.fal.jwks())

    async def image(self, _request: Request) -> Response:
        return Response(self.fal.image, media_type="image/png")

    async def submit(self, request: Request) -> JSONResponse:
        if not self.fal.authorized(request):
            return JSONResponse(_UNAUTHORIZED, 401)
        body = await request.body()
        if not isinstance(json.loads(body or b"null"), dict):
            return JSONResponse({"detail": "Input should be a valid dictionary"}, 422)
        job_id, base = str(uuid.uuid4()), _base(request)
        app = _app_of(request.path_params["endpoint"])
        done_at = time.monotonic() + self.fal.job_s
        self.fal.submitted(
            job_id, _Job(app, done_at, request.query_params.get("fal_webhook")), base
        )
        answer = {**_urls(base, app, job_id), "status": "IN_QUEUE", "queue_position": 0}
        return JSONResponse(answer | {"gateway_request_id": job_id})

    async def status(self, request: Request) -> JSONResponse:
        job = self._job(request)
        if isinstance(job, JSONResponse):
            return job
        status = _status(job, request)
        return JSONResponse(status, 200 if status["status"] == "COMPLETED" else 202)

    async def status_stream(self, request: Request) -> Response:
        job = self._job(request)
        if isinstance(job, JSONResponse):
            return job
        return StreamingResponse(_events(job, request), media_type="text/event-stream")

    async def result(self, request: Request) -> JSONResponse:
        job = self._job(request)
        if isinstance(job, JSONResponse):
            return job
        if job.canceled:
            return JSONResponse({"detail": "Request was cancelled"}, 400)
        if time.monotonic() < job.done_at:
            return JSONResponse({"detail": "Request is still in progress"}, 400)
        return JSONResponse(self.fal.output(_base(request)))

    async def cancel(self, request: Request) -> JSONResponse:
        job = self._job(request)
        if isinstance(job, JSONResponse):
            return job
        if time.monotonic() >= job.done_at or job.canceled:
            return JSONResponse({"status": "ALREADY_COMPLETED"}, 400)
        job.canceled = True
        return JSONResponse({"status": "CANCELLATION_REQUESTED"}, 202)

    def _job(self, request: Request) -> _Job | JSONResponse:
        if not self.fal.authorized(request):
            return JSONResponse(_UNAUTHORIZED, 401)
        job = self.fal.jobs.get(request.path_params["request_id"])
        if job is None or job.app != request.path_params["app"]:
            return JSONResponse(_NOT_FOUND, 404)
        return job


def create() -> Starlette:
    """The fake, configured from ``BENCH_FAL_KEY``, ``BENCH_FAL_IMAGE`` (a PNG file),
    ``BENCH_FAL_SIDE`` (its width in pixels, for the output JSON) and ``BENCH_FAL_JOB_MS``."""
    image = Path(os.environ["BENCH_FAL_IMAGE"]).read_bytes()
    job_s = float(os.environ.get("BENCH_FAL_JOB_MS", "0")) / 1000
    fal = _Fal(os.environ["BENCH_FAL_KEY"], job_s, image, int(os.environ["BENCH_FAL_SIDE"]))
    routes = _Routes(fal)

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        limits = httpx.Limits(max_connections=256, max_keepalive_connections=64)
        async with httpx.AsyncClient(trust_env=False, limits=limits, timeout=10) as http:
            fal.http = http
            yield

    requests = "/{app:path}/requests/{request_id}"
    return Starlette(
        routes=[
            Route("/.well-known/jwks.json", routes.jwks),
            Route("/files/image.png", routes.image),
            Route(f"{requests}/status", routes.status),
            Route(f"{requests}/status/stream", routes.status_stream),
            Route(f"{requests}/cancel", routes.cancel, methods=["PUT"]),
            Route(requests, routes.result),
            Route("/{endpoint:path}", routes.submit, methods=["POST"]),
        ],
        lifespan=lifespan,
    )
