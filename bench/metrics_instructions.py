#!/usr/bin/env python
"""Count the CPU instructions a request costs with Prometheus metrics on and off, under
valgrind's callgrind: a figure that other work on a shared machine does not move.

The server is the one ``metrics_cost.py`` times, started by the same uvicorn command
(``_server``) with the same app and settings: the images benchmark's app with its zero-work
engine, and the chat relay relaying to the chat benchmark's fake upstream. Here it runs under
``valgrind --tool=callgrind``, and the load comes from ``_load`` in this (native) process, so
only the server's instructions are counted, as only its throughput is budgeted. Each server is
started on a fresh database, checked with one request and warmed up; then counting starts, it
is sent N or 2N requests and stopped. Instructions per request = (I(2N) - I(N)) / N, which
leaves out the start of counting and the shutdown. The off case also runs natively, N and 2N
alike, to turn instructions into an *estimate* of microseconds on this machine. The budget
(issue 19): metrics may cost at most 3% of throughput and 50 us of p50.

    .venv/bin/python bench/metrics_instructions.py [--images 200] [--chat 150] [--warmup 20]
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import inspect
import json
import math
import os
import shutil
import socket
import statistics
import subprocess
import tempfile
import time
import types
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path

import chat_relay
import images
import psutil
from _load import Target, run_round
from _report import Machine
from _server import BENCH_DIR, HOST, _command, free_port, running, uvicorn_options
from fastapi import FastAPI
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

console = Console(width=160)
SIDES = ("on", "off")
BUDGET_RATIO, BUDGET_US = 0.03, 50.0
# Under callgrind a request takes ~50x as long, and what the server does by the clock would
# change with it. Housekeeping that wakes on a timer (webhook outbox, retention, key cache,
# and, in ``steady_clocks``, the lease sweep and the WAL checkpoint) costs instructions per
# second, not per request, and would be counted ~50x over: pushed out of the run.
QUIET_S = 3600.0
QUIET = {
    "HYPERLOCAL_WEBHOOK_POLL_INTERVAL": str(QUIET_S),
    "HYPERLOCAL_RETENTION_SWEEP_INTERVAL": str(QUIET_S),
    "HYPERLOCAL_AUTH_CACHE_SECONDS": str(QUIET_S),
    "PYTHONHASHSEED": "0",  # the same hashing, hence the same dict and set work, every run
}
# Natively a chat's record joins the others that end within 20 ms (``ChatRecorder``): about
# 10 at the benches' speeds (~2 ms a chat alone, ~500 chats/s at concurrency 16). Under
# callgrind every chat would commit alone; a fixed batch keeps natively's share, every run.
CHATS_PER_COMMIT = 10
# Counting starts after the warm-up (``callgrind_control --instr=on``): start-up, which is
# most of a short run, is neither slowed ~50x nor counted.
CALLGRIND = ("--tool=callgrind", "--collect-systime=no", "--cache-sim=no", "--instr-atstart=no")
MARKDOWN_HEADER = (
    "| date | machine | workload | images: instructions/request on, off, added "
    "| chat relay: on, off, added | budget (<= 3%, <= 50 us) |\n|---|---|---|---|---|---|\n"
)


@dataclass(frozen=True, slots=True)
class Options:
    images: int  # N for the images path: runs of N and 2N measured requests
    chat: int  # N for the chat relay (whole replies)
    warmup: int
    concurrency: int
    native_repeats: int  # native N/2N pairs for the instructions-per-second figure
    results: Path

    def describe(self) -> str:
        return (
            f"N = {self.images} images, {self.chat} chats (runs of N and 2N) after "
            f"{self.warmup} warm-up, concurrency {self.concurrency}, fresh SQLite per run"
        )


def parse_args(argv: Sequence[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--images", type=int, default=200, help="N for images (default 200)")
    chat_help = f"N for the chat relay, a multiple of {CHATS_PER_COMMIT} (default 150)"
    parser.add_argument("--chat", type=int, default=150, help=chat_help)
    parser.add_argument("--warmup", type=int, default=20, help="requests before the count")
    parser.add_argument("--concurrency", type=int, default=1, help="connections (default 1)")
    parser.add_argument("--native-repeats", type=int, default=5, help="native N/2N pairs")
    parser.add_argument("--results", type=Path, default=BENCH_DIR / "results")
    a = parser.parse_args(argv)
    return Options(a.images, a.chat, a.warmup, a.concurrency, a.native_repeats, a.results)


# --------------------------------------------------------------------------------------------
# The servers' factories (``uvicorn --factory``): the benches' own, with steady clocks.
# --------------------------------------------------------------------------------------------


def images_app() -> FastAPI:
    """The images benchmark's app (``_hyperlocal_app``), zero-work engine and all."""
    import _hyperlocal_app

    steady_clocks()
    return _hyperlocal_app.create()


def chat_app() -> FastAPI:
    """The chat benchmark's server: ``create_app`` with its ``HYPERLOCAL_*`` settings."""
    from hyperlocal.app import create_app

    steady_clocks()
    return create_app()


def steady_clocks() -> None:
    """What the server decides by the clock is decided as natively, in every run: the lease
    sweep and the WAL checkpoint are pushed out (see ``QUIET``), the watch for a client gone
    mid-reply never starts (natively these replies come before its 50 ms), and chat records
    are written ``CHATS_PER_COMMIT`` at a time. No request path is changed otherwise."""
    from hyperlocal.api import disconnect
    from hyperlocal.core import chat_recorder
    from hyperlocal.queue.inprocess import InProcessQueue
    from hyperlocal.store.sqlite_on_loop import Checkpointer

    _set_default(InProcessQueue.__init__, "sweep_interval", QUIET_S)
    _set_default(Checkpointer.__init__, "interval", QUIET_S)
    _set_default(disconnect.unless_gone, "after", QUIET_S)
    _set_default(chat_recorder.ChatRecorder.__init__, "delay", QUIET_S)
    if not hasattr(chat_recorder, "MAX_BATCH"):
        raise RuntimeError("chat_recorder.MAX_BATCH is gone: update metrics_instructions.py")
    chat_recorder.MAX_BATCH = CHATS_PER_COMMIT  # read at each record


def _set_default(function: Callable[..., object], name: str, value: float) -> None:
    """Gives ``function``'s parameter ``name`` a new default; fails loudly when the parameter
    or its default is gone, so that a change in the app cannot pass unnoticed."""
    if not isinstance(function, types.FunctionType):
        raise TypeError(f"{function!r} is not a plain function: update this bench")
    parameters = inspect.signature(function).parameters
    if name not in parameters or parameters[name].default is inspect.Parameter.empty:
        raise RuntimeError(f"{function.__qualname__}({name}=...) is gone: update this bench")
    if parameters[name].kind is inspect.Parameter.KEYWORD_ONLY:
        function.__kwdefaults__ = {**(function.__kwdefaults__ or {}), name: value}
        return
    positional = [
        p.name
        for p in parameters.values()
        if p.default is not inspect.Parameter.empty and p.kind is not p.KEYWORD_ONLY
    ]
    defaults = list(function.__defaults__ or ())
    defaults[positional.index(name)] = value
    function.__defaults__ = tuple(defaults)


# --------------------------------------------------------------------------------------------
# One server run: its set-up, under callgrind or native, and the load.
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Server:
    app: str  # module:factory in bench/, for uvicorn --factory
    env: dict[str, str]
    cwd: Path
    port: int
    auth: dict[str, str]


def _settings(side: str) -> dict[str, str]:
    return {"HYPERLOCAL_METRICS": "true" if side == "on" else "false"} | QUIET


async def images_server(root: Path, side: str, _upstream: str) -> Server:
    ws = images.prepare(root)
    auth = {"authorization": f"Bearer {await images.issue_key(ws)}"}
    port = free_port()
    env = images.hyperlocal_env(ws, port) | _settings(side)
    return Server("metrics_instructions:images_app", env, ws.root, port, auth)


async def chat_server(root: Path, side: str, upstream: str) -> Server:
    auth = {"authorization": f"Bearer {await chat_relay._hyperlocal_key(root)}"}
    port = free_port()
    env = chat_relay._hyperlocal_env(root, upstream, port) | _settings(side)
    return Server("metrics_instructions:chat_app", env, root, port, auth)


async def _chat_check(target: Target) -> None:
    await chat_relay.whole_reply(target)


@dataclass(frozen=True, slots=True)
class Bench:
    name: str
    path: str
    body: bytes
    requests: int  # N
    server: Callable[[Path, str, str], Awaitable[Server]]
    check: Callable[[Target], Awaitable[None]]


def benches(options: Options) -> list[Bench]:
    chat_body = json.dumps({"model": chat_relay.MODEL, "messages": chat_relay.MESSAGES})
    return [
        Bench("images", images.PATH, images.BODY, options.images, images_server, images.check),
        Bench(
            "chat relay",
            chat_relay.PATH,
            chat_body.encode(),
            options.chat,
            chat_server,
            _chat_check,
        ),
    ]


@contextmanager
def serving(command: Sequence[str], server: Server, log: Path) -> Iterator[psutil.Process]:
    """The server until the block ends; stopped with SIGTERM and waited for, since callgrind
    writes its counts only when the process exits."""
    with log.open("wb") as out:
        process = subprocess.Popen(
            command, env=server.env, cwd=server.cwd, stdout=out, stderr=subprocess.STDOUT
        )
    try:
        yield psutil.Process(process.pid)
    finally:
        process.terminate()
        try:
            process.wait(timeout=600)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    if process.returncode not in (0, -15):
        raise RuntimeError(f"server exited with {process.returncode}:\n{_tail(log)}")


async def wait_ready(process: psutil.Process, port: int, log: Path) -> None:
    """Probes once a second (before counting starts, so the probes are not counted)."""
    deadline = time.monotonic() + 900
    while time.monotonic() < deadline:
        if not process.is_running() or process.status() == psutil.STATUS_ZOMBIE:
            raise RuntimeError(f"server exited:\n{_tail(log)}")
        try:
            socket.create_connection((HOST, port), timeout=1).close()
        except OSError:
            await asyncio.sleep(1)
        else:
            return
    raise RuntimeError(f"server did not start within 900 s:\n{_tail(log)}")


def _tail(log: Path) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-30:])


def _user_cpu_s(process: psutil.Process) -> float:
    return float(process.cpu_times().user)


@dataclass(frozen=True, slots=True)
class Run:
    bench: Bench
    side: str
    requests: int
    callgrind: Path | None  # the output file; None: a native run

    @property
    def label(self) -> str:
        how = "callgrind" if self.callgrind else "native"
        return f"{self.bench.name} {self.side} {self.requests} ({how})"


async def load(
    run: Run, server: Server, process: psutil.Process, options: Options, tick: Callable[[], None]
) -> float:
    """Check, warm up, start counting (under callgrind), then the measured requests: the
    server's user CPU seconds over those."""
    target = Target(run.side, f"http://{HOST}:{server.port}", server.auth, options.concurrency)
    try:
        await run.bench.check(target)
        tick()
        await _send(run, target, options.warmup, options, tick)
        if run.callgrind:
            await count_from_now(process.pid)
        before = _user_cpu_s(process)
        await _send(run, target, run.requests, options, tick)
        return _user_cpu_s(process) - before
    finally:
        await target.aclose()


async def _send(
    run: Run, target: Target, count: int, options: Options, tick: Callable[[], None]
) -> None:
    body, concurrency = run.bench.body, options.concurrency
    done = await run_round(target, run.bench.path, body, count, concurrency, advance=tick)
    if done.errors:
        raise RuntimeError(f"{run.label}: {done.errors} requests failed")


async def count_from_now(pid: int) -> None:
    """Switches callgrind's instrumentation on in ``pid`` (and only there: without a pid,
    callgrind_control would switch every callgrind process on the machine)."""
    control = shutil.which("callgrind_control") or "/usr/bin/callgrind_control"
    process = await asyncio.create_subprocess_exec(
        control, "--instr=on", str(pid), stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    output, _ = await asyncio.wait_for(process.communicate(), timeout=300)
    if process.returncode != 0 or b"OK" not in output:
        raise RuntimeError(f"callgrind_control --instr=on {pid}: {output.decode()[-500:]}")


def command(run: Run, server: Server) -> list[str]:
    uvicorn = _command(server.app, server.port)
    if run.callgrind is None:
        return uvicorn
    valgrind = shutil.which("valgrind") or "/usr/bin/valgrind"
    return [valgrind, *CALLGRIND, f"--callgrind-out-file={run.callgrind}", *uvicorn]


async def one_run(
    run: Run, root: Path, upstream: str, options: Options, progress: Progress
) -> float:
    """Under callgrind: the instructions from the end of the warm-up to the server's exit.
    Native: its user CPU seconds over the measured requests."""
    task = progress.add_task(f"{run.label}: starting", total=1 + options.warmup + run.requests)
    root.mkdir(parents=True)
    server = await run.bench.server(root, run.side, upstream)
    log = root / "server.log"
    with serving(command(run, server), server, log) as process:
        await wait_ready(process, server.port, log)
        progress.update(task, description=run.label)
        cpu = await load(run, server, process, options, lambda: progress.advance(task))
    return float(instructions(run.callgrind)) if run.callgrind else cpu


def instructions(out: Path) -> int:
    """The total from callgrind's output file: its "totals:" line, else its "summary:"."""
    found: dict[str, int] = {}
    for line in out.read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("totals", "summary") and value.strip():
            found[key] = int(value.split()[0])
    if not found:
        raise RuntimeError(f"no totals in {out}")
    return found.get("totals", found.get("summary", 0))


# --------------------------------------------------------------------------------------------
# Per path: N and 2N under callgrind, on and off; N and 2N natively, off.
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PathCost:
    path: str
    requests: int  # N
    totals: dict[str, dict[str, int]]  # side -> {"N": I(N), "2N": I(2N)}, whole process
    on: float  # instructions per request: (I(2N) - I(N)) / N
    off: float
    native_off_us: list[float]  # user CPU us per request natively, off: one per N/2N pair

    @property
    def added(self) -> float:
        return self.on - self.off

    @property
    def ratio(self) -> float:
        return self.on / self.off - 1

    @property
    def instructions_per_s(self) -> float:
        """This machine's rate for the off case: its instructions over its native CPU time
        (nan when the native runs measured no time: too few requests for the CPU clock)."""
        seconds = statistics.median(self.native_off_us) * 1e-6
        return self.off / seconds if seconds > 0 else math.nan

    @property
    def added_us_estimate(self) -> float:
        return self.added / self.instructions_per_s * 1e6

    def figures(self) -> dict[str, object]:
        derived = ("added", "ratio", "instructions_per_s", "added_us_estimate")
        return asdict(self) | {name: getattr(self, name) for name in derived} | self.verdict()

    def verdict(self) -> dict[str, bool | None]:
        """Within each budget; None when a figure is not a number (the counts went wrong)."""
        valid = self.off > 0 and self.on > 0
        us = self.added_us_estimate
        return {
            "within_3_percent": self.ratio <= BUDGET_RATIO if valid else None,
            "within_50_us": us <= BUDGET_US if valid and math.isfinite(us) else None,
        }


async def measure(bench: Bench, root: Path, upstream: str, options: Options, ui: Ui) -> PathCost:
    n = bench.requests
    go = _runner(root / bench.name.replace(" ", "-"), upstream, options, ui)
    native = []
    for repeat in range(options.native_repeats):
        once, twice = [await go(Run(bench, "off", k, None), f"native{repeat}") for k in (n, 2 * n)]
        native.append((twice - once) / n * 1e6)
    totals: dict[str, dict[str, int]] = {side: {} for side in SIDES}
    for k, size in ((n, "N"), (2 * n, "2N")):
        for side in SIDES:
            out = root / f"{bench.name.replace(' ', '-')}-{side}-{size}.callgrind"
            totals[side][size] = int(await go(Run(bench, side, k, out), "callgrind"))
    per = {side: (t["2N"] - t["N"]) / n for side, t in totals.items()}
    return PathCost(bench.name, n, totals, per["on"], per["off"], native)


@dataclass(frozen=True, slots=True)
class Ui:
    progress: Progress
    overall: TaskID


def _runner(
    root: Path, upstream: str, options: Options, ui: Ui
) -> Callable[[Run, str], Awaitable[float]]:
    async def go(run: Run, kind: str) -> float:
        where = root / f"{kind}-{run.side}-{run.requests}"
        result = await one_run(run, where, upstream, options, ui.progress)
        ui.progress.advance(ui.overall)
        return result

    return go


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description:<36}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        refresh_per_second=2,
    )


async def bench_all(options: Options, root: Path) -> list[PathCost]:
    chosen = benches(options)
    port = free_port()
    with (
        running(
            "chat_relay:fake_upstream", port, chat_relay._clean_env(), root, root / "up.log"
        ) as upstream,
        _progress() as progress,
    ):
        runs = len(chosen) * (2 * options.native_repeats + 2 * len(SIDES))
        ui = Ui(progress, progress.add_task("all runs", total=runs))
        return [await measure(bench, root, upstream, options, ui) for bench in chosen]


# --------------------------------------------------------------------------------------------
# Reporting: a table, a JSON file and a markdown line, as the other benchmarks do.
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Summary:
    date: str
    machine: Machine
    workload: str
    load_average: tuple[float, float]  # callgrind's counts do not depend on it; the us do
    valgrind: str
    elapsed_s: float  # the whole run, to size N
    costs: list[PathCost]


def _us(value: float, spec: str) -> str:
    return f"~{value:{spec}}" if math.isfinite(value) else "n/a"


def _pass(ok: bool | None) -> str:
    return "n/a" if ok is None else "pass" if ok else "FAIL"


def table(summary: Summary) -> Table:
    before, after = summary.load_average
    caption = (
        f"{summary.workload}. Instructions: callgrind, the server alone. us: an estimate, "
        f"added instructions at the native rate of the off case (load average {before:.1f} "
        f"before, {after:.1f} after). Budget: <= 3%, <= 50 us."
    )
    out = Table(title="Metrics on / off: instructions per request", caption=caption)
    columns = ("path", "on", "off", "added", "on/off - 1", "off: native us/req", "instr/s")
    for column in (*columns, "added us (est.)", "3%", "50 us"):
        out.add_column(column, justify="left" if column == "path" else "right")
    for c in summary.costs:
        verdict = c.verdict()
        out.add_row(
            c.path,
            f"{c.on:,.0f}",
            f"{c.off:,.0f}",
            f"{c.added:+,.0f}",
            f"{c.ratio:+.2%}",
            f"{statistics.median(c.native_off_us):.0f}",
            f"{c.instructions_per_s / 1e9:.2f} G",
            _us(c.added_us_estimate, ".1f"),
            _pass(verdict["within_3_percent"]),
            _pass(verdict["within_50_us"]),
        )
    return out


def _cell(c: PathCost) -> str:
    return (
        f"{c.on / 1e6:.3f} M, {c.off / 1e6:.3f} M, {c.added / 1e3:+,.0f} k "
        f"({c.ratio:+.2%}, {_us(c.added_us_estimate, '.0f')} us est.)"
    )


def markdown_line(summary: Summary) -> str:
    m, (before, after) = summary.machine, summary.load_average
    cells = " | ".join(_cell(c) for c in summary.costs)
    verdicts = ", ".join(
        f"{c.path} {'/'.join(_pass(ok) for ok in c.verdict().values())}" for c in summary.costs
    )
    return (
        f"| {summary.date[:10]} | {m.cpu}, {m.cores} cores, load average {before:.1f} to "
        f"{after:.1f} | {summary.workload} | {cells} | {verdicts} |"
    )


def write_json(summary: Summary, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"metrics-instructions-{summary.date[:10]}.json"
    data = {
        "date": summary.date,
        "machine": asdict(summary.machine),
        "workload": summary.workload,
        "load_average": summary.load_average,
        "valgrind": summary.valgrind,
        "callgrind_options": CALLGRIND,
        "elapsed_s": summary.elapsed_s,
        "settings_added": QUIET,
        "chats_per_commit": CHATS_PER_COMMIT,
        "costs": [c.figures() for c in summary.costs],
        "markdown": markdown_line(summary),
    }
    path.write_text(json.dumps(data, indent=2) + "\n")
    return path


def append_markdown(summary: Summary, folder: Path) -> Path:
    """Keeps a history of runs in ``metrics-instructions.md``; the JSON files are not tracked."""
    path = folder / "metrics-instructions.md"
    header = "" if path.exists() else "# Metrics on / off: instructions\n\n" + MARKDOWN_HEADER
    with path.open("a") as out:
        out.write(header + markdown_line(summary) + "\n")
    return path


def _valgrind_version() -> str:
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        raise SystemExit("valgrind is not installed (Debian: apt-get install valgrind)")
    done = subprocess.run([valgrind, "--version"], capture_output=True, text=True, check=True)
    return done.stdout.strip()


def main(argv: Sequence[str] | None = None) -> None:
    options = parse_args(argv)
    version = _valgrind_version()
    machine = dataclasses.replace(
        Machine.current(uvicorn_options()),
        note="callgrind counts the server's instructions; the client runs natively",
    )
    console.print(f"{machine.cpu}, {machine.cores} cores; {version}; {options.describe()}")
    before, started = os.getloadavg()[0], time.monotonic()
    with (
        tempfile.TemporaryDirectory(prefix="hyperlocal-bench-") as tmp,
        asyncio.Runner(loop_factory=images._loop_factory()) as runner,
    ):
        costs = runner.run(bench_all(options, Path(tmp)))
    stamp = datetime.now().astimezone().isoformat(timespec="seconds")
    load = (round(before, 2), round(os.getloadavg()[0], 2))
    elapsed = round(time.monotonic() - started, 1)
    summary = Summary(stamp, machine, options.describe(), load, version, elapsed, costs)
    console.print(table(summary))
    console.print(f"{elapsed:.0f} s in all")
    console.print(f"JSON: {write_json(summary, options.results)}")
    console.print(f"history: {append_markdown(summary, options.results)}")
    console.print(markdown_line(summary), markup=False, highlight=False, soft_wrap=True)


if __name__ == "__main__":
    main()
