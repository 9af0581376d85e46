"""What each CLI command does. ``cli.py`` parses; this module acts and prints."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any

from pydantic import SecretStr
from rich.console import Console
from rich.panel import Panel
from rich.table import Table

from hyperlocal.core import keys as key_core
from hyperlocal.core import ledger
from hyperlocal.core.catalog import load_catalog
from hyperlocal.core.keys import IssuedKey, KeyInfo, KeySpec
from hyperlocal.errors import HyperlocalError
from hyperlocal.runtime import open_database
from hyperlocal.settings import Settings

__all__ = ["credits", "keys", "serve", "show_models", "show_settings", "worker"]

console = Console()
errors = Console(stderr=True)


def _json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, indent=2) + "\n")


def serve(args: argparse.Namespace, settings: Settings) -> int:
    import uvicorn

    from hyperlocal.app import create_app

    host, port = args.host or settings.host, args.port or settings.port
    for issued in asyncio.run(_bootstrap(settings)):
        _announce(issued)
    if settings.bootstrap_keys:  # the bootstrap just migrated; don't pay for it twice
        settings = settings.model_copy(update={"migrate_on_start": False})
    console.print(f"hyperlocal listening on http://{host}:{port}  (docs at /docs)")
    uvicorn.run(create_app(settings), host=host, port=port, log_config=None, proxy_headers=False)
    return 0


async def _bootstrap(settings: Settings) -> list[IssuedKey]:
    if not settings.bootstrap_keys:
        return []
    db = await open_database(settings)
    try:
        admin = KeySpec.with_defaults(settings, "admin", is_admin=True)
        first = KeySpec.with_defaults(settings, "default", settings.bootstrap_credits)
        return await key_core.bootstrap(db, admin, first)
    finally:
        await db.aclose()


def _announce(issued: IssuedKey) -> None:
    role = "Admin key" if issued.info.is_admin else f"API key ({issued.info.credits} credits)"
    body = (
        f"[bold]{issued.key}[/bold]\nwebhook secret: {issued.webhook_secret}\nid: {issued.info.id}"
    )
    # Printed to the terminal once, never logged; only its hash is stored.
    Console(stderr=False).print(Panel(body, title=f"{role}: shown only now, save it"))


def worker(args: argparse.Namespace, settings: Settings) -> int:
    from hyperlocal.worker import WorkerOptions, run_worker

    options = WorkerOptions(
        models=tuple(args.models or settings.worker_models),
        concurrency=args.concurrency or settings.worker_concurrency,
        burst=args.burst,
    )
    try:
        return run_worker(settings, options)
    except ValueError as exc:
        console.print(f"[red]error:[/red] {exc}")
        return 2


def show_settings(_args: argparse.Namespace, settings: Settings) -> int:
    table = Table("setting", "value", "description")
    for name, field in Settings.model_fields.items():
        value = getattr(settings, name)
        shown = "**********" if isinstance(value, SecretStr) else str(value)
        table.add_row(f"HYPERLOCAL_{name.upper()}", shown, field.description or "")
    Console(width=160).print(table)
    return 0


def show_models(args: argparse.Namespace, settings: Settings) -> int:
    if args.action == "list":
        from hyperlocal import weights

        weights.show_installed(weights.models_dir(settings), as_json=args.json)
        return 0
    if args.action == "pull":
        return _pull(args, settings)
    catalog = load_catalog(settings.catalog)
    rows: list[dict[str, Any]] = [
        {
            "id": e.id,
            "category": e.category.value,
            "engine": e.engine,
            "price": e.price.model_dump(exclude_defaults=True),
            "evidence": e.evidence.value,
        }
        for e in catalog
    ]
    if args.json:
        _json(rows)
        return 0
    table = Table("id", "category", "engine", "price", "evidence")
    for row in rows:
        price = row["price"]
        table.add_row(
            row["id"],
            row["category"],
            row["engine"],
            f"{price['kind']} {price['credits']}",
            row["evidence"],
        )
    Console(width=140).print(table)
    return 0


def _pull(args: argparse.Namespace, settings: Settings) -> int:
    from hyperlocal import weights

    try:
        got = weights.pull_named(
            args.name, args.repo_id, models_dir=weights.models_dir(settings), revision=args.revision
        )
    except HyperlocalError as exc:
        errors.print(f"[red]error:[/red] {exc.message}")
        return 1
    console.print(f"{got.name}: {got.kind.value}, {got.size} bytes in {got.path}")
    return 0


def keys(args: argparse.Namespace, settings: Settings) -> int:
    actions = {"create": _keys_create, "list": _keys_list, "revoke": _keys_revoke}
    return asyncio.run(_with_errors(actions[args.action](args, settings)))


def credits(args: argparse.Namespace, settings: Settings) -> int:
    return asyncio.run(_with_errors(_grant(args, settings)))


async def _with_errors(coro: Any) -> int:
    try:
        result: int = await coro
    except HyperlocalError as exc:
        errors.print(f"[red]error:[/red] {exc.message}")
        return 1
    return result


async def _keys_create(args: argparse.Namespace, settings: Settings) -> int:
    spec = KeySpec.with_defaults(
        settings,
        args.name,
        args.credits,
        rate_limit=args.rate_limit,
        max_running_jobs=args.max_running,
        is_admin=args.admin,
    )
    db = await open_database(settings)
    try:
        issued = await key_core.create_key(db, spec)
    finally:
        await db.aclose()
    if args.json:
        _json(
            {
                "id": issued.info.id,
                "key": issued.key,
                "webhookSecret": issued.webhook_secret,
                "credits": issued.info.credits,
            }
        )
    else:
        _announce(issued)
    return 0


def _key_row(info: KeyInfo) -> dict[str, Any]:
    return {
        "id": info.id,
        "name": info.name,
        "prefix": info.prefix,
        "admin": info.is_admin,
        "credits": info.credits,
        "rateLimit": info.rate_limit,
        "revoked": info.revoked,
    }


async def _keys_list(args: argparse.Namespace, settings: Settings) -> int:
    db = await open_database(settings)
    try:
        rows = [_key_row(k) for k in await key_core.list_keys(db)]
    finally:
        await db.aclose()
    if args.json:
        _json(rows)
        return 0
    table = Table(*rows[0].keys()) if rows else Table("id")
    for row in rows:
        table.add_row(*(str(v) for v in row.values()))
    console.print(table)
    return 0


async def _keys_revoke(args: argparse.Namespace, settings: Settings) -> int:
    db = await open_database(settings)
    try:
        await key_core.revoke(db, args.key_id)
    finally:
        await db.aclose()
    console.print(f"revoked {args.key_id}")
    return 0


async def _grant(args: argparse.Namespace, settings: Settings) -> int:
    if args.amount <= 0:
        errors.print("[red]error:[/red] amount must be positive")
        return 2
    db = await open_database(settings)
    try:
        balance = await ledger.grant_to(db, args.key_id, args.amount, args.note)
    finally:
        await db.aclose()
    console.print(f"{args.key_id}: balance {balance}")
    return 0
