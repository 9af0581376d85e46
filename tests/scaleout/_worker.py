"""``hyperlocal worker`` with the test engines registered, run as ``python -m
tests.scaleout._worker [--models GLOB ...] [--concurrency N] [--burst] [--metrics-port P]``.

A subprocess cannot see ``create_app(engines=...)``; this launcher hands the same stand-in
engines (``tests.support.TEST_ENGINES``) to the real worker entry function instead.
"""

from __future__ import annotations

import argparse
import sys

from hyperlocal.logs import configure_logging
from hyperlocal.settings import Settings
from hyperlocal.worker import WorkerOptions, run_worker
from tests.support import TEST_ENGINES


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="tests.scaleout._worker")
    parser.add_argument("--models", nargs="+", default=["scaleout-*"])
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--burst", action="store_true")
    parser.add_argument("--metrics-port", type=int)
    args = parser.parse_args(argv)
    settings = Settings()
    configure_logging(settings.log_level, settings.log_json)
    options = WorkerOptions(tuple(args.models), args.concurrency, args.burst, args.metrics_port)
    return run_worker(settings, options, engines=TEST_ENGINES)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
