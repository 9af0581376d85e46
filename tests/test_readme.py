"""Every shell command in the README either runs here, as written, or is skipped for a
stated reason. A new command in the README must be given one or the other."""

from __future__ import annotations

import asyncio
import io
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from hyperlocal.app import create_app
from hyperlocal.core import keys
from hyperlocal.core.keys import IssuedKey, KeySpec
from hyperlocal.runtime import open_database
from hyperlocal.settings import Settings
from tests.conftest import SettingsFactory
from tests.support import free_port, serve_in_thread

ROOT = Path(__file__).resolve().parents[1]
PLACEHOLDER_KEY_ID = "key_0123456789abcdef"

SKIPPED = {
    "make serve": "runs the server in the foreground; tests/cli/test_serve.py starts it",
    "make test": "this is the test run itself",
    "make lint": "run by CI as part of the quality tests",
    "make bench": "benchmarks are not timed tests",
    ".venv/bin/hyperlocal serve --host": "foreground server; tests/cli/test_serve.py",
    ".venv/bin/hyperlocal serve --host 0.0.0.0": "binds a public interface; never in tests",
    ".venv/bin/hyperlocal worker": "needs PostgreSQL + Redis scale-out; tests/scaleout",
    "export HYPERLOCAL_": "example values for another machine",
    ".venv/bin/hyperlocal chat": "interactive; tests/client/test_cli.py drives chat",
}


def readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    commands: list[str] = []
    for block in re.findall(r"```sh\n(.*?)```", text, flags=re.S):
        joined = block.replace("\\\n", " ")
        for raw in joined.splitlines():
            line = raw.split("  #", 1)[0].strip()
            if line and not line.startswith("#"):
                commands.append(line)
    return commands


def skip_reason(command: str) -> str | None:
    for prefix, reason in SKIPPED.items():
        if command.startswith(prefix):
            return reason
    return None


def test_every_readme_command_is_run_or_skipped_with_a_reason() -> None:
    commands = readme_commands()
    assert len(commands) > 15
    runnable = [c for c in commands if skip_reason(c) is None]
    assert all(c.startswith((".venv/bin/hyperlocal", "curl ")) for c in runnable), runnable


async def _issue(settings: Settings) -> tuple[IssuedKey, IssuedKey]:
    db = await open_database(settings)
    try:
        first = await keys.create_key(db, KeySpec("readme", 1000, 1000, 15))
        target = await keys.create_key(db, KeySpec("target", 0, 1000, 15))
        return first, target
    finally:
        await db.aclose()


@pytest.fixture
def live(make_settings: SettingsFactory, tmp_path: Path) -> Iterator[dict[str, str]]:
    port = free_port()
    settings = make_settings(catalog=None, public_url=f"http://127.0.0.1:{port}")
    first, target = asyncio.run(_issue(settings))
    with serve_in_thread(create_app(settings), port=port) as base:
        env = {k: v for k, v in os.environ.items() if not k.startswith("HYPERLOCAL_")}
        env.update(
            HYPERLOCAL_DATA_DIR=str(settings.data_dir),
            HYPERLOCAL_URL=base,
            HYPERLOCAL_API_KEY=first.key,
            HYPERLOCAL_LOG_JSON="true",
            TARGET_KEY_ID=target.info.id,
            BASE=base,
        )
        yield env


def _inputs(cwd: Path) -> None:
    from PIL import Image, ImageDraw

    for name in ("beach.png", "f.png", "b.png", "l.png"):
        image = Image.new("RGB", (256, 256), (235, 235, 240))
        ImageDraw.Draw(image).ellipse((64, 64, 192, 192), fill=(200, 60, 40))
        buf = io.BytesIO()
        image.save(buf, format="PNG")
        (cwd / name).write_bytes(buf.getvalue())


def _argv(command: str, env: dict[str, str]) -> list[str]:
    command = command.replace(PLACEHOLDER_KEY_ID, env["TARGET_KEY_ID"])
    command = command.replace("http://127.0.0.1:8000", env["BASE"])
    command = command.replace("$HYPERLOCAL_API_KEY", env["HYPERLOCAL_API_KEY"])
    argv = shlex.split(command)
    if argv[0] == ".venv/bin/hyperlocal":
        argv[0:1] = [sys.executable, "-m", "hyperlocal"]
    return argv


@pytest.mark.slow
def test_readme_commands_run_as_written(live: dict[str, str], tmp_path: Path) -> None:
    _inputs(tmp_path)
    for command in readme_commands():
        if skip_reason(command) is not None:
            continue
        result = subprocess.run(
            _argv(command, live),
            cwd=tmp_path,
            env=live,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert result.returncode == 0, f"{command}\n{result.stdout}\n{result.stderr}"
        if command.startswith("curl "):
            assert '"resultId"' in result.stdout and '"creditsUsed":4' in result.stdout
    for produced in ("sunset.png", "beach.mp4", "hello.mp3", "model.glb"):
        assert (tmp_path / produced).stat().st_size > 0
