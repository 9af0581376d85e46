"""One generation command's connection to a server, through the SDK (``hyperlocal.client``).

The server is ``HYPERLOCAL_URL`` (default ``http://127.0.0.1:8000``) with
``HYPERLOCAL_API_KEY``, or ``--url``/``--api-key``. While a command waits, a spinner or progress
bar shows on stderr; the output is saved to ``-o`` (default: the output's own file name).
``--json`` prints the server's JSON answer on stdout and shows no progress, for scripts. Errors
go to stderr: exit 1 for an API error, 2 for a usage error.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

from rich.console import Console

from hyperlocal.cli._command import Handler
from hyperlocal.settings import Settings

# The SDK (httpx) loads when a command runs, not when the parser is built: ``hyperlocal serve``
# has no use for it, and its start-up budget is 2 s.
if TYPE_CHECKING:
    from hyperlocal.client import Client, Job, JobStatus, MediaInput, MediaResult

__all__ = ["DEFAULT_URL", "Session", "UsageError", "command", "common_options", "media"]

DEFAULT_URL = "http://127.0.0.1:8000"
T = TypeVar("T")


class UsageError(Exception):
    """A command line or configuration that cannot work: exit 2 with the message."""


@dataclass
class Session:
    """One command's client and terminal: progress on stderr, results on stdout."""

    client: Client
    args: argparse.Namespace
    err: Console
    quiet: bool  # --json: stdout carries the JSON alone, and no progress shows

    def spin(self, label: str, call: Callable[[], T]) -> T:
        with nullcontext() if self.quiet else self.err.status(f"{label}..."):
            return call()

    def follow(self, job_id: str, label: str) -> Job:
        """Wait for a job, with a bar that shows its status and progress."""
        if self.quiet:
            return self.client.jobs.wait(job_id, timeout=self.args.timeout)
        from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

        columns = (SpinnerColumn(), TextColumn("{task.description}"), BarColumn())
        with Progress(*columns, TimeElapsedColumn(), console=self.err, transient=True) as bar:
            task = bar.add_task(f"{label} (queued)", total=None)

            def show(status: JobStatus, fraction: float | None) -> None:
                # The bar pulses until the server reports a fraction (the hosted API never does).
                bar.update(task, description=f"{label} ({status})")
                if fraction is not None:
                    bar.update(task, total=1.0, completed=fraction)

            return self.client.jobs.wait(job_id, timeout=self.args.timeout, progress=show)

    def save(self, url: str | None, output: str | None) -> Path:
        if not url:
            from hyperlocal.client import HyperlocalError

            raise HyperlocalError("the server returned no output URL")
        target = (
            Path(output) if output else Path(PurePosixPath(urlsplit(url).path).name or "output")
        )
        return self.spin(f"Downloading {target}", lambda: self.client.download(url, target))

    def produce(self, label: str, call: Callable[[], MediaResult]) -> int:
        """Run a synchronous generation, save its output, and report."""
        result = self.spin(label, call)
        return self.done(
            result.raw, self.save(result.output_url, self.args.output), result.credits_used
        )

    def done(self, raw: Mapping[str, Any], path: Path | None, credits_used: int) -> int:
        if self.quiet:
            sys.stdout.write(json.dumps(dict(raw), indent=2) + "\n")
        elif path is not None:
            sys.stdout.write(f"Saved {path} ({credits_used} credits)\n")
        return 0


def media(value: str) -> MediaInput:
    """A URL or data URI as given; anything else names a local file."""
    if value.startswith(("http://", "https://", "data:")):
        return value
    if not Path(value).is_file():
        raise UsageError(f"no such file: {value}")
    return Path(value)


def common_options() -> argparse.ArgumentParser:
    """The options that every generation command takes, as a parent parser."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--url", help=f"server URL (HYPERLOCAL_URL; default {DEFAULT_URL})")
    common.add_argument("--api-key", help="API key (HYPERLOCAL_API_KEY)")
    common.add_argument("--json", action="store_true", help="print the response JSON, no progress")
    common.add_argument("--timeout", type=float, default=600.0, help="seconds to wait (600)")
    return common


def _server_url(args: argparse.Namespace) -> str:
    return str(args.url or os.environ.get("HYPERLOCAL_URL") or DEFAULT_URL)


@contextmanager
def _open(args: argparse.Namespace, err: Console) -> Iterator[Session]:
    url, key = _server_url(args), args.api_key or os.environ.get("HYPERLOCAL_API_KEY")
    if not key:
        raise UsageError("no API key: set HYPERLOCAL_API_KEY or pass --api-key")
    from hyperlocal.client import Client

    with Client(url, key, timeout=max(args.timeout, 10.0)) as client:
        yield Session(client, args, err, quiet=bool(args.json))


def _hint(exc: Exception, args: argparse.Namespace) -> str:
    from hyperlocal import client as sdk

    if isinstance(exc, sdk.AuthenticationError):
        return " (check HYPERLOCAL_API_KEY or --api-key)"
    if isinstance(exc, sdk.InsufficientCredits):
        return f" (needs {exc.required}, the key has {exc.available})"
    if isinstance(exc, sdk.RateLimited) and exc.retry_after is not None:
        return f" (try again in {exc.retry_after:.0f} s)"
    if isinstance(exc, sdk.NetworkError):
        return f" (is a server running at {_server_url(args)}?)"
    return ""


def command(action: Callable[[Session], int]) -> Handler:
    """The handler that runs ``action`` in a session and prints its error, if any, with a hint."""

    def run(args: argparse.Namespace, _settings: Settings) -> int:
        # httpx logs every request at INFO: a server's log line, noise on a user's terminal.
        logging.getLogger("httpx").setLevel(logging.WARNING)
        from hyperlocal.client import HyperlocalError

        err = Console(stderr=True)
        try:
            with _open(args, err) as session:
                return action(session)
        except (UsageError, HyperlocalError, OSError) as exc:
            err.print(f"[red]error:[/red] {exc}{_hint(exc, args)}", highlight=False)
            return 2 if isinstance(exc, UsageError) else 1

    return run
