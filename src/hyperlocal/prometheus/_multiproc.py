"""Multiprocess mode's bookkeeping for processes that ended.

The client keeps each process's live gauges (``multiprocess_mode="livesum"``, such as
``hyperlocal_models_loaded``) in files named for its pid, and counts them until
``mark_process_dead`` removes them: gunicorn's ``child_exit`` hook calls it, but uvicorn's
``--workers`` supervisor has no such hook, and a worker that is killed cannot call it itself.
So every scrape first buries the live-gauge files of pids that no longer run: a dead worker's
loaded models stop counting at the next scrape. Counters and histograms of dead processes are
kept, as the client documents: their totals stay true.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from pathlib import Path

from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

__all__ = ["EveryProcess", "bury_dead", "running"]

_LIVE_FILE = re.compile(r"gauge_live[a-z]+_(\d+)\.db")


def bury_dead(directory: str) -> list[int]:
    """Mark every process dead whose live gauges lie in ``directory`` and which no longer
    runs; the pids buried."""
    pids = {
        int(m.group(1)) for p in Path(directory).iterdir() if (m := _LIVE_FILE.fullmatch(p.name))
    }
    dead = sorted(pid for pid in pids if not running(pid))
    for pid in dead:
        mark_process_dead(pid, directory)  # type: ignore[no-untyped-call]
    return dead


def running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: it runs
        return True
    return True


class EveryProcess:
    """The numbers of every process writing ``directory`` (``MultiProcessCollector``), once
    the live gauges of those that ended are buried (``bury_dead``)."""

    def __init__(self, directory: str) -> None:
        self._directory = directory
        self._inner = MultiProcessCollector(None, path=directory)  # type: ignore[no-untyped-call]

    def collect(self) -> Iterable[Metric]:
        bury_dead(self._directory)
        return self._inner.collect()  # type: ignore[no-untyped-call,no-any-return]
