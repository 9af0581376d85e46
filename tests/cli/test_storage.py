"""``hyperlocal storage usage``: what stored files take, by kind and by age."""

from __future__ import annotations

import os
import time
from pathlib import Path

from tests.cli._cli import Cli

DAY = 86_400


def put(path: Path, size: int, age_s: float) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x" * size)
    then = time.time() - age_s
    os.utime(path, (then, then))


def test_usage_counts_bytes_and_files_by_kind_and_age(cli: Cli) -> None:
    files, private = cli.data_dir / "files", cli.data_dir / "private"
    put(files / "images" / "res_a.png", 100, 60)
    put(files / "images" / "res_b.png", 200, 2 * 3600)
    put(files / "videos" / "job_c.mp4", 1000, 2 * DAY)
    put(files / "3d" / "job_d.glb", 10, 30 * DAY)
    put(private / "inputs" / "job_c" / "t0ken-image-0", 50, 2 * DAY)

    report = cli.json("storage", "usage", "--json")

    kinds, ages = report["byKind"], report["byAge"]
    assert kinds["images"] == {"files": 2, "bytes": 300}
    assert kinds["videos"] == {"files": 1, "bytes": 1000}
    assert kinds["3d"] == {"files": 1, "bytes": 10}
    assert kinds["inputs"] == {"files": 1, "bytes": 50}
    assert kinds["audio"] == kinds["other"] == {"files": 0, "bytes": 0}
    assert ages == {
        "<1h": {"files": 1, "bytes": 100},
        "<1d": {"files": 1, "bytes": 200},
        "<7d": {"files": 2, "bytes": 1050},
        "older": {"files": 1, "bytes": 10},
    }
    assert report["total"] == {"files": 5, "bytes": 1360}
    table = cli.run("storage", "usage").stdout
    assert "videos" in table and "1,360" in table
