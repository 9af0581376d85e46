"""What the command modules share: the handler's signature, the database a command opens, and
how results and errors print (results on stdout, ``error: ...`` on stderr).

The database, and with it the server's modules, load only when a command needs them, never to
build the parser: ``hyperlocal image`` and ``--help`` have no use for them.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, TypeAlias

from rich.console import Console

from hyperlocal.errors import HyperlocalError
from hyperlocal.settings import Settings

if TYPE_CHECKING:
    from hyperlocal.store.db import Database

Handler = Callable[[argparse.Namespace, Settings], int]
# A string: argparse's class cannot be subscripted at run time.
SubParsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


def write_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, indent=2) + "\n")


def fail(message: str, code: int = 1) -> int:
    """Prints ``error: message`` on stderr; returns ``code``, the exit status."""
    Console(stderr=True).print(f"[red]error:[/red] {message}")
    return code


def run_reporting(command: Coroutine[Any, Any, int]) -> int:
    """Runs an async command; a domain error ends it with its message and exit status 1."""
    try:
        return asyncio.run(command)
    except HyperlocalError as exc:
        return fail(exc.message)


@asynccontextmanager
async def database(settings: Settings) -> AsyncIterator[Database]:
    from hyperlocal.runtime import open_database

    db = await open_database(settings)
    try:
        yield db
    finally:
        await db.aclose()
