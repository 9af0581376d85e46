"""What stored files take: ``hyperlocal storage usage``."""

from __future__ import annotations

import argparse
import time
from typing import TYPE_CHECKING

from rich.console import Console
from rich.table import Table

from hyperlocal.cli._command import Handler, SubParsers, run_reporting, write_json
from hyperlocal.settings import Settings

if TYPE_CHECKING:
    from hyperlocal.core.storage_usage import StorageUsage, Tally

__all__ = ["add_commands", "storage"]


def add_commands(sub: SubParsers) -> dict[str, Handler]:
    actions = sub.add_parser("storage", help="stored outputs and inputs").add_subparsers(
        dest="action", required=True
    )
    usage = actions.add_parser("usage", help="bytes and files by kind and by age")
    usage.add_argument("--json", action="store_true")
    return {"storage": storage}


def storage(args: argparse.Namespace, settings: Settings) -> int:
    return run_reporting(_usage(args, settings))


async def _usage(args: argparse.Namespace, settings: Settings) -> int:
    from hyperlocal.core.storage_usage import measure
    from hyperlocal.runtime import open_private_storage, open_storage

    outputs, inputs = open_storage(settings), open_private_storage(settings)
    try:
        usage = await measure(outputs, inputs, time.time())
    finally:
        await outputs.aclose()
        await inputs.aclose()
    if args.json:
        write_json(usage.as_dict())
    else:
        Console().print(_table(usage))
    return 0


def _table(usage: StorageUsage) -> Table:
    table = Table("", "files", "bytes", title="Stored files")
    rows = [*usage.by_kind.items(), *usage.by_age.items(), ("total", usage.total)]
    for name, tally in rows:
        table.add_row(name, *_cells(tally), end_section=name in ("other", "older"))
    return table


def _cells(tally: Tally) -> tuple[str, str]:
    return str(tally.files), f"{tally.bytes:,}"
