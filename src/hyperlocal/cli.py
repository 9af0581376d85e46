"""The ``hyperlocal`` command. Thin: parse, configure logging, call a library function."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from hyperlocal.settings import Settings

__all__ = ["main"]

Handler = Callable[[argparse.Namespace, Settings], int]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hyperlocal", description="Self-hosted Hypereal API.")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the API server")
    serve.add_argument("--host", help="bind address (HYPERLOCAL_HOST)")
    serve.add_argument("--port", type=int, help="bind port (HYPERLOCAL_PORT)")
    _worker_parser(sub.add_parser("worker", help="run a scale-out worker (Celery on Redis)"))
    sub.add_parser("settings", help="print every setting with its help and current value")
    _models_parser(sub.add_parser("models", help="list the catalogue; pull or list local weights"))
    _keys_parser(sub.add_parser("keys", help="create, list and revoke API keys"))
    credits = sub.add_parser("credits", help="grant credits").add_subparsers(
        dest="action", required=True
    )
    grant = credits.add_parser("grant", help="add credits to a key")
    grant.add_argument("key_id")
    grant.add_argument("amount", type=int)
    grant.add_argument("--note", default="cli grant")
    from hyperlocal import generate_cli

    generate_cli.add_commands(sub)
    return parser


def _worker_parser(worker: argparse.ArgumentParser) -> None:
    worker.add_argument(
        "--models", nargs="+", metavar="GLOB", help="model ids to serve (HYPERLOCAL_WORKER_MODELS)"
    )
    worker.add_argument("--concurrency", type=int, help="jobs run at once")
    worker.add_argument(
        "--burst", action="store_true", help="exit once the queues are empty and no job runs"
    )


def _models_parser(models: argparse.ArgumentParser) -> None:
    models.add_argument("--json", action="store_true")
    local = models.add_subparsers(dest="action")
    pull = local.add_parser("pull", help="download weights into HYPERLOCAL_MODELS_DIR/NAME")
    pull.add_argument("name")
    pull.add_argument("repo_id", nargs="?", help="Hugging Face repo (default: the known one)")
    pull.add_argument("--revision")
    listing = local.add_parser("list", help="list local weights and their kinds")
    listing.add_argument("--json", action="store_true")


def _keys_parser(keys: argparse.ArgumentParser) -> None:
    actions = keys.add_subparsers(dest="action", required=True)
    create = actions.add_parser("create", help="issue a key (shown once)")
    create.add_argument("--name", required=True)
    create.add_argument("--credits", type=int, default=0)
    create.add_argument("--rate-limit", type=int, help="requests per rolling hour")
    create.add_argument("--max-running", type=int, help="jobs running at once")
    create.add_argument("--admin", action="store_true", help="may use /admin routes")
    create.add_argument("--json", action="store_true")
    listing = actions.add_parser("list", help="list keys (never the key itself)")
    listing.add_argument("--json", action="store_true")
    revoke = actions.add_parser("revoke", help="revoke a key by id")
    revoke.add_argument("key_id")


def _handlers() -> dict[str, Handler]:
    from hyperlocal import commands, generate_cli

    return {
        "serve": commands.serve,
        "worker": commands.worker,
        "settings": commands.show_settings,
        "models": commands.show_models,
        "keys": commands.keys,
        "credits": commands.credits,
        **generate_cli.handlers(),
    }


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    settings = Settings()
    from hyperlocal.logs import configure_logging

    configure_logging(settings.log_level, settings.log_json)
    try:
        return _handlers()[args.command](args, settings)
    except KeyboardInterrupt:
        return 130


def run(coro: Awaitable[Any]) -> Any:
    return asyncio.run(coro)  # type: ignore[arg-type]


def print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, indent=2) + "\n")
