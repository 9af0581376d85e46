"""Each CLI test gets its own data directory and working directory."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli._cli import Cli, cli_env


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    return Cli(cwd=tmp_path, env=cli_env(tmp_path / "data"))
