"""The model catalogue and local weights: ``hyperlocal models [--json]``, ``models list`` and
``models pull`` (the weights themselves are ``engines.local.weights``)."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from typing import Any

from rich.console import Console
from rich.table import Table

from hyperlocal.cli._command import Handler, SubParsers, fail, write_json
from hyperlocal.errors import HyperlocalError
from hyperlocal.settings import Settings

__all__ = ["add_commands", "show_models"]


def add_commands(sub: SubParsers) -> dict[str, Handler]:
    models = sub.add_parser("models", help="list the catalogue; pull or list local weights")
    models.add_argument("--json", action="store_true")
    local = models.add_subparsers(dest="action")
    pull = local.add_parser("pull", help="download weights into HYPERLOCAL_MODELS_DIR/NAME")
    pull.add_argument("name")
    pull.add_argument("repo_id", nargs="?", help="Hugging Face repo (default: the known one)")
    pull.add_argument("--revision")
    listing = local.add_parser("list", help="list local weights and their kinds")
    listing.add_argument("--json", action="store_true")
    return {"models": show_models}


def show_models(args: argparse.Namespace, settings: Settings) -> int:
    if args.action == "list":
        return _installed(args, settings)
    if args.action == "pull":
        return _pull(args, settings)
    return _catalogue(args, settings)


def _catalogue(args: argparse.Namespace, settings: Settings) -> int:
    from hyperlocal.core.catalog import load_catalog

    router = _router(settings)
    rows: list[dict[str, Any]] = [
        {
            "id": e.id,
            "category": e.category.value,
            "engine": e.engine,
            "route": router.active(e),
            "routes": [r.to for r in e.routes],
            "price": e.price.model_dump(exclude_defaults=True),
            "evidence": e.evidence.value,
        }
        for e in load_catalog(settings.catalog)
    ]
    if args.json:
        write_json(rows)
        return 0
    table = Table("id", "category", "serves it now", "price", "evidence")
    for row in rows:
        price = f"{row['price']['kind']} {row['price']['credits']}"
        route = row["route"]
        shown = route if not route.startswith("engine:") or not row["routes"] else f"{route} *"
        table.add_row(row["id"], row["category"], shown, price, row["evidence"])
    Console(width=160).print(table)
    real = sum(1 for row in rows if not row["route"].startswith("engine:"))
    Console().print(
        f"{real} of {len(rows)} ids reach their real model through a provider key; "
        "* marks a built-in stand-in where a provider route exists but has no key "
        "(docs/providers.md)."
    )
    return 0


def _router(settings: Settings) -> Any:
    from hyperlocal.engines.base import EngineContext
    from hyperlocal.engines.providers.hub import WebhookHub
    from hyperlocal.engines.providers.registry import ProviderRegistry
    from hyperlocal.engines.providers.router import Router
    from hyperlocal.engines.registry import EngineRegistry, discover_factories

    engines = EngineRegistry(EngineContext(settings), discover_factories())
    return Router(settings, engines, ProviderRegistry(settings), WebhookHub())


def _installed(args: argparse.Namespace, settings: Settings) -> int:
    from hyperlocal.engines.local import weights

    directory = weights.models_dir(settings)
    models = weights.installed(directory)
    if args.json:
        rows = [{**asdict(m), "path": str(m.path), "kind": m.kind.value} for m in models]
        Console().print_json(json.dumps(rows))
        return 0
    table = Table(title=f"Local weights in {directory}")
    for column in ("name", "kind", "size"):
        table.add_column(column)
    for model in models:
        table.add_row(model.name, model.kind.value, _human(model.size))
    Console().print(table)
    return 0


def _pull(args: argparse.Namespace, settings: Settings) -> int:
    from hyperlocal.engines.local import weights

    directory = weights.models_dir(settings)
    try:
        got = weights.pull_named(
            args.name, args.repo_id, models_dir=directory, revision=args.revision
        )
    except HyperlocalError as exc:
        return fail(exc.message)
    Console().print(f"{got.name}: {got.kind.value}, {got.size} bytes in {got.path}")
    return 0


def _human(size: int) -> str:
    value = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GB"
