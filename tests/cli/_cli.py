"""Running the real ``hyperlocal`` command as a subprocess against its own data directory."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HYPERLOCAL = [sys.executable, "-m", "hyperlocal"]


def cli_env(data_dir: Path, **extra: str) -> dict[str, str]:
    """The caller's environment without any ``HYPERLOCAL_*`` setting, plus test settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HYPERLOCAL_")}
    env.pop("COLUMNS", None)  # a narrow terminal would wrap the printed keys
    env.update(HYPERLOCAL_DATA_DIR=str(data_dir), HYPERLOCAL_LOG_JSON="true", **extra)
    return env


@dataclass
class Cli:
    """Runs ``hyperlocal`` in ``cwd`` (so no stray ``.env`` is read) with one data directory."""

    cwd: Path
    env: dict[str, str] = field(default_factory=dict)

    @property
    def data_dir(self) -> Path:
        return Path(self.env["HYPERLOCAL_DATA_DIR"])

    def run(
        self, *args: str, ok: bool = True, env: Mapping[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [*HYPERLOCAL, *args],
            cwd=self.cwd,
            env={**self.env, **(env or {})},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if ok:
            assert proc.returncode == 0, (
                f"hyperlocal {args} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}"
            )
        return proc

    def json(self, *args: str) -> Any:
        return json.loads(self.run(*args).stdout)
