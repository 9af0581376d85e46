"""API keys and their credits: ``hyperlocal keys create|list|revoke`` and ``credits grant``."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.panel import Panel
from rich.table import Table

from hyperlocal.cli._command import Handler, SubParsers, database, fail, run_reporting, write_json
from hyperlocal.settings import Settings

if TYPE_CHECKING:
    from hyperlocal.core.keys import IssuedKey, KeyInfo

__all__ = ["add_commands", "announce", "grant_credits", "manage_keys"]


def add_commands(sub: SubParsers) -> dict[str, Handler]:
    _keys_args(sub.add_parser("keys", help="create, list and revoke API keys"))
    credits = sub.add_parser("credits", help="grant credits").add_subparsers(
        dest="action", required=True
    )
    grant = credits.add_parser("grant", help="add credits to a key")
    grant.add_argument("key_id")
    grant.add_argument("amount", type=int)
    grant.add_argument("--note", default="cli grant")
    return {"keys": manage_keys, "credits": grant_credits}


def _keys_args(keys: argparse.ArgumentParser) -> None:
    actions = keys.add_subparsers(dest="action", required=True)
    create = actions.add_parser("create", help="issue a key (shown once)")
    create.add_argument("--name", required=True)
    create.add_argument("--credits", type=int, default=0)
    create.add_argument("--rate-limit", type=int, help="requests per rolling hour")
    create.add_argument("--max-running", type=int, help="jobs running at once")
    create.add_argument("--admin", action="store_true", help="may use /admin routes")
    create.add_argument(
        "--priority",
        type=int,
        choices=(0, 1, 2),
        default=0,
        help="0 normal (the default), 1 high, 2 highest: within a model's queue, the key's jobs "
        "start before the waiting jobs of lower-priority keys",
    )
    create.add_argument("--json", action="store_true")
    listing = actions.add_parser("list", help="list keys (never the key itself)")
    listing.add_argument("--json", action="store_true")
    revoke = actions.add_parser("revoke", help="revoke a key by id")
    revoke.add_argument("key_id")


def manage_keys(args: argparse.Namespace, settings: Settings) -> int:
    actions = {"create": _create, "list": _list, "revoke": _revoke}
    return run_reporting(actions[args.action](args, settings))


def grant_credits(args: argparse.Namespace, settings: Settings) -> int:
    return run_reporting(_grant(args, settings))


def announce(issued: IssuedKey) -> None:
    """Prints a new key once, to the terminal: it is never logged, and only its hash is kept."""
    role = "Admin key" if issued.info.is_admin else f"API key ({issued.info.credits} credits)"
    body = (
        f"[bold]{issued.key}[/bold]\nwebhook secret: {issued.webhook_secret}\nid: {issued.info.id}"
    )
    Console(stderr=False).print(Panel(body, title=f"{role}: shown only now, save it"))


async def _create(args: argparse.Namespace, settings: Settings) -> int:
    from hyperlocal.core.keys import KeySpec, create_key

    spec = KeySpec.with_defaults(
        settings,
        args.name,
        args.credits,
        rate_limit=args.rate_limit,
        max_running_jobs=args.max_running,
        is_admin=args.admin,
        priority=args.priority,
    )
    async with database(settings) as db:
        issued = await create_key(db, spec)
    if not args.json:
        announce(issued)
        return 0
    info = issued.info
    key = {"id": info.id, "key": issued.key, "webhookSecret": issued.webhook_secret}
    write_json({**key, "credits": info.credits})
    return 0


def _key_row(info: KeyInfo) -> dict[str, Any]:
    return {
        "id": info.id,
        "name": info.name,
        "prefix": info.prefix,
        "admin": info.is_admin,
        "credits": info.credits,
        "rateLimit": info.rate_limit,
        "priority": info.priority,
        "revoked": info.revoked,
    }


async def _list(args: argparse.Namespace, settings: Settings) -> int:
    from hyperlocal.core.keys import list_keys

    async with database(settings) as db:
        rows = [_key_row(k) for k in await list_keys(db)]
    if args.json:
        write_json(rows)
        return 0
    table = Table(*rows[0].keys()) if rows else Table("id")
    for row in rows:
        table.add_row(*(str(v) for v in row.values()))
    Console().print(table)
    return 0


async def _revoke(args: argparse.Namespace, settings: Settings) -> int:
    from hyperlocal.core.keys import revoke

    async with database(settings) as db:
        await revoke(db, args.key_id)
    Console().print(f"revoked {args.key_id}")
    return 0


async def _grant(args: argparse.Namespace, settings: Settings) -> int:
    if args.amount <= 0:
        return fail("amount must be positive", 2)
    from hyperlocal.core.ledger import grant_to

    async with database(settings) as db:
        balance = await grant_to(db, args.key_id, args.amount, args.note)
    Console().print(f"{args.key_id}: balance {balance}")
    return 0
