#!/usr/bin/env python
"""Benchmark the chat relay: hyperlocal's ``openai-upstream`` engine, against calling the same
upstream directly, against a bare relay (the floor) and against LiteLLM's proxy.

Everything runs on 127.0.0.1 as separate processes: a fake OpenAI-compatible upstream (a tiny
Starlette app that answers 200 tokens at once, streamed or not), hyperlocal (uvicorn, one
worker, SQLite), the bare relay (``_bare_relay.py``: Starlette and the same HTTP client,
nothing else) and ``litellm --config`` (one worker). Three measurements:

1. time to first token, streamed, one request at a time: via hyperlocal and the bare relay vs
   direct;
2. per-request overhead, non-streamed, one request at a time: p50 via hyperlocal minus p50
   direct (goal: under 1 ms added), and the same for the bare relay, which shows what any
   Python relay costs on this machine. Measured twice: each right after a streamed request
   (a mixed load: the stream's teardown, in every server, overlaps it), and then alone;
3. non-streamed throughput under concurrent load: hyperlocal vs LiteLLM (goal: at least 3x)
   and vs the bare relay, with p99 latency.

Rounds alternate between targets, so drift on the machine falls on all of them. LiteLLM is
found with ``--litellm`` (or ``BENCH_LITELLM``, or next to this Python, or on ``PATH``); the
throughput comparison is skipped, and says so, when it is not installed.

    .venv/bin/python bench/chat_relay.py [--requests 2000] [--concurrency 16] [--litellm PATH]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import AsyncExitStack, contextmanager
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from time import perf_counter

from _load import Round, Target, percentile, run_round
from _report import Machine
from _server import BENCH_DIR, HOST, free_port, running, stop, uvicorn_options, wait_http
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

PATH = "/v1/chat/completions"
MODEL = "bench-relay"
TOKENS = 200
MESSAGES = [{"role": "user", "content": "Tell me a story about a lighthouse."}]
console = Console()

# --------------------------------------------------------------------------------------------
# The fake upstream (run by uvicorn as ``chat_relay:fake_upstream``): every byte precomputed.
# --------------------------------------------------------------------------------------------


def _chunk(delta: dict[str, str], finish: str | None) -> bytes:
    choice = {"index": 0, "delta": delta, "finish_reason": finish}
    body = {
        "id": "up",
        "object": "chat.completion.chunk",
        "created": 0,
        "model": "fake",
        "choices": [choice],
    }
    return f"data: {json.dumps(body)}\n\n".encode()


_WORDS = [f" w{i}" for i in range(TOKENS)]
_USAGE = {"prompt_tokens": 12, "completion_tokens": TOKENS, "total_tokens": 12 + TOKENS}
_STREAM = [_chunk({"content": w}, None) for w in _WORDS] + [
    _chunk({}, "stop"),
    f"data: {json.dumps({'id': 'up', 'choices': [], 'usage': _USAGE})}\n\n".encode(),
    b"data: [DONE]\n\n",
]
_WHOLE = json.dumps(
    {
        "id": "up",
        "object": "chat.completion",
        "created": 0,
        "model": "fake",
        "choices": [
            {
                "index": 0,
                "finish_reason": "stop",
                "message": {"role": "assistant", "content": "".join(_WORDS)},
            }
        ],
        "usage": _USAGE,
    }
).encode()


async def _completions(request: Request) -> Response:
    body = await request.json()
    if not body.get("stream"):
        return Response(_WHOLE, media_type="application/json")

    async def events() -> AsyncIterator[bytes]:
        for event in _STREAM:
            yield event

    return StreamingResponse(events(), media_type="text/event-stream")


def fake_upstream() -> Starlette:
    return Starlette(routes=[Route(PATH, _completions, methods=["POST"])])


# --------------------------------------------------------------------------------------------
# Options and the three servers.
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Options:
    requests: int  # per target, for the throughput phase
    concurrency: int
    rounds: int
    sequential: int  # per target, for the latency phases
    litellm: str | None
    results: Path

    def describe(self) -> str:
        return (
            f"latency: {self.sequential} sequential requests per target; throughput: "
            f"{self.requests} requests per target at concurrency {self.concurrency}, "
            f"{self.rounds} alternating rounds; {TOKENS}-token replies"
        )


def parse_args(argv: Sequence[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--requests", type=int, default=2000, help="throughput, per target")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--sequential", type=int, default=300, help="latency, per target")
    parser.add_argument("--litellm", default=os.environ.get("BENCH_LITELLM"))
    parser.add_argument("--results", type=Path, default=BENCH_DIR / "results")
    a = parser.parse_args(argv)
    return Options(
        a.requests, a.concurrency, a.rounds, a.sequential, _litellm(a.litellm), a.results
    )


def _litellm(given: str | None) -> str | None:
    beside = Path(sys.executable).parent / "litellm"
    return given or (str(beside) if beside.exists() else shutil.which("litellm"))


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("HYPERLOCAL_")}


def _catalog(upstream: str) -> str:
    return f"""# Written by bench/chat_relay.py: one chat model relayed to the fake upstream.
[[model]]
id = "{MODEL}"
category = "chat"
name = "Benchmark relay"
engine = "openai-upstream"
price = {{ kind = "per_message", credits = 2, chars_per_credit = 2000 }}
engine_options = {{ base_url = "{upstream}/v1", upstream_model = "fake" }}
"""


async def _hyperlocal_key(root: Path) -> str:
    from hyperlocal.core.keys import KeySpec, create_key
    from hyperlocal.store.db import Database

    db = Database(f"sqlite+aiosqlite:///{root / 'hyperlocal.db'}")
    try:
        await db.migrate()
        return (await create_key(db, KeySpec("bench", 10**9, 10**9, 1000))).key
    finally:
        await db.aclose()


def _hyperlocal_env(root: Path, upstream: str, port: int) -> dict[str, str]:
    (root / "catalog.toml").write_text(_catalog(upstream))
    return _clean_env() | {
        "HYPERLOCAL_DATA_DIR": str(root),
        "HYPERLOCAL_DATABASE_URL": f"sqlite+aiosqlite:///{root / 'hyperlocal.db'}",
        "HYPERLOCAL_CATALOG": str(root / "catalog.toml"),
        "HYPERLOCAL_PUBLIC_URL": f"http://{HOST}:{port}",
        "HYPERLOCAL_BOOTSTRAP_KEYS": "false",
        "HYPERLOCAL_LOG_LEVEL": "WARNING",
    }


def _litellm_config(root: Path, upstream: str) -> Path:
    path = root / "litellm.yaml"
    path.write_text(
        "model_list:\n"
        f"  - model_name: {MODEL}\n"
        "    litellm_params:\n"
        "      model: openai/fake\n"
        f"      api_base: {upstream}/v1\n"
        "      api_key: fake\n"
    )
    return path


@contextmanager
def litellm_proxy(binary: str, root: Path, upstream: str, key: str) -> Iterator[str]:
    """``litellm --config`` on loopback, one worker, with nothing fetched from the network.
    ``key`` is its master key: LiteLLM authenticates each request too, as hyperlocal does."""
    port = free_port()
    env = _clean_env() | {
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        "LITELLM_LOG": "ERROR",
        "LITELLM_TELEMETRY": "False",
        "LITELLM_MASTER_KEY": key,
    }
    command = [
        binary,
        "--config",
        str(_litellm_config(root, upstream)),
        "--host",
        HOST,
        "--port",
        str(port),
        "--num_workers",
        "1",
    ]
    with (root / "litellm.log").open("wb") as log:
        process = subprocess.Popen(command, env=env, cwd=root, stdout=log, stderr=log)
    try:
        wait_http(process, f"http://{HOST}:{port}/health/liveliness", root / "litellm.log", 120)
        yield f"http://{HOST}:{port}"
    finally:
        stop(process)


@dataclass(slots=True)
class Servers:
    upstream: Target
    bare: Target
    hyperlocal: Target
    litellm: Target | None


async def start(stack: AsyncExitStack, root: Path, options: Options) -> Servers:
    port = free_port()
    upstream = stack.enter_context(
        running("chat_relay:fake_upstream", port, _clean_env(), root, root / "upstream.log")
    )
    key = await _hyperlocal_key(root)
    port = free_port()
    hyper = stack.enter_context(
        running(
            "hyperlocal.app:create_app",
            port,
            _hyperlocal_env(root, upstream, port),
            root,
            root / "hyperlocal.log",
        )
    )
    port = free_port()
    bare = stack.enter_context(
        running(
            "_bare_relay:create",
            port,
            _clean_env() | {"BENCH_UPSTREAM": upstream},
            root,
            root / "bare.log",
        )
    )
    auth = {"authorization": f"Bearer {key}"}
    targets = [
        Target("upstream", upstream, {}, options.concurrency),
        Target("bare", bare, {}, options.concurrency),
        Target("hyperlocal", hyper, auth, options.concurrency),
    ]
    if options.litellm:
        master = "sk-" + secrets.token_hex(32)  # in memory only, like the hyperlocal key
        proxy = stack.enter_context(litellm_proxy(options.litellm, root, upstream, master))
        targets.append(
            Target("litellm", proxy, {"authorization": f"Bearer {master}"}, options.concurrency)
        )
    for target in targets:
        stack.push_async_callback(target.aclose)
    return Servers(*targets[:3], targets[3] if len(targets) > 3 else None)


# --------------------------------------------------------------------------------------------
# Measuring.
# --------------------------------------------------------------------------------------------


def _body(target: Target, *, stream: bool) -> bytes:
    model = "fake" if target.name == "upstream" else MODEL
    return json.dumps({"model": model, "messages": MESSAGES, "stream": stream}).encode()


HEADERS = {"content-type": "application/json"}


async def first_token(target: Target) -> tuple[float, float]:
    """Seconds to the first content chunk and to the end of one streamed reply."""
    started = perf_counter()
    first = 0.0
    async with target.client.stream(
        "POST", PATH, content=_body(target, stream=True), headers=HEADERS
    ) as response:
        if response.status_code != 200:
            raise RuntimeError(f"{target.name}: HTTP {response.status_code}")
        async for line in response.aiter_lines():
            if not first and '"content"' in line:
                first = perf_counter() - started
    return first, perf_counter() - started


async def whole_reply(target: Target) -> float:
    started = perf_counter()
    response = await target.client.post(PATH, content=_body(target, stream=False), headers=HEADERS)
    if response.status_code != 200 or response.json()["usage"]["completion_tokens"] != TOKENS:
        raise RuntimeError(f"{target.name}: HTTP {response.status_code}: {response.text[:300]}")
    return perf_counter() - started


@dataclass(slots=True)
class Samples:
    ttft: dict[str, list[float]] = field(default_factory=dict)
    stream_total: dict[str, list[float]] = field(default_factory=dict)
    whole: dict[str, list[float]] = field(default_factory=dict)  # each right after a stream
    alone: dict[str, list[float]] = field(default_factory=dict)  # non-streamed only
    rounds: list[Round] = field(default_factory=list)


async def sequential(
    targets: Sequence[Target], count: int, samples: Samples, tick: Callable[[], None]
) -> None:
    for target in targets:  # warm: connections, the engine, SQLite pages
        for _ in range(20):
            await first_token(target)
            await whole_reply(target)
    for _ in range(count):
        for target in targets:  # interleaved, request by request
            ttft, total = await first_token(target)
            samples.ttft.setdefault(target.name, []).append(ttft)
            samples.stream_total.setdefault(target.name, []).append(total)
            samples.whole.setdefault(target.name, []).append(await whole_reply(target))
            tick()
    for _ in range(count):  # no stream's teardown (in any of the servers) just before
        for target in targets:
            samples.alone.setdefault(target.name, []).append(await whole_reply(target))
            tick()


async def concurrent(
    targets: Sequence[Target],
    options: Options,
    samples: Samples,
    ticks: dict[str, Callable[[], None]],
) -> None:
    per_round = -(-options.requests // options.rounds)
    for target in targets:
        await run_round(target, PATH, _body(target, stream=False), 100, options.concurrency)
    for index in range(options.rounds):
        for target in targets:
            samples.rounds.append(
                await run_round(
                    target,
                    PATH,
                    _body(target, stream=False),
                    per_round,
                    options.concurrency,
                    index=index,
                    advance=ticks[target.name],
                )
            )


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description:<28}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        refresh_per_second=4,
    )


async def measure(servers: Servers, options: Options) -> Samples:
    samples = Samples()
    relay = [servers.upstream, servers.bare, servers.hyperlocal]
    loaded = [servers.upstream, servers.bare, servers.hyperlocal]
    loaded += [servers.litellm] if servers.litellm else []
    with _progress() as progress:
        task = progress.add_task("latency (sequential)", total=2 * options.sequential * len(relay))
        await sequential(relay, options.sequential, samples, lambda: progress.advance(task))
        total = -(-options.requests // options.rounds) * options.rounds
        ticks = {t.name: _ticker(progress, f"throughput {t.name}", total) for t in loaded}
        await concurrent(loaded, options, samples, ticks)
    return samples


def _ticker(progress: Progress, name: str, total: int) -> Callable[[], None]:
    task = progress.add_task(name, total=total)
    return lambda: progress.advance(task)


# --------------------------------------------------------------------------------------------
# Reporting.
# --------------------------------------------------------------------------------------------


def _ms(values: Sequence[float], q: float = 50) -> float:
    return round(percentile(values, q) * 1e3, 3)


@dataclass(frozen=True, slots=True)
class Throughput:
    target: str
    requests: int
    errors: int
    rps: float
    p50_ms: float
    p99_ms: float


@dataclass(frozen=True, slots=True)
class Summary:
    date: str
    machine: Machine
    load: str
    ttft_p50_ms: dict[str, float]
    ttft_added_p50_ms: float
    stream_total_p50_ms: dict[str, float]
    whole_p50_ms: dict[str, float]
    overhead_p50_ms: float  # non-streamed, sequential: hyperlocal p50 - upstream p50
    overhead_mean_ms: float
    bare_overhead_p50_ms: float  # the same for the bare relay: the floor on this machine
    over_bare_p50_ms: float  # hyperlocal p50 - bare relay p50: hyperlocal's own cost
    alone_p50_ms: dict[str, float]  # non-streamed requests with no stream between them
    alone_overhead_p50_ms: float
    bare_alone_overhead_p50_ms: float
    throughput: list[Throughput]
    hyperlocal_vs_litellm: float | None
    hyperlocal_vs_bare: float
    load_before: float  # 1-minute load average: compare runs only when these are alike
    load_after: float


def _throughput(rounds: Sequence[Round], name: str) -> Throughput:
    mine = [r for r in rounds if r.target == name]
    latencies = [t for r in mine for t in r.latencies_s]
    ok, elapsed = sum(r.ok for r in mine), sum(r.elapsed_s for r in mine)
    return Throughput(
        name,
        ok,
        sum(r.errors for r in mine),
        round(ok / elapsed, 1),
        _ms(latencies),
        _ms(latencies, 99),
    )


def summarize(samples: Samples, options: Options, load_before: float) -> Summary:
    ttft = {k: _ms(v) for k, v in samples.ttft.items()}
    whole = {k: _ms(v) for k, v in samples.whole.items()}
    alone = {k: _ms(v) for k, v in samples.alone.items()}
    order = ["upstream", "bare", "hyperlocal", "litellm"]
    names = sorted({r.target for r in samples.rounds}, key=order.index)
    rates = {t.target: t for t in (_throughput(samples.rounds, n) for n in names)}
    ratio = rates["hyperlocal"].rps / rates["litellm"].rps if "litellm" in rates else None
    mean = statistics.fmean(samples.whole["hyperlocal"]) - statistics.fmean(
        samples.whole["upstream"]
    )
    return Summary(
        datetime.now().astimezone().isoformat(timespec="seconds"),
        Machine.current(uvicorn_options()),
        options.describe(),
        ttft,
        round(ttft["hyperlocal"] - ttft["upstream"], 3),
        {k: _ms(v) for k, v in samples.stream_total.items()},
        whole,
        round(whole["hyperlocal"] - whole["upstream"], 3),
        round(mean * 1e3, 3),
        round(whole["bare"] - whole["upstream"], 3),
        round(whole["hyperlocal"] - whole["bare"], 3),
        alone,
        round(alone["hyperlocal"] - alone["upstream"], 3),
        round(alone["bare"] - alone["upstream"], 3),
        list(rates.values()),
        round(ratio, 2) if ratio else None,
        round(rates["hyperlocal"].rps / rates["bare"].rps, 2),
        load_before,
        os.getloadavg()[0],
    )


def tables(summary: Summary) -> list[Table]:
    latency = Table(title=f"Chat relay latency, sequential ({TOKENS}-token replies)")
    columns = ("TTFT p50 ms", "stream total p50 ms", "non-stream p50 ms", "non-stream alone")
    for column in ("", *columns):
        latency.add_column(column, justify="left" if not column else "right")
    for name in summary.ttft_p50_ms:
        latency.add_row(
            name,
            f"{summary.ttft_p50_ms[name]:.2f}",
            f"{summary.stream_total_p50_ms[name]:.2f}",
            f"{summary.whole_p50_ms[name]:.2f}",
            f"{summary.alone_p50_ms[name]:.2f}",
        )
    latency.add_row(
        "added by hyperlocal",
        f"{summary.ttft_added_p50_ms:+.2f}",
        "",
        f"{summary.overhead_p50_ms:+.2f}",
        f"{summary.alone_overhead_p50_ms:+.2f}",
        style="bold",
    )
    ttft = summary.ttft_p50_ms
    latency.add_row(
        "added by the bare relay",
        f"{ttft['bare'] - ttft['upstream']:+.2f}",
        "",
        f"{summary.bare_overhead_p50_ms:+.2f}",
        f"{summary.bare_alone_overhead_p50_ms:+.2f}",
    )
    rate = Table(
        title="Non-streamed relay throughput",
        caption=f"{summary.machine.cpu}, {summary.machine.cores} cores; "
        f"{summary.machine.note}. {summary.load}. Load average "
        f"{summary.load_before:.1f} before, {summary.load_after:.1f} after.",
    )
    for column in ("", "req/s", "p50 ms", "p99 ms", "requests", "errors"):
        rate.add_column(column, justify="left" if not column else "right")
    for t in summary.throughput:
        rate.add_row(
            t.target,
            f"{t.rps:.0f}",
            f"{t.p50_ms:.2f}",
            f"{t.p99_ms:.2f}",
            str(t.requests),
            str(t.errors),
        )
    rate.add_row("hyperlocal / bare relay", f"{summary.hyperlocal_vs_bare:.2f}x", *[""] * 4)
    ratio = summary.hyperlocal_vs_litellm
    rate.add_row(
        "hyperlocal / litellm",
        f"{ratio:.2f}x" if ratio else "n/a (no litellm)",
        "",
        "",
        "",
        "",
        style="bold",
    )
    return [latency, rate]


def write_json(summary: Summary, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"chat-relay-{summary.date[:10]}.json"
    path.write_text(json.dumps(asdict(summary), indent=2) + "\n")
    return path


async def bench(options: Options, root: Path) -> Samples:
    async with AsyncExitStack() as stack:
        servers = await start(stack, root, options)
        return await measure(servers, options)


def main(argv: Sequence[str] | None = None) -> None:
    options = parse_args(argv)
    if not options.litellm:
        console.print(
            "[yellow]LiteLLM not found: the throughput comparison will be skipped. "
            "Install litellm[proxy] (a separate venv is fine) and pass --litellm."
        )
    console.print(options.describe())
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="hyperlocal-chat-bench-") as tmp:
        samples = asyncio.run(bench(options, Path(tmp)))
    summary = summarize(samples, options, load_before)
    for table in tables(summary):
        console.print(table)
    console.print(f"JSON: {write_json(summary, options.results)}")


if __name__ == "__main__":
    main()
