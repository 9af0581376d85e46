"""The ``hyperlocal`` command. Thin: parse, configure logging, call a library function.

Each module adds its subcommands to the parser and returns their handlers:

=============  ==================================================================
``server``     ``serve``, ``worker``, ``settings``
``models``     ``models [list | pull]``: the catalogue and local weights
``keys``       ``keys create | list | revoke``, ``credits grant``
``storage``    ``storage usage``: bytes and files by kind and by age
``workers``    ``workers``: each worker's devices, models and jobs (from a server)
``generate``   ``image``, ``video``, ``tts``, ``clone``, ``transcribe``, ``music``,
               ``3d``, ``chat``: through the SDK, against any server
=============  ==================================================================
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from hyperlocal.cli import generate, keys, models, server, storage, workers
from hyperlocal.cli._command import Handler
from hyperlocal.logs import configure_logging
from hyperlocal.settings import Settings

__all__ = ["main"]


def _parser() -> tuple[argparse.ArgumentParser, dict[str, Handler]]:
    parser = argparse.ArgumentParser(prog="hyperlocal", description="Self-hosted Hypereal API.")
    sub = parser.add_subparsers(dest="command", required=True)
    handlers: dict[str, Handler] = {}
    groups = (
        server.add_commands,
        models.add_commands,
        keys.add_commands,
        storage.add_commands,
        workers.add_commands,
        generate.add_commands,
    )
    for add_commands in groups:  # in the order that ``hyperlocal --help`` lists them
        handlers |= add_commands(sub)
    return parser, handlers


def main(argv: Sequence[str] | None = None) -> int:
    parser, handlers = _parser()
    args = parser.parse_args(argv)
    settings = Settings()
    configure_logging(settings.log_level, settings.log_json)
    try:
        return handlers[args.command](args, settings)
    except KeyboardInterrupt:
        return 130
