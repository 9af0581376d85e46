"""``hyperlocal workers``: each worker's devices, loaded models and jobs, from a running server.

It asks the server (``GET /admin/workers``) rather than the database: in the embedded shape
the server's own lanes are the worker, and only the server knows what they hold. The server
is ``HYPERLOCAL_URL`` (or ``--url``), the admin key ``HYPERLOCAL_ADMIN_KEY`` (or ``--key``).
"""

from __future__ import annotations

import argparse
import logging
import os
import time
from typing import Any

from rich.console import Console
from rich.table import Table

from hyperlocal.cli._command import Handler, SubParsers, fail, write_json
from hyperlocal.cli._session import DEFAULT_URL
from hyperlocal.settings import Settings

__all__ = ["add_commands", "show_workers"]

PATH = "/admin/workers"


def add_commands(sub: SubParsers) -> dict[str, Handler]:
    parser = sub.add_parser("workers", help="workers, their devices, models and jobs")
    parser.add_argument("--url", help=f"server URL (HYPERLOCAL_URL; default {DEFAULT_URL})")
    parser.add_argument("--key", help="an admin key (HYPERLOCAL_ADMIN_KEY)")
    parser.add_argument("--json", action="store_true", help="print the server's JSON")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds to wait (30)")
    return {"workers": show_workers}


def show_workers(args: argparse.Namespace, _settings: Settings) -> int:
    url = str(args.url or os.environ.get("HYPERLOCAL_URL") or DEFAULT_URL).rstrip("/")
    key = args.key or os.environ.get("HYPERLOCAL_ADMIN_KEY")
    if not key:
        return fail("no admin key: set HYPERLOCAL_ADMIN_KEY or pass --key", 2)
    view = _fetch(url, key, args.timeout)
    if isinstance(view, str):
        return fail(view)
    if args.json:
        write_json(view)
    else:
        console = Console()
        console.print(workers_table(view["workers"], time.time()))
        console.print(queues_table(view["queues"]))
    return 0


def _fetch(url: str, key: str, timeout: float) -> dict[str, Any] | str:
    """The server's view, or what went wrong."""
    import httpx

    logging.getLogger("httpx").setLevel(logging.WARNING)  # a request log line is noise here
    try:
        response = httpx.get(
            url + PATH, headers={"authorization": f"Bearer {key}"}, timeout=timeout
        )
    except httpx.HTTPError as exc:
        return f"{exc} (is a server running at {url}?)"
    if response.status_code != 200:
        return f"{PATH}: HTTP {response.status_code}: {_message(response)}"
    view: dict[str, Any] = response.json()
    return view


def _message(response: Any) -> str:
    try:
        return str(response.json().get("error") or response.text)
    except ValueError:
        return str(response.text[:200])


def workers_table(workers: list[dict[str, Any]], now: float) -> Table:
    table = Table("worker", "device", "used / budget", "free / total", "models", "running")
    table.title = f"{len(workers)} worker(s)"
    for worker in workers:
        for index, device in enumerate(worker["devices"]):
            first = index == 0
            table.add_row(
                _who(worker, now) if first else "",
                device["device"],
                f"{_size(device['used'])} / {_size(device['budget'])}",
                f"{_size(device['free'])} / {_size(device['total'])}",
                "\n".join(_model(m) for m in device["models"]) or "-",
                _running(worker["running"]) if first else "",
                end_section=index == len(worker["devices"]) - 1,
            )
    return table


def _who(worker: dict[str, Any], now: float) -> str:
    lines = [f"{worker['host']} pid {worker['pid']}"]
    if worker["gpus"] is not None:
        lines.append(f"CUDA_VISIBLE_DEVICES={worker['gpus']}")
    if worker["startedAt"] is not None:
        lines.append(f"up {_duration(now - worker['startedAt'])}")
    if not worker["probed"]:
        lines.append("(GPUs probed at the first load)")
    return "\n".join(lines)


def _model(model: dict[str, Any]) -> str:
    if model["loading"]:
        state = "loading"
    elif model["users"]:
        state = f"in use ({model['users']})"
    else:
        state = f"idle {_duration(model['idleSeconds'])}"
    pinned = ", pinned" if model["pinned"] else ""
    return f"{model['name']} ({model['engine']}) {_size(model['size'])}, {state}{pinned}"


def _running(running: dict[str, int]) -> str:
    return "\n".join(f"{model} x{n}" for model, n in sorted(running.items())) or "-"


def queues_table(queues: list[dict[str, Any]]) -> Table:
    table = Table("model", "queued", "running", title="jobs by model")
    for queue in queues:
        table.add_row(queue["model"], str(queue["queued"]), str(queue["running"]))
    return table


def _size(size: int) -> str:
    from hyperlocal.engines.local.shelf import readable

    return readable(size)


def _duration(seconds: float) -> str:
    seconds = max(0, int(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
