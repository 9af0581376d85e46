"""Running a server: ``hyperlocal serve``, ``hyperlocal worker`` and ``hyperlocal settings``."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from typing import TYPE_CHECKING

from pydantic import SecretStr
from rich.console import Console
from rich.table import Table

from hyperlocal.cli._command import Handler, SubParsers, database
from hyperlocal.cli.keys import announce
from hyperlocal.settings import Settings

if TYPE_CHECKING:
    from hyperlocal.core.keys import IssuedKey

__all__ = ["add_commands", "serve", "show_settings", "worker"]


def add_commands(sub: SubParsers) -> dict[str, Handler]:
    parser = sub.add_parser("serve", help="run the API server")
    parser.add_argument("--host", help="bind address (HYPERLOCAL_HOST)")
    parser.add_argument("--port", type=int, help="bind port (HYPERLOCAL_PORT)")
    _worker_args(sub.add_parser("worker", help="run a scale-out worker (Celery on Redis)"))
    sub.add_parser("settings", help="print every setting with its help and current value")
    return {"serve": serve, "worker": worker, "settings": show_settings}


def _worker_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--models", nargs="+", metavar="GLOB", help="model ids to serve (HYPERLOCAL_WORKER_MODELS)"
    )
    parser.add_argument("--concurrency", type=int, help="jobs run at once")
    parser.add_argument(
        "--preload",
        nargs="+",
        metavar="MODEL",
        help="model ids whose local weights load at start and stay loaded (pinned)",
    )
    parser.add_argument(
        "--burst", action="store_true", help="exit once the queues are empty and no job runs"
    )
    parser.add_argument(
        "--metrics-port",
        type=int,
        metavar="PORT",
        help="serve Prometheus metrics on this port (bound to HYPERLOCAL_HOST)",
    )
    parser.add_argument(
        "--gpus",
        metavar="all|0,1",
        help="one worker process per GPU, each with its own CUDA_VISIBLE_DEVICES "
        "(with --metrics-port P, the Nth serves P+N)",
    )


def serve(args: argparse.Namespace, settings: Settings) -> int:
    import uvicorn

    from hyperlocal.app import create_app

    host, port = args.host or settings.host, args.port or settings.port
    for issued in asyncio.run(_bootstrap(settings)):
        announce(issued)
    if settings.bootstrap_keys:  # the bootstrap just migrated; don't pay for it twice
        settings = settings.model_copy(update={"migrate_on_start": False})
    settings = _a_lane_per_gpu(settings)
    Console().print(f"hyperlocal listening on http://{host}:{port}  (docs at /docs)")
    _stop_exits_zero()
    uvicorn.run(create_app(settings), host=host, port=port, log_config=None, proxy_headers=False)
    return 0


def _a_lane_per_gpu(settings: Settings) -> Settings:
    """Embedded, the in-process queue runs ``worker_concurrency`` jobs at once: at least one
    per GPU, so that every device can be busy (the device manager places each job)."""
    from hyperlocal.supervisor import visible_gpus

    gpus = len(visible_gpus(ask_torch=False))  # never starts CUDA (nor imports torch) here
    if gpus <= settings.worker_concurrency:
        return settings
    return settings.model_copy(update={"worker_concurrency": gpus})


def _stop_exits_zero() -> None:
    """uvicorn shuts down gracefully on SIGTERM or SIGINT (the queue drains: see
    ``shutdown_grace_seconds``), then raises the same signal again for the handler it found.
    With the default handler the process would then die of it (exit -15) after a clean stop;
    this handler ends it with status 0 instead."""

    def stopped(_signum: int, _frame: object) -> None:
        raise SystemExit(0)

    for stop in (signal.SIGTERM, signal.SIGINT):
        signal.signal(stop, stopped)


async def _bootstrap(settings: Settings) -> list[IssuedKey]:
    """On first start, an admin key and a first API key; later, none."""
    if not settings.bootstrap_keys:
        return []
    from hyperlocal.core.keys import KeySpec, bootstrap

    admin = KeySpec.with_defaults(settings, "admin", is_admin=True)
    first = KeySpec.with_defaults(settings, "default", settings.bootstrap_credits)
    async with database(settings) as db:
        return await bootstrap(db, admin, first)


def worker(args: argparse.Namespace, settings: Settings) -> int:
    if args.gpus:
        return _worker_per_gpu(args, settings)
    from hyperlocal.worker import WorkerOptions, run_worker

    options = WorkerOptions(
        models=tuple(args.models or settings.worker_models),
        concurrency=args.concurrency or settings.worker_concurrency,
        preload=tuple(args.preload or ()),
        burst=args.burst,
        metrics_port=args.metrics_port,
    )
    try:
        return run_worker(settings, options)
    except ValueError as exc:
        Console().print(f"[red]error:[/red] {exc}")
        return 2


def _worker_per_gpu(args: argparse.Namespace, settings: Settings) -> int:
    """``worker --gpus``: this process supervises one ``hyperlocal worker`` per device."""
    from hyperlocal.supervisor import Child, gpu_ids, supervise

    try:
        devices = gpu_ids(args.gpus)
    except ValueError as exc:
        Console(stderr=True).print(f"[red]error:[/red] {exc}")
        return 2
    children = [Child(d, tuple(_child_argv(args, i))) for i, d in enumerate(devices)]
    return supervise(children, settings.shutdown_grace_seconds)


def _child_argv(args: argparse.Namespace, index: int) -> list[str]:
    """``hyperlocal worker`` with this command's options, less ``--gpus``."""
    argv = [sys.executable, "-m", "hyperlocal", "worker"]
    options = {"--models": args.models, "--preload": args.preload}
    for flag, values in options.items():
        argv += [flag, *values] if values else []
    if args.concurrency:
        argv += ["--concurrency", str(args.concurrency)]
    if args.metrics_port is not None:
        argv += ["--metrics-port", str(args.metrics_port + index)]
    return argv + (["--burst"] if args.burst else [])


def show_settings(_args: argparse.Namespace, settings: Settings) -> int:
    table = Table("setting", "value", "description")
    for name, field in Settings.model_fields.items():
        value = getattr(settings, name)
        shown = "**********" if isinstance(value, SecretStr) else str(value)
        alias = field.validation_alias
        variable = alias if isinstance(alias, str) else f"HYPERLOCAL_{name.upper()}"
        table.add_row(variable, shown, field.description or "")
    Console(width=160).print(table)
    Console(width=160).print(_providers_table(settings))
    return 0


def _providers_table(settings: Settings) -> Table:
    """Which providers have a key (masked: its last four characters at most)."""
    from hyperlocal.engines.providers.registry import PROVIDER_GROUP, configs_of
    from hyperlocal.engines.registry import discover

    table = Table("provider", "configured", "key", "base URL", title="providers")
    for config in configs_of(settings, sorted(discover(PROVIDER_GROUP))):
        configured = "yes" if config.configured else "no"
        table.add_row(
            config.name, configured, f"{config.key_env}={config.masked_key()}", str(config.base_url)
        )
    return table
