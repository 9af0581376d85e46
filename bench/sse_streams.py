#!/usr/bin/env python
"""Benchmark many open SSE job-event streams (``GET /v1/jobs/{id}/events``) on one server.

One real uvicorn process on 127.0.0.1 (``sse_streams:server``): SQLite, the embedded queue with
``worker_concurrency`` 1 and an engine that never finishes, so one job runs throughout and the
rest stay queued. The benchmark submits ``--jobs`` jobs, opens ``--streams`` streams on them
from raw asyncio sockets (open = the first ``status`` event arrived) and holds them for
``--hold`` seconds, past the 15 s heartbeat. It reports the server's RSS (goal: under 2 GiB)
and CPU, the time to open them, and the streams that failed or that the server ended early.
Both processes raise RLIMIT_NOFILE to the hard limit. See bench/README.md.

    .venv/bin/python bench/sse_streams.py [--streams 2000] [--jobs 2000] [--hold 20]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import resource
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any

import httpx
from _load import percentile
from _report import Machine
from _server import BENCH_DIR, HOST, free_port, running, uvicorn_options
from fastapi import FastAPI
from jobs_poll import issue_key, loop_factory, prepare, server_env
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from hyperlocal.engines.base import (
    EngineContext,
    GenerationRequest,
    GenerationResult,
    ProgressCallback,
)

console = Console()
Tick = Callable[[], None]
MIB = 1024 * 1024
GOAL_MIB = 2048
MODEL = "bench-hold"
CATALOG = f"""\
# Written by bench/sse_streams.py: an image model whose jobs never finish.
[[model]]
id = "{MODEL}"
category = "image"
name = "Benchmark hold"
engine = "bench-hold"
timeout_s = 86400
price = {{ kind = "flat", credits = 1 }}
inputs.prompt = {{ type = "string", required = true }}
"""


def raise_nofile() -> int:
    """Lifts this process's soft open-file limit to the hard limit; returns the new limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        target = hard if hard != resource.RLIM_INFINITY else 1 << 20
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


# -- the server (run by uvicorn as ``sse_streams:server --factory``) ----------------------------


class HoldEngine:
    """Never finishes: the job it runs stays running, and the ones behind it stay queued."""

    async def generate(
        self,
        request: GenerationRequest,  # noqa: ARG002 - the protocol's signature
        progress: ProgressCallback,  # noqa: ARG002
    ) -> GenerationResult:
        await asyncio.Event().wait()  # until the server stops and cancels the job
        raise AssertionError("unreachable")

    async def aclose(self) -> None:
        return None


def server() -> FastAPI:
    """The real app plus ``bench-hold``; writes its PID to ``BENCH_PID_FILE`` for the probe."""
    from hyperlocal.app import create_app
    from hyperlocal.settings import Settings

    raise_nofile()
    Path(os.environ["BENCH_PID_FILE"]).write_text(str(os.getpid()))

    def hold(_context: EngineContext) -> HoldEngine:
        return HoldEngine()

    return create_app(Settings(), engines={"bench-hold": hold})


# -- measuring another process ------------------------------------------------------------------


class Probe:
    """RSS and CPU time of one process: psutil when installed, else /proc."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        try:
            import psutil  # type: ignore[import-untyped]
        except ImportError:
            self._ps: Any = None
        else:
            self._ps = psutil.Process(pid)

    def rss_mib(self) -> float:
        if self._ps is not None:
            return float(self._ps.memory_info().rss) / MIB
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        raise RuntimeError("no VmRSS in /proc status")

    def cpu_s(self) -> float:
        if self._ps is not None:
            times = self._ps.cpu_times()
            return float(times.user + times.system)
        fields = Path(f"/proc/{self.pid}/stat").read_text().rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def nofile(self) -> str:
        for line in Path(f"/proc/{self.pid}/limits").read_text().splitlines():
            if line.startswith("Max open files"):
                return line.split()[3]
        return "unknown"


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


# -- options ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Options:
    streams: int
    jobs: int  # distinct jobs the streams watch, round robin
    hold_s: float
    open_concurrency: int  # streams being opened at once
    open_deadline_s: float  # streams not open by then are not tried: the run stays bounded
    submit_concurrency: int
    results: Path

    @classmethod
    def preset(cls, quick: bool) -> Options:
        n, hold, deadline = (1000, 20.0, 180.0) if quick else (10_000, 35.0, 900.0)
        return cls(n, n, hold, 64, deadline, 16, BENCH_DIR / "results")

    def describe(self) -> str:
        return (
            f"{self.streams} streams over {self.jobs} queued jobs, opened {self.open_concurrency} "
            f"at a time, held {self.hold_s:g} s"
        )


def parse_args(argv: Sequence[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    base = Options.preset(quick=True)
    add = parser.add_argument
    add("--streams", type=int, default=2000, help="SSE streams to hold open (default 2000)")
    add("--jobs", type=int, help="distinct jobs they watch (default: one per stream)")
    add("--hold", type=float, default=base.hold_s, help="seconds to hold them (default 20)")
    add("--open-concurrency", type=int, default=base.open_concurrency, help="default 64")
    add("--open-deadline", type=float, default=600.0, help="seconds to open them (600)")
    add("--submit-concurrency", type=int, default=base.submit_concurrency, help="default 16")
    add("--results", type=Path, default=base.results)
    a = parser.parse_args(argv)
    jobs = min(a.jobs or a.streams, a.streams)
    return Options(
        a.streams,
        jobs,
        a.hold,
        a.open_concurrency,
        a.open_deadline,
        a.submit_concurrency,
        a.results,
    )


# -- the streams --------------------------------------------------------------------------------


@dataclass(slots=True)
class Stream:
    writer: asyncio.StreamWriter
    reader: asyncio.StreamReader
    open_s: float
    opened_at: float = field(default_factory=time.monotonic)
    ended_after_s: float | None = None  # closed by the server, this long after it opened


@dataclass(slots=True)
class Streams:
    """Every stream opened so far, and why the others failed."""

    open: list[Stream] = field(default_factory=list)
    failures: Counter[str] = field(default_factory=Counter)
    readers: list[asyncio.Task[None]] = field(default_factory=list)

    def alive(self) -> int:
        return sum(s.ended_after_s is None for s in self.open)

    def first_close_s(self) -> float | None:
        return min(
            (s.ended_after_s for s in self.open if s.ended_after_s is not None), default=None
        )


async def open_stream(port: int, job_id: str, key: str) -> Stream:
    start = time.perf_counter()
    reader, writer = await asyncio.open_connection(HOST, port)
    request = (
        f"GET /v1/jobs/{job_id}/events HTTP/1.1\r\nHost: {HOST}:{port}\r\n"
        f"Authorization: Bearer {key}\r\nAccept: text/event-stream\r\n\r\n"
    )
    writer.write(request.encode())
    try:
        status = await reader.readline()
        if b" 200 " not in status:
            raise ConnectionError(f"HTTP {status.decode(errors='replace').strip()}")
        await reader.readuntil(b"\r\n\r\n")  # the headers
        first = await reader.readuntil(b"\n\n")  # the chunk size and the first event
        if b"event: status" not in first:
            raise ConnectionError("the first event was not a status event")
    except BaseException:
        writer.close()
        raise
    return Stream(writer, reader, time.perf_counter() - start)


async def keep_reading(stream: Stream) -> None:
    """Drains the stream (heartbeats) so the server never blocks on a full socket."""
    with contextlib.suppress(OSError):
        while await stream.reader.read(4096):
            pass
    stream.ended_after_s = time.monotonic() - stream.opened_at


async def open_all(
    port: int, ids: Sequence[str], key: str, options: Options, on_open: Tick
) -> Streams:
    streams, slots = Streams(), asyncio.Semaphore(options.open_concurrency)
    deadline = time.monotonic() + options.open_deadline_s

    async def one(i: int) -> None:
        async with slots:
            left = min(60.0, deadline - time.monotonic())
            if left <= 0:
                streams.failures["not tried: the opening deadline had passed"] += 1
                return
            try:
                opened = await asyncio.wait_for(open_stream(port, ids[i % len(ids)], key), left)
            except (OSError, TimeoutError, asyncio.IncompleteReadError, ValueError) as exc:
                streams.failures[_reason(exc)] += 1
                return
        streams.open.append(opened)
        streams.readers.append(asyncio.create_task(keep_reading(opened)))
        on_open()

    await asyncio.gather(*(one(i) for i in range(options.streams)))
    return streams


def _reason(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.errno is not None:
        return f"{type(exc).__name__}: {os.strerror(exc.errno)}"
    return f"{type(exc).__name__}: {exc}"[:120]


async def close_all(streams: Streams) -> None:
    for task in streams.readers:
        task.cancel()
    await asyncio.gather(*streams.readers, return_exceptions=True)
    for s in streams.open:
        s.writer.close()


# -- submitting the jobs ------------------------------------------------------------------------


async def submit_jobs(url: str, key: str, options: Options, tick: Tick) -> list[str]:
    limits = httpx.Limits(max_connections=options.submit_concurrency)
    headers = {"authorization": f"Bearer {key}", "prefer": "respond-async"}
    body = {"model": MODEL, "prompt": "a lighthouse"}
    pending, ids = iter(range(options.jobs)), []
    async with httpx.AsyncClient(base_url=url, headers=headers, limits=limits, timeout=60) as c:

        async def worker() -> None:
            for _ in pending:
                response = await c.post("/v1/images/generate", json=body)
                if response.status_code != 202:
                    raise RuntimeError(f"submit: HTTP {response.status_code}: {response.text}")
                ids.append(response.json()["jobId"])
                tick()

        await asyncio.gather(*(worker() for _ in range(options.submit_concurrency)))
    return ids


# -- the measurement ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Result:
    streams: int
    opened: int
    alive_at_end: int
    first_close_s: float | None  # the first stream the server ended, this long after opening
    failures: dict[str, int]
    open_s: float  # first connect to the last stream's first event
    open_p50_ms: float
    open_p99_ms: float
    rss_base_mib: float  # jobs submitted, no stream open
    rss_open_mib: float  # all open, before the hold
    rss_peak_mib: float  # the highest sample while holding
    kib_per_stream: float
    cpu_open_pct: float  # % of one core while opening
    cpu_hold_pct: float  # % of one core while holding
    hold_s: float
    curve: list[tuple[int, float]]  # (streams open, server RSS MiB)
    server_nofile: str
    client_nofile: int
    client_fds_peak: int
    goal_mib: int = GOAL_MIB
    server_errors: dict[str, int] = field(default_factory=dict)  # the log's exception lines

    @property
    def under_goal(self) -> bool:
        return self.rss_peak_mib < self.goal_mib


class Checkpoints:
    """Counts opened streams and samples the server's RSS at each tenth of them."""

    def __init__(self, probe: Probe, total: int, tick: Tick) -> None:
        self._probe, self._step, self._tick = probe, max(1, total // 10), tick
        self.count, self.curve = 0, [(0, round(probe.rss_mib(), 1))]

    def __call__(self) -> None:
        self.count += 1
        self._tick()
        if self.count % self._step == 0:
            self.curve.append((self.count, round(self._probe.rss_mib(), 1)))


@dataclass(frozen=True, slots=True)
class Opening:
    streams: Streams
    seconds: float
    cpu_pct: float
    curve: list[tuple[int, float]]


async def open_measured(
    port: int, ids: Sequence[str], key: str, probe: Probe, options: Options, *, tick: Tick
) -> Opening:
    marks = Checkpoints(probe, options.streams, tick)
    cpu, start = probe.cpu_s(), time.perf_counter()
    streams = await open_all(port, ids, key, options, marks)
    seconds = time.perf_counter() - start
    return Opening(streams, seconds, 100 * (probe.cpu_s() - cpu) / seconds, marks.curve)


async def hold(probe: Probe, seconds: float, show: Callable[..., None]) -> tuple[float, float]:
    """Holds every stream open for ``seconds``; returns (peak RSS MiB, CPU % of one core)."""
    cpu, wall, peak = probe.cpu_s(), time.monotonic(), probe.rss_mib()
    end = wall + seconds
    while (now := time.monotonic()) < end:
        await asyncio.sleep(min(1.0, end - now))
        peak = max(peak, probe.rss_mib())
        show(completed=min(seconds, time.monotonic() - wall))
    return peak, 100 * (probe.cpu_s() - cpu) / (time.monotonic() - wall)


def _progress() -> Progress:
    columns = (TextColumn("{task.description:<14}"), BarColumn(), MofNCompleteColumn())
    return Progress(*columns, TimeElapsedColumn(), console=console, refresh_per_second=4)


def _tick(progress: Progress, description: str, total: float) -> Tick:
    return partial(progress.advance, progress.add_task(description, total=total))


async def measure(port: int, key: str, probe: Probe, options: Options) -> Result:
    with _progress() as progress:
        tick = _tick(progress, "submit jobs", options.jobs)
        ids = await submit_jobs(f"http://{HOST}:{port}", key, options, tick)
        await asyncio.sleep(1)  # let the submits' garbage settle before the baseline
        tick = _tick(progress, "open streams", options.streams)
        opening = await open_measured(port, ids, key, probe, options, tick=tick)
        rss_open, fds = probe.rss_mib(), open_fds()
        show = partial(progress.update, progress.add_task("hold (s)", total=options.hold_s))
        peak, cpu_hold = await hold(probe, options.hold_s, show)
    alive = opening.streams.alive()
    await close_all(opening.streams)
    s, base = opening.streams, opening.curve[0][1]
    times = [x.open_s * 1e3 for x in s.open] or [float("nan")]
    return Result(
        streams=options.streams,
        opened=len(s.open),
        alive_at_end=alive,
        first_close_s=s.first_close_s(),
        failures=dict(s.failures),
        open_s=opening.seconds,
        open_p50_ms=percentile(times, 50),
        open_p99_ms=percentile(times, 99),
        rss_base_mib=base,
        rss_open_mib=rss_open,
        rss_peak_mib=peak,
        kib_per_stream=(rss_open - base) * 1024 / max(1, len(s.open)),
        cpu_open_pct=opening.cpu_pct,
        cpu_hold_pct=cpu_hold,
        hold_s=options.hold_s,
        curve=opening.curve,
        server_nofile=probe.nofile(),
        client_nofile=resource.getrlimit(resource.RLIMIT_NOFILE)[0],
        client_fds_peak=fds,
    )


async def bench(options: Options, root: Path) -> Result:
    ws = prepare(root, CATALOG)
    key = await issue_key(ws)
    port, pid_file = free_port(), root / "server.pid"
    env = server_env(ws, port, HYPERLOCAL_WORKER_CONCURRENCY="1", BENCH_PID_FILE=str(pid_file))
    with running("sse_streams:server", port, env, root, root / "server.log"):
        result = await measure(port, key, Probe(int(pid_file.read_text())), options)
    return replace(result, server_errors=server_errors(root / "server.log"))


_ERROR_LINE = re.compile(r"^[\w.]*(Error|Exception|Timeout)\w*:")


def server_errors(log: Path, top: int = 5) -> dict[str, int]:
    """The commonest exception lines in the server's log (its tracebacks' last lines)."""
    lines = log.read_text(errors="replace").splitlines()
    found = Counter(line.strip()[:200] for line in lines if _ERROR_LINE.match(line.strip()))
    return dict(found.most_common(top))


# -- report -------------------------------------------------------------------------------------


def table(r: Result, caption: str) -> Table:
    out = Table(title="SSE job-event streams held open on one server process", caption=caption)
    out.add_column("figure")
    out.add_column("value", justify="right")
    rows = [
        ("streams open / asked", f"{r.opened} / {r.streams} ({r.alive_at_end} alive at the end)"),
        ("time to open all", f"{r.open_s:.1f} s ({r.opened / r.open_s:.0f} streams/s)"),
        ("open time p50 / p99", f"{r.open_p50_ms:.1f} / {r.open_p99_ms:.1f} ms"),
        (
            "server RSS: base / all open / peak",
            f"{r.rss_base_mib:.0f} / {r.rss_open_mib:.0f} / {r.rss_peak_mib:.0f} MiB",
        ),
        ("server RSS per stream", f"{r.kib_per_stream:.1f} KiB"),
        (f"under the {r.goal_mib} MiB goal", "yes" if r.under_goal else "NO"),
        (
            "server CPU opening / holding (% of a core)",
            f"{r.cpu_open_pct:.0f}% / {r.cpu_hold_pct:.0f}%",
        ),
        (
            "open files: server limit / client limit / client peak",
            f"{r.server_nofile} / {r.client_nofile} / {r.client_fds_peak}",
        ),
    ]
    if r.first_close_s is not None:
        rows.append(("server ended streams; the first after", f"{r.first_close_s:.1f} s"))
    rows += [(f"failed: {reason}", str(n)) for reason, n in r.failures.items()]
    rows += [(f"server log: {line}", str(n)) for line, n in r.server_errors.items()]
    for row in rows:
        out.add_row(*row)
    return out


def execute(options: Options) -> dict[str, Any]:
    limit = raise_nofile()  # the server inherits it, and raises its own again
    if limit < options.streams + 200:
        raise SystemExit(
            f"the open-file limit ({limit}, hard limit included) cannot hold {options.streams} "
            "sockets; lower --streams or raise the hard limit (ulimit -Hn)"
        )
    before = os.getloadavg()[0]
    machine = Machine.current(uvicorn_options())
    console.print(f"{machine.cpu}, {machine.cores} cores ({machine.note}); {options.describe()}")
    with (
        tempfile.TemporaryDirectory(prefix="hyperlocal-sse-") as tmp,
        asyncio.Runner(loop_factory=loop_factory()) as runner,
    ):
        result = runner.run(bench(options, Path(tmp)))
    load = (round(before, 2), round(os.getloadavg()[0], 2))
    caption = (
        f"{machine.cpu}, {machine.cores} cores, shared with the client holding the streams. "
        f"{options.describe()}. Load average {load[0]:.2f} before, {load[1]:.2f} after."
    )
    console.print(table(result, caption))
    return write_json(result, machine, options, load)


def write_json(
    result: Result, machine: Machine, options: Options, load: tuple[float, float]
) -> dict[str, Any]:
    now = datetime.now().astimezone().isoformat(timespec="seconds")
    options.results.mkdir(parents=True, exist_ok=True)
    path = options.results / f"sse-streams-{now[:10]}.json"
    opts = {k: v for k, v in asdict(options).items() if k != "results"}
    data = {
        "name": "sse_streams",
        "date": now,
        "machine": asdict(machine),
        "load_average": load,
        "options": opts,
        **asdict(result),
        "under_goal": result.under_goal,
        "json": str(path),
    }
    path.write_text(json.dumps(data, indent=2) + "\n")
    console.print(f"JSON: {path}")
    return data


def run(quick: bool) -> dict[str, Any]:
    """For run_all.py: 1,000 streams quick, 10,000 full; returns what the JSON file holds."""
    return execute(Options.preset(quick))


def main(argv: Sequence[str] | None = None) -> None:
    execute(parse_args(argv))


if __name__ == "__main__":
    main()
