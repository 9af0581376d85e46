#!/usr/bin/env python
"""Benchmark what hyperlocal adds per job over calling fal directly (issue 17): p50 and p99
one job at a time, and jobs per second at ``--concurrency`` in flight, polled and webhooked.

One run starts one fal fake (``_fal_fake.py``, a uvicorn process) and two real
``hyperlocal serve`` processes (embedded: SQLite, in-process worker) whose ``flux-1-dev``
route ``fal:fal-ai/flux/dev`` points at that fake: one follows fal without webhooks (on fal's
status stream, as hyperlocal does by default; ``--no-status-stream``: by polls), the other is in
provider-webhook mode. Four ways to run a job, all from this process, each ending with the
image downloaded:

- *direct, polled*: what a fal user does with httpx: submit, poll the status on hyperlocal's
  own schedule until COMPLETED, GET the result, download the file;
- *hyperlocal, polled*: ``POST /v1/images/generate`` (async), poll ``GET /v1/jobs/{id}`` on
  the same schedule, download ``outputUrl``; hyperlocal follows fal's status stream (or, with
  ``--no-status-stream``, polls fal on that schedule too);
- *direct, webhook*: submit with ``?fal_webhook=`` to a receiver in this process, wait for the
  signed webhook (verified), GET the result, download;
- *hyperlocal, webhook*: submit with ``webhook_url`` to the same receiver, wait for hyperlocal's
  signed webhook (verified), download; fal's signed webhook brings hyperlocal the output.

See bench/README.md.

    .venv/bin/python bench/providers.py [--sequential 200] [--jobs 600] [--concurrency 32]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import hashlib
import hmac
import importlib.util
import io
import json
import math
import os
import secrets
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager, closing, contextmanager
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from functools import partial
from pathlib import Path
from time import perf_counter
from typing import Any

import httpx
import psutil
import uvicorn
from _load import percentile
from _report import Machine
from _server import BENCH_DIR, HOST, free_port, running, stop, tail, uvicorn_options, wait_http
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from jobs_poll import BENCH_KEY, Workspace, loop_factory
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from hyperlocal.core.keys import IssuedKey, create_key
from hyperlocal.core.webhooks import sign
from hyperlocal.engines.providers.base import next_poll
from hyperlocal.store.db import Database

console = Console()
Tick = Callable[[], None]
Flow = Callable[[], Awaitable[str]]  # runs one job to its downloaded output; its id

POLLED, WEBHOOK = "polled", "webhook"
DIRECT, HYPERLOCAL = "direct", "hyperlocal"
PATHS = ((POLLED, DIRECT), (POLLED, HYPERLOCAL), (WEBHOOK, DIRECT), (WEBHOOK, HYPERLOCAL))
MODEL, ENDPOINT = "flux-1-dev", "fal-ai/flux/dev"  # the model's first route: fal:fal-ai/flux/dev
PROMPT = "a lighthouse on a cliff at dusk"
WEBHOOK_MODE_POLL_S = 2.0  # hyperlocal's default: in webhook mode a poll is only the fallback
JOB_TIMEOUT_S = 60.0
GOAL_ADDED_P50_MS = 5.0
PROVIDER_KEYS = (
    "FAL_KEY",
    "REPLICATE_API_TOKEN",
    "OPENAI_API_KEY",
    "GEMINI_API_KEY",
    "BFL_API_KEY",
)


# -- options ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Options:
    sequential: int  # jobs per path, one at a time (interleaved across the four paths)
    jobs: int  # jobs per path at ``concurrency`` in flight, over all rounds
    concurrency: int
    rounds: int
    warmup: int  # jobs per path before measuring
    poll_interval: float  # the first pause between polls, both sides; grows 1.5x
    job_ms: float  # how long the fake's jobs take
    image_px: int  # the output: a noise PNG this many pixels square
    results: Path
    status_stream: bool = True  # the polled server follows fal on its status stream (default)

    @classmethod
    def preset(cls, quick: bool) -> Options:
        sequential, jobs = (100, 300) if quick else (200, 600)
        return cls(sequential, jobs, 32, 2, 64, 0.005, 0.0, 256, BENCH_DIR / "results")

    @property
    def per_round(self) -> int:
        return math.ceil(self.jobs / self.rounds)

    def describe(self) -> str:
        return (
            f"{self.sequential} jobs per path one at a time, {self.per_round * self.rounds} at "
            f"{self.concurrency} in flight ({self.rounds} alternating rounds); polls from "
            f"{self.poll_interval * 1e3:g} ms, x1.5"
            f"{'' if self.status_stream else ' (hyperlocal polls fal too)'}; "
            f"fal jobs take {self.job_ms:g} ms; "
            f"output {self.image_px}x{self.image_px} PNG"
        )


def _positive(kind: Callable[[str], Any], text: str) -> Any:
    value = kind(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be above 0, not {value}")
    return value


def parse_args(argv: Sequence[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    base = Options.preset(quick=False)
    count, number = partial(_positive, int), partial(_positive, float)
    add = parser.add_argument
    add("--sequential", type=count, default=base.sequential, help="jobs per path, 1 in flight")
    add("--jobs", type=count, default=base.jobs, help="jobs per path at --concurrency")
    add("--concurrency", type=count, default=base.concurrency, help="jobs in flight (32)")
    add("--rounds", type=count, default=base.rounds, help="alternating rounds (2)")
    add("--warmup", type=count, default=base.warmup, help="warm-up jobs per path (64)")
    add("--poll-interval", type=number, default=base.poll_interval, help="first poll, s")
    add("--job-ms", type=float, default=base.job_ms, help="how long fal's jobs take (0)")
    add("--image-px", type=count, default=base.image_px, help="output PNG side (256)")
    add("--results", type=Path, default=base.results)
    add(
        "--no-status-stream",
        dest="status_stream",
        action="store_false",
        help="the polled server polls fal too, instead of following its status stream",
    )
    a = parser.parse_args(argv)
    return Options(
        a.sequential,
        a.jobs,
        a.concurrency,
        a.rounds,
        a.warmup,
        a.poll_interval,
        a.job_ms,
        a.image_px,
        a.results,
        a.status_stream,
    )


# -- the servers --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Fal:
    url: str
    key: str  # made for this run; it travels in environments only
    image: bytes
    pid: int

    @property
    def jwks_url(self) -> str:
        return f"{self.url}/.well-known/jwks.json"


@dataclass(frozen=True, slots=True)
class Hyperlocal:
    variant: str
    url: str
    issued: IssuedKey  # its bearer key and webhook secret, in memory only
    ws: Workspace
    pid: int


def noise_png(side: int) -> bytes:
    """Random pixels: a PNG that does not compress, about 3 bytes a pixel, like a real image."""
    from PIL import Image

    buf = io.BytesIO()
    Image.frombytes("RGB", (side, side), os.urandom(side * side * 3)).save(buf, format="PNG")
    return buf.getvalue()


def start_fal(stack: AsyncExitStack, root: Path, options: Options) -> Fal:
    image, key, port = noise_png(options.image_px), secrets.token_urlsafe(24), free_port()
    (root / "image.png").write_bytes(image)
    env = _clean_env() | {
        "BENCH_FAL_KEY": key,
        "BENCH_FAL_IMAGE": str(root / "image.png"),
        "BENCH_FAL_SIDE": str(options.image_px),
        "BENCH_FAL_JOB_MS": str(options.job_ms),
    }
    url = stack.enter_context(running("_fal_fake:create", port, env, root, root / "fal.log"))
    return Fal(url, key, image, _listening_pid(port))


def _listening_pid(port: int) -> int:
    """The child process of this run that listens on ``port``."""
    for child in psutil.Process().children(recursive=True):
        with contextlib.suppress(psutil.Error):
            if any(c.laddr.port == port for c in child.net_connections(kind="tcp")):
                return int(child.pid)
    raise RuntimeError(f"no child process listens on port {port}")


def _clean_env() -> dict[str, str]:
    """An operator's own HYPERLOCAL_* and provider keys never leak into the run."""
    return {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("HYPERLOCAL_") and k not in PROVIDER_KEYS
    }


def hyperlocal_env(
    ws: Workspace, url: str, fal: Fal, variant: str, options: Options
) -> dict[str, str]:
    webhooks = variant == WEBHOOK
    poll = WEBHOOK_MODE_POLL_S if webhooks else options.poll_interval
    return _clean_env() | {
        "HYPERLOCAL_DATA_DIR": str(ws.db_file.parent),
        "HYPERLOCAL_DATABASE_URL": ws.database_url,
        "HYPERLOCAL_PUBLIC_URL": url,
        "HYPERLOCAL_BOOTSTRAP_KEYS": "false",
        "HYPERLOCAL_LOG_LEVEL": "WARNING",
        "HYPERLOCAL_ALLOW_PRIVATE_URLS": "true",  # the fake's files and the receiver: loopback
        "HYPERLOCAL_WORKER_CONCURRENCY": "64",
        "FAL_KEY": fal.key,
        "HYPERLOCAL_FAL_BASE_URL": fal.url,
        "HYPERLOCAL_FAL_JWKS_URL": fal.jwks_url,
        "HYPERLOCAL_PROVIDER_WEBHOOKS": "on" if webhooks else "off",
        "HYPERLOCAL_PROVIDER_POLL_INTERVAL": str(poll),
        "HYPERLOCAL_PROVIDER_STATUS_STREAM": str(options.status_stream).lower(),
    }


async def issue_key(ws: Workspace) -> IssuedKey:
    ws.db_file.parent.mkdir(parents=True, exist_ok=True)
    db = Database(ws.database_url)
    try:
        await db.migrate()
        return await create_key(db, BENCH_KEY)
    finally:
        await db.aclose()


async def start_hyperlocal(
    stack: AsyncExitStack, root: Path, fal: Fal, variant: str, options: Options
) -> Hyperlocal:
    ws = Workspace(root / variant)
    issued = await issue_key(ws)
    port = free_port()
    url = f"http://{HOST}:{port}"
    env = hyperlocal_env(ws, url, fal, variant, options)
    command = [sys.executable, "-m", "hyperlocal", "serve", "--host", HOST, "--port", str(port)]
    pid = stack.enter_context(_spawned(command, env, ws.root, f"{url}/healthz"))
    return Hyperlocal(variant, url, issued, ws, pid)


@contextmanager
def _spawned(command: list[str], env: dict[str, str], cwd: Path, ready: str) -> Iterator[int]:
    """``command`` running until the block ends, once ``ready`` answers 200; its pid."""
    log = cwd / "server.log"
    with log.open("wb") as out:
        process = subprocess.Popen(command, env=env, cwd=cwd, stdout=out, stderr=out)
    try:
        wait_http(process, ready, log)
        yield process.pid
    except BaseException:
        console.print(f"[red]{cwd.name} server log, last lines:[/red]\n{tail(log, 20)}")
        raise
    finally:
        stop(process)


# -- the webhook receiver (in this process, on this event loop) ---------------------------------


class Receiver:
    """Takes fal's webhooks at ``/fal`` and hyperlocal's at ``/hyperlocal``, checks each
    signature as their users would, and hands each body to whoever waits for its job."""

    def __init__(self, fal_key: Ed25519PublicKey, hyperlocal_secret: str) -> None:
        self._fal_key, self._secret = fal_key, hyperlocal_secret
        self._bodies: dict[str, asyncio.Future[dict[str, Any]]] = {}  # either may come first
        self.refused = 0
        self.url = ""

    async def wait(self, job_id: str) -> dict[str, Any]:
        try:
            return await self._future(job_id)
        finally:
            self._bodies.pop(job_id, None)

    def _future(self, job_id: str) -> asyncio.Future[dict[str, Any]]:
        future = self._bodies.get(job_id)
        if future is None:
            future = self._bodies[job_id] = asyncio.get_running_loop().create_future()
        return future

    def _deliver(self, job_id: str, body: dict[str, Any]) -> None:
        future = self._future(job_id)
        if not future.done():
            future.set_result(body)

    async def fal(self, request: Request) -> Response:
        raw, h = await request.body(), request.headers
        job_id = h.get("x-fal-webhook-request-id", "")
        digest = hashlib.sha256(raw).hexdigest()
        message = f"{job_id}\n{h.get('x-fal-webhook-user-id')}\n"
        message += f"{h.get('x-fal-webhook-timestamp')}\n{digest}"
        try:
            self._fal_key.verify(
                bytes.fromhex(h.get("x-fal-webhook-signature", "")), message.encode()
            )
        except (InvalidSignature, ValueError):
            self.refused += 1
            return Response(status_code=401)
        self._deliver(job_id, json.loads(raw))
        return Response(status_code=200)

    async def hyperlocal(self, request: Request) -> Response:
        raw, h = await request.body(), request.headers
        message_id, stamp = h.get("webhook-id", ""), h.get("webhook-timestamp", "0")
        expected = sign(self._secret, message_id, int(stamp), raw.decode())
        if not hmac.compare_digest(expected, h.get("webhook-signature", "")):
            self.refused += 1
            return Response(status_code=401)
        body = json.loads(raw)
        self._deliver(body["jobId"], body)
        return Response(status_code=200)

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/fal", self.fal, methods=["POST"]),
                Route("/hyperlocal", self.hyperlocal, methods=["POST"]),
            ]
        )


async def fal_public_key(client: httpx.AsyncClient) -> Ed25519PublicKey:
    """The fake's signing key, fetched once, as a fal user caches fal's JWKS."""
    x = (await client.get("/.well-known/jwks.json")).json()["keys"][0]["x"]
    return Ed25519PublicKey.from_public_bytes(base64.urlsafe_b64decode(x + "=" * (-len(x) % 4)))


@asynccontextmanager
async def receiving(receiver: Receiver) -> AsyncIterator[str]:
    port = free_port()
    http = "httptools" if importlib.util.find_spec("httptools") else "h11"
    config = uvicorn.Config(
        receiver.app(),
        host=HOST,
        port=port,
        http=http,
        lifespan="off",
        access_log=False,
        log_level="warning",
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    receiver.url = f"http://{HOST}:{port}"
    try:
        yield receiver.url
    finally:
        server.should_exit = True
        await task


# -- one job, four ways -------------------------------------------------------------------------


async def polled(
    check: Callable[[], Awaitable[dict[str, Any] | None]], first: float
) -> dict[str, Any]:
    """``check`` on hyperlocal's own schedule (its ``next_poll``) until it gives an answer."""
    delay = first
    while True:
        await asyncio.sleep(delay)
        delay = next_poll(delay)
        answer = await check()
        if answer is not None:
            return answer


def _ok(response: httpx.Response, *codes: int) -> httpx.Response:
    if response.status_code not in (codes or (200,)):
        raise RuntimeError(
            f"{response.request.url.path}: HTTP {response.status_code}: {response.text[:200]}"
        )
    return response


@dataclass(slots=True)
class Flows:
    """The four ways to run one job; each returns the job's id once its image is downloaded."""

    fal: Fal
    fal_http: httpx.AsyncClient  # the fal user's client, with their key
    hyperlocal: dict[str, httpx.AsyncClient]  # by variant, with the bench key
    receiver: Receiver
    first_poll: float
    learned: dict[str, float] = field(default_factory=dict)  # hyperlocal job -> when (unix s)

    def of(self, variant: str, side: str) -> Flow:
        flows = {
            (POLLED, DIRECT): self.direct_polled,
            (POLLED, HYPERLOCAL): self.hyperlocal_polled,
            (WEBHOOK, DIRECT): self.direct_webhook,
            (WEBHOOK, HYPERLOCAL): self.hyperlocal_webhook,
        }
        return flows[variant, side]

    async def direct_polled(self) -> str:
        accepted = await self._fal_submit({})

        async def completed() -> dict[str, Any] | None:
            status = await self.fal_http.get(accepted["status_url"])
            body: dict[str, Any] = _ok(status, 200, 202).json()
            return body if body["status"] == "COMPLETED" else None

        await polled(completed, self.first_poll)
        await self._fal_output(accepted["response_url"])
        return accepted["request_id"]

    async def direct_webhook(self) -> str:
        accepted = await self._fal_submit({"fal_webhook": f"{self.receiver.url}/fal"})
        notice = await self.receiver.wait(accepted["request_id"])
        if notice["status"] != "OK":
            raise RuntimeError(f"fal webhook: {notice}")
        await self._fal_output(accepted["response_url"])
        return accepted["request_id"]

    async def hyperlocal_polled(self) -> str:
        client = self.hyperlocal[POLLED]
        job_id = await _hyperlocal_submit(client, {}, {"prefer": "respond-async"})

        async def ended() -> dict[str, Any] | None:
            body: dict[str, Any] = _ok(await client.get(f"/v1/jobs/{job_id}")).json()
            return None if body["status"] == "processing" else body

        ended_body = await polled(ended, self.first_poll)
        self.learned[job_id] = time.time()
        await self._hyperlocal_output(client, ended_body)
        return job_id

    async def hyperlocal_webhook(self) -> str:
        client = self.hyperlocal[WEBHOOK]
        hook = {"webhook_url": f"{self.receiver.url}/hyperlocal"}
        job_id = await _hyperlocal_submit(client, hook, {})
        notice = await self.receiver.wait(job_id)
        self.learned[job_id] = time.time()
        await self._hyperlocal_output(client, notice)
        return job_id

    async def _fal_submit(self, params: dict[str, str]) -> dict[str, str]:
        """fal's answer: ``request_id``, and the ``status_url`` and ``response_url`` to use."""
        body = {"prompt": PROMPT, "image_size": "square_hd", "output_format": "png"}
        response = await self.fal_http.post(f"/{ENDPOINT}", json=body, params=params)
        accepted: dict[str, str] = _ok(response).json()
        return accepted

    async def _fal_output(self, url: str) -> None:
        result = _ok(await self.fal_http.get(url)).json()
        self._check_image(_ok(await self.fal_http.get(result["images"][0]["url"])))

    async def _hyperlocal_output(self, client: httpx.AsyncClient, ended: dict[str, Any]) -> None:
        if ended["status"] != "completed":
            raise RuntimeError(f"hyperlocal job ended {ended['status']}: {ended.get('error')}")
        self._check_image(_ok(await client.get(ended["outputUrl"])))

    def _check_image(self, response: httpx.Response) -> None:
        if response.content != self.fal.image:
            raise RuntimeError(f"the downloaded output differs ({len(response.content)} bytes)")


async def _hyperlocal_submit(
    client: httpx.AsyncClient, extra: dict[str, str], headers: dict[str, str]
) -> str:
    body = {"model": MODEL, "prompt": PROMPT, **extra}
    response = await client.post("/v1/images/generate", json=body, headers=headers)
    return str(_ok(response, 202).json()["jobId"])


# -- measuring ----------------------------------------------------------------------------------


@dataclass(slots=True)
class Batch:
    """Jobs run on one path: their latencies (s) and ids, errors, and the batch's wall time."""

    variant: str
    side: str
    latencies: list[float] = field(default_factory=list)
    ids: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    elapsed_s: float = 0.0
    cpu_s: dict[str, float] = field(default_factory=dict)  # by process, over the batch


async def timed(flow: Flow, batch: Batch) -> None:
    start = perf_counter()
    try:
        async with asyncio.timeout(JOB_TIMEOUT_S):
            job_id = await flow()
    except (RuntimeError, TimeoutError, httpx.HTTPError, KeyError, ValueError) as exc:
        batch.errors.append(f"{type(exc).__name__}: {exc}")
        return
    batch.latencies.append(perf_counter() - start)
    batch.ids.append(job_id)


async def in_flight(flow: Flow, batch: Batch, jobs: int, concurrency: int, tick: Tick) -> Batch:
    pending = iter(range(jobs))  # shared by the workers: each job is taken once

    async def worker() -> None:
        for _ in pending:
            await timed(flow, batch)
            tick()

    start = perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    batch.elapsed_s += perf_counter() - start
    return batch


class Meter:
    """CPU time of the processes that a path's jobs use: this client (and its receiver), the
    fal fake and, for hyperlocal, the variant's server. The least disturbed figure on a shared
    machine: it counts only what each process did."""

    def __init__(self, client: int, fal: int, servers: dict[str, int]) -> None:
        self._fixed = {"client": psutil.Process(client), "fal fake": psutil.Process(fal)}
        self._servers = {v: psutil.Process(pid) for v, pid in servers.items()}

    def read(self, variant: str, side: str) -> dict[str, float]:
        processes = dict(self._fixed)
        if side == HYPERLOCAL:
            processes["hyperlocal"] = self._servers[variant]
        return {name: _cpu_s(p) for name, p in processes.items()}


def _cpu_s(process: psutil.Process) -> float:
    times = process.cpu_times()
    return float(times.user + times.system)


@dataclass(slots=True)
class Measured:
    sequential: dict[tuple[str, str], Batch]
    loaded: dict[tuple[str, str], list[Batch]]  # one batch per round
    learned: dict[str, float]  # when the client learned that a hyperlocal job had ended
    refused: int  # webhooks whose signature did not verify


def _progress() -> Progress:
    columns = (TextColumn("{task.description:<26}"), BarColumn(), MofNCompleteColumn())
    return Progress(*columns, TimeElapsedColumn(), console=console, refresh_per_second=4)


def _tick(progress: Progress, description: str, total: int) -> Tick:
    return partial(progress.advance, progress.add_task(description, total=total))


async def measure(flows: Flows, meter: Meter, options: Options) -> Measured:
    with _progress() as progress:
        for variant, side in PATHS:
            tick = _tick(progress, f"warm-up {side}, {variant}", options.warmup)
            flow, batch = flows.of(variant, side), Batch(variant, side)
            await in_flight(flow, batch, options.warmup, options.concurrency, tick)
            if batch.errors:
                raise RuntimeError(f"warm-up {side}, {variant}: {batch.errors[0]}")
        sequential = await _sequential(flows, options, progress)
        loaded = await _loaded(flows, meter, options, progress)
    return Measured(sequential, loaded, flows.learned, flows.receiver.refused)


async def _sequential(
    flows: Flows, options: Options, progress: Progress
) -> dict[tuple[str, str], Batch]:
    """One job at a time, the four paths in turn, so that drift falls on all of them."""
    batches = {path: Batch(*path) for path in PATHS}
    tick = _tick(progress, "1 in flight, all paths", options.sequential * len(PATHS))
    for _ in range(options.sequential):
        for path in PATHS:
            await timed(flows.of(*path), batches[path])
            tick()
    return batches


async def _loaded(
    flows: Flows, meter: Meter, options: Options, progress: Progress
) -> dict[tuple[str, str], list[Batch]]:
    """``concurrency`` in flight, in rounds that alternate direct and hyperlocal."""
    loaded: dict[tuple[str, str], list[Batch]] = {path: [] for path in PATHS}
    total = options.per_round * options.rounds
    ticks = {
        p: _tick(progress, f"{options.concurrency} in flight {p[1]}, {p[0]}", total) for p in PATHS
    }
    for _ in range(options.rounds):
        for path in PATHS:
            batch, before = Batch(*path), meter.read(*path)
            flow = flows.of(*path)
            await in_flight(flow, batch, options.per_round, options.concurrency, ticks[path])
            batch.cpu_s = {k: v - before[k] for k, v in meter.read(*path).items()}
            loaded[path].append(batch)
    return loaded


async def bench(options: Options, root: Path) -> tuple[Measured, dict[str, Inside]]:
    async with AsyncExitStack() as stack:
        fal = start_fal(stack, root, options)
        servers = {
            v: await start_hyperlocal(stack, root, fal, v, options) for v in (POLLED, WEBHOOK)
        }
        flows = await _flows(stack, fal, servers, options)
        meter = Meter(os.getpid(), fal.pid, {v: s.pid for v, s in servers.items()})
        measured = await measure(flows, meter, options)
    inside = {
        v: inside_hyperlocal(s.ws.db_file, measured.sequential[v, HYPERLOCAL].ids, measured.learned)
        for v, s in servers.items()
    }
    return measured, inside


async def _flows(
    stack: AsyncExitStack, fal: Fal, servers: dict[str, Hyperlocal], options: Options
) -> Flows:
    limits = httpx.Limits(max_connections=options.concurrency + 8)

    async def client(url: str, headers: dict[str, str]) -> httpx.AsyncClient:
        made = httpx.AsyncClient(
            base_url=url, headers=headers, limits=limits, timeout=JOB_TIMEOUT_S
        )
        return await stack.enter_async_context(made)

    fal_http = await client(fal.url, {"authorization": f"Key {fal.key}"})
    hyper = {
        v: await client(s.url, {"authorization": f"Bearer {s.issued.key}"})
        for v, s in servers.items()
    }
    receiver = Receiver(await fal_public_key(fal_http), servers[WEBHOOK].issued.webhook_secret)
    await stack.enter_async_context(receiving(receiver))
    return Flows(fal, fal_http, hyper, receiver, options.poll_interval)


def _ms(values: Sequence[float], q: float) -> float:
    return percentile(values, q) * 1e3 if values else math.nan


# -- inside hyperlocal: its own timestamps, from its database -----------------------------------


@dataclass(frozen=True, slots=True)
class Inside:
    """p50s of the one-at-a-time jobs from hyperlocal's own timestamps (its database), and
    when the client learned of each end (ms)."""

    jobs: int
    queued_ms: float  # created (in the submit's transaction) -> a worker started it
    provider_ms: float  # the fal call: submit, its polls or the webhook, the result JSON
    run_ms: float  # started -> finished: the fal call, the download, storing, completing
    total_ms: float  # created -> finished
    told_ms: float  # finished -> the client knew: its next poll, or the webhook's arrival


def inside_hyperlocal(db_file: Path, ids: Sequence[str], learned: dict[str, float]) -> Inside:
    with closing(sqlite3.connect(f"file:{db_file}?mode=ro", uri=True)) as conn:
        marks = ",".join("?" * len(ids))  # placeholders only: the ids are bound
        columns = "id, created_at, started_at, finished_at, route_attempts"
        sql = f"SELECT {columns} FROM jobs WHERE id IN ({marks})"
        rows = [r for r in conn.execute(sql, list(ids)) if r[2] is not None and r[3] is not None]
    if not rows:
        return Inside(0, *([math.nan] * 5))
    calls = [json.loads(attempts)[-1]["latencyS"] for *_, attempts in rows if attempts]
    told = [learned[i] - f for i, _, _, f, _ in rows if i in learned]
    return Inside(
        len(rows),
        _ms([s - c for _, c, s, _, _ in rows], 50),
        _ms(calls, 50),
        _ms([f - s for _, _, s, f, _ in rows], 50),
        _ms([f - c for _, c, _, f, _ in rows], 50),
        _ms(told, 50),
    )


# -- figures ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PathStats:
    variant: str
    side: str
    p50_ms: float  # one job at a time
    p99_ms: float
    jobs: int
    jobs_per_s: float  # at ``concurrency`` in flight
    loaded_p50_ms: float
    loaded_p99_ms: float
    loaded_jobs: int
    errors: int
    round_jobs_per_s: tuple[float, ...]
    cpu_ms_per_job: dict[str, float]  # at ``concurrency`` in flight, by process


@dataclass(frozen=True, slots=True)
class Added:
    """hyperlocal - direct, for one variant; ``throughput`` is hyperlocal / direct."""

    variant: str
    p50_ms: float
    p99_ms: float
    throughput: float
    within_goal: bool  # p50_ms <= GOAL_ADDED_P50_MS


def path_stats(sequential: Batch, rounds: Sequence[Batch]) -> PathStats:
    loaded = [t for b in rounds for t in b.latencies]
    elapsed = sum(b.elapsed_s for b in rounds)
    return PathStats(
        sequential.variant,
        sequential.side,
        _ms(sequential.latencies, 50),
        _ms(sequential.latencies, 99),
        len(sequential.latencies),
        len(loaded) / elapsed if elapsed else math.nan,
        _ms(loaded, 50),
        _ms(loaded, 99),
        len(loaded),
        len(sequential.errors) + sum(len(b.errors) for b in rounds),
        tuple(round(len(b.latencies) / b.elapsed_s, 1) for b in rounds),
        _cpu_per_job(rounds, len(loaded)),
    )


def _cpu_per_job(rounds: Sequence[Batch], jobs: int) -> dict[str, float]:
    names = rounds[0].cpu_s if rounds else {}
    return {n: sum(b.cpu_s[n] for b in rounds) / jobs * 1e3 if jobs else math.nan for n in names}


def added(direct: PathStats, hyper: PathStats) -> Added:
    p50 = hyper.p50_ms - direct.p50_ms
    return Added(
        direct.variant,
        p50,
        hyper.p99_ms - direct.p99_ms,
        hyper.jobs_per_s / direct.jobs_per_s,
        p50 <= GOAL_ADDED_P50_MS,
    )


INCLUDES = {
    (POLLED, DIRECT): "submit; poll status until COMPLETED; GET result; GET the file",
    (POLLED, HYPERLOCAL): (
        "POST /v1/images/generate (202); poll GET /v1/jobs/{id} until completed; GET outputUrl. "
        "Inside: its submit to fal, fal's status stream (or its polls, on the same schedule), "
        "GET result, the "
        "download, storing, completing"
    ),
    (
        WEBHOOK,
        DIRECT,
    ): "submit ?fal_webhook=; the signed webhook (verified); GET result; GET the file",
    (WEBHOOK, HYPERLOCAL): (
        "POST with webhook_url (202); hyperlocal's signed webhook (verified); GET outputUrl. "
        "Inside: fal's verified webhook brings the output (no status poll, no GET result); "
        "the download, storing, completing, the outbox dispatcher's POST"
    ),
}


def table(
    stats: Sequence[PathStats], deltas: Sequence[Added], options: Options, caption: str
) -> Table:
    title = f"A fal job, direct (httpx) and through hyperlocal; goal: +{GOAL_ADDED_P50_MS:g} ms p50"
    out = Table(title=title, caption=caption)
    c = options.concurrency
    columns = ("", "1 in flight\np50 ms", "p99 ms", f"{c} in flight\njobs/s", "p50 ms", "p99 ms")
    for column in (*columns, "errors"):
        out.add_column(column, justify="right" if column else "left")
    for a in deltas:
        for s in (x for x in stats if x.variant == a.variant):
            cells = (f"{s.p50_ms:.2f}", f"{s.p99_ms:.2f}", f"{s.jobs_per_s:.1f}")
            loaded = (f"{s.loaded_p50_ms:.1f}", f"{s.loaded_p99_ms:.1f}", str(s.errors))
            out.add_row(f"{s.variant}, {s.side}", *cells, *loaded)
        cells = (f"+{a.p50_ms:.2f}", f"+{a.p99_ms:.2f}", f"{a.throughput:.2f}x")
        out.add_row(f"{a.variant}, added", *cells, "", "", "", style="bold", end_section=True)
    return out


def inside_table(inside: dict[str, Inside]) -> Table:
    title = "Inside hyperlocal, one job at a time: p50 ms from its own timestamps"
    out = Table(title=title)
    columns = ("queued", "fal call", "run", "created -> finished", "finished -> client knew")
    for column in ("variant", "jobs", *columns):
        out.add_column(column, justify="left" if column == "variant" else "right")
    for variant, i in inside.items():
        times = (i.queued_ms, i.provider_ms, i.run_ms, i.total_ms, i.told_ms)
        out.add_row(variant, str(i.jobs), *(f"{t:.2f}" for t in times))
    return out


def cpu_table(stats: Sequence[PathStats], concurrency: int) -> Table:
    out = Table(title=f"CPU ms per job at {concurrency} in flight, by process")
    names = ("client", "fal fake", "hyperlocal")
    for column in ("", *names, "all"):
        out.add_column(column, justify="right" if column else "left")
    for s in stats:
        cpu = s.cpu_ms_per_job
        cells = [f"{cpu[n]:.2f}" if n in cpu else "" for n in names]
        out.add_row(f"{s.variant}, {s.side}", *cells, f"{sum(cpu.values()):.2f}")
    return out


# -- the run ------------------------------------------------------------------------------------


def markdown_line(data: dict[str, Any]) -> str:
    m, (before, after) = data["machine"], data["load_average"]
    stats = {(s["variant"], s["side"]): s for s in data["paths"]}
    cells = []
    for a in data["added"]:
        d, h = stats[a["variant"], DIRECT], stats[a["variant"], HYPERLOCAL]
        cells.append(
            f"{d['p50_ms']:.1f} / {h['p50_ms']:.1f} ms (+{a['p50_ms']:.1f}), "
            f"p99 +{a['p99_ms']:.1f} ms, "
            f"{d['jobs_per_s']:.0f} / {h['jobs_per_s']:.0f} jobs/s ({a['throughput']:.2f}x)"
        )
    return (
        f"| {data['date'][:10]} | {m['cpu']}, {m['cores']} cores, load average {before:.1f} to "
        f"{after:.1f} | {data['workload']} | {cells[0]} | {cells[1]} |"
    )


MARKDOWN_HEADER = (
    "# A fal job: direct and through hyperlocal (bench/providers.py)\n\n"
    "Each cell: p50 direct / hyperlocal, one job at a time (added), the p99 added, and jobs/s "
    "direct / hyperlocal at the workload's concurrency (ratio). Goal: at most 5 ms p50 added.\n\n"
    "| date | machine | workload | polled | webhook |\n|---|---|---|---|---|\n"
)


def write_results(data: dict[str, Any], results: Path) -> tuple[Path, Path]:
    """The JSON (git-ignored) and a line appended to ``providers.md`` (the tracked history)."""
    results.mkdir(parents=True, exist_ok=True)
    path = results / f"providers-{data['date'][:10]}.json"
    data["json"] = str(path)
    path.write_text(json.dumps(data, indent=2) + "\n")
    history = results / "providers.md"
    header = "" if history.exists() else MARKDOWN_HEADER
    with history.open("a") as out:
        out.write(header + data["markdown"] + "\n")
    return path, history


def execute(options: Options) -> dict[str, Any]:
    before = os.getloadavg()[0]
    note = "the client, its webhook receiver, the fal fake and both servers share these cores"
    machine = replace(Machine.current(uvicorn_options()), note=note)
    console.print(f"{machine.cpu}, {machine.cores} cores ({machine.note}); {options.describe()}")
    with (
        tempfile.TemporaryDirectory(prefix="hyperlocal-providers-") as tmp,
        asyncio.Runner(loop_factory=loop_factory()) as runner,
    ):
        measured, inside = runner.run(bench(options, Path(tmp)))
    stats = [path_stats(measured.sequential[p], measured.loaded[p]) for p in PATHS]
    by_path = {(s.variant, s.side): s for s in stats}
    deltas = [added(by_path[v, DIRECT], by_path[v, HYPERLOCAL]) for v in (POLLED, WEBHOOK)]
    load = (round(before, 2), round(os.getloadavg()[0], 2))
    caption = (
        f"{machine.cpu}, {machine.cores} cores; {note}. {options.describe()}. Load average "
        f"{load[0]:.2f} before, {load[1]:.2f} after."
    )
    console.print(table(stats, deltas, options, caption))
    console.print(inside_table(inside))
    console.print(cpu_table(stats, options.concurrency))
    for a in deltas:
        verdict = "within" if a.within_goal else "over"
        goal = f"{verdict} the {GOAL_ADDED_P50_MS:g} ms goal"
        console.print(f"{a.variant}: +{a.p50_ms:.2f} ms p50 added, {goal}")
    for (variant, side), what in INCLUDES.items():
        console.print(f"[bold]{side}, {variant}[/bold]: {what}.")
    _print_errors(measured)
    data: dict[str, Any] = {
        "name": "providers",
        "date": datetime.now().astimezone().isoformat(timespec="seconds"),
        "machine": asdict(machine),
        "load_average": load,
        "workload": options.describe(),
        "options": {k: v for k, v in asdict(options).items() if k != "results"},
        "paths": [asdict(s) for s in stats],
        "added": [asdict(a) for a in deltas],
        "inside": {v: asdict(i) for v, i in inside.items()},
        "includes": {f"{side}, {variant}": w for (variant, side), w in INCLUDES.items()},
        "webhooks_refused": measured.refused,
    }
    data["markdown"] = markdown_line(data)
    json_path, history = write_results(data, options.results)
    console.print(data["markdown"])
    console.print(f"JSON: {json_path}\nhistory: {history}")
    return data


def _print_errors(measured: Measured) -> None:
    batches = [*measured.sequential.values(), *(b for r in measured.loaded.values() for b in r)]
    for b in batches:
        if b.errors:
            console.print(
                f"[red]{b.side}, {b.variant}: {len(b.errors)} errors[/red]; first: {b.errors[0]}"
            )
    if measured.refused:
        console.print(f"[red]{measured.refused} webhooks did not verify[/red]")


def run(quick: bool) -> dict[str, Any]:
    """For run_all.py: the preset sizes; returns what the JSON file holds."""
    return execute(Options.preset(quick))


def main(argv: Sequence[str] | None = None) -> None:
    execute(parse_args(argv))


if __name__ == "__main__":
    main()
