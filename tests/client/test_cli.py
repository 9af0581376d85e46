"""The generation commands, run as ``python -m hyperlocal ...`` subprocesses against a live
server, configured as a user would: ``HYPERLOCAL_URL`` and ``HYPERLOCAL_API_KEY``."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from tests.client.conftest import IssuedClientKey, Live
from tests.support import free_port, tiny_png


def hyperlocal(
    cwd: Path, *args: str, url: str, key: str | None, stdin: str | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HYPERLOCAL_")}
    env.update(HYPERLOCAL_URL=url, HYPERLOCAL_LOG_JSON="true", COLUMNS="200")
    if key is not None:
        env["HYPERLOCAL_API_KEY"] = key
    return subprocess.run(
        [sys.executable, "-m", "hyperlocal", *args],
        cwd=cwd,
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def ok(proc: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc


def test_image_json_saves_the_file(live: Live, user: IssuedClientKey, tmp_path: Path) -> None:
    proc = ok(
        hyperlocal(
            tmp_path,
            *("image", "a sunset over the ocean", "--aspect", "16:9", "-o", "sunset.png", "--json"),
            url=live.url,
            key=user.key,
        )
    )
    body = json.loads(proc.stdout)  # stdout is the JSON alone
    assert body["resultId"].startswith("res_") and body["creditsUsed"] == 4
    image = Image.open(io.BytesIO((tmp_path / "sunset.png").read_bytes()))
    assert image.format == "PNG" and abs(image.width / image.height - 16 / 9) < 0.01


def test_image_for_people_names_the_file(live: Live, user: IssuedClientKey, tmp_path: Path) -> None:
    proc = ok(hyperlocal(tmp_path, "image", "a cat", url=live.url, key=user.key))
    saved = list(tmp_path.glob("res_*.png"))
    assert len(saved) == 1
    assert proc.stdout.strip() == f"Saved {saved[0].name} (4 credits)"


def test_video_from_prompt_and_from_a_local_image(
    live: Live, user: IssuedClientKey, tmp_path: Path
) -> None:
    proc = ok(
        hyperlocal(
            tmp_path,
            *("video", "waves", "--model", "test-slow-video", "--duration", "10"),
            *("-o", "waves.mp4", "--json"),
            url=live.url,
            key=user.key,
        )
    )
    body = json.loads(proc.stdout)
    assert body["status"] == "completed" and body["creditsUsed"] == 20
    assert (tmp_path / "waves.mp4").stat().st_size > 0
    (tmp_path / "first.png").write_bytes(tiny_png())
    args = ("video", "pan", "--image", "first.png", "--model", "test-slow-video", "-o", "b.mp4")
    proc = ok(hyperlocal(tmp_path, *args, url=live.url, key=user.key))
    assert proc.stdout.strip() == "Saved b.mp4 (10 credits)"


def test_tts_and_3d(live: Live, user: IssuedClientKey, tmp_path: Path) -> None:
    args = ("tts", "hello", "--model", "test-slow-audio", "-o", "hi.mp3", "--json")
    body = json.loads(ok(hyperlocal(tmp_path, *args, url=live.url, key=user.key)).stdout)
    assert body["success"] is True and (tmp_path / "hi.mp3").exists()
    mesh = ("3d", "--prompt", "a house", "-o", "house.glb")
    ok(hyperlocal(tmp_path, *mesh, url=live.url, key=user.key))
    assert (tmp_path / "house.glb").read_bytes()[:4] == b"glTF"


@pytest.mark.slow
def test_speech_round_trip_with_the_real_engines(
    live: Live, user: IssuedClientKey, tmp_path: Path
) -> None:
    args = ("tts", "Hello world, this is a test.", "-o", "hello.wav")
    ok(hyperlocal(tmp_path, *args, url=live.url, key=user.key))
    assert (tmp_path / "hello.wav").read_bytes()[8:12] == b"WAVE"  # format from -o
    heard = ok(hyperlocal(tmp_path, "transcribe", "hello.wav", url=live.url, key=user.key))
    assert "hello world" in heard.stdout.lower()
    asr = hyperlocal(tmp_path, "transcribe", "hello.wav", "--json", url=live.url, key=user.key)
    assert json.loads(ok(asr).stdout)["segments"][0]["end"] > 0


def test_errors_go_to_stderr_with_a_non_zero_exit(live: Live, tmp_path: Path) -> None:
    bad = hyperlocal(tmp_path, "image", "x", "-o", "x.png", url=live.url, key="ck_wrong")
    assert bad.returncode == 1 and bad.stdout == ""
    assert bad.stderr.startswith("error: Unauthorized"), bad.stderr  # no request log lines
    assert "Unauthorized" in bad.stderr and "HYPERLOCAL_API_KEY" in bad.stderr
    assert not (tmp_path / "x.png").exists()
    poor = live.issue(credits=1)
    broke = hyperlocal(tmp_path, "image", "x", "--json", url=live.url, key=poor.key)
    assert broke.returncode == 1 and "needs 4, the key has 1" in broke.stderr
    missing = hyperlocal(tmp_path, "image", "x", url=live.url, key=None)
    assert missing.returncode == 2 and "no API key" in missing.stderr
    down = hyperlocal(tmp_path, "image", "x", url=f"http://127.0.0.1:{free_port()}", key="ck_x")
    assert down.returncode == 1 and "is a server running" in down.stderr


def test_usage_errors_exit_2(live: Live, user: IssuedClientKey, tmp_path: Path) -> None:
    both = hyperlocal(
        tmp_path, "3d", "--image", "a.png", "--prompt", "x", url=live.url, key=user.key
    )
    assert both.returncode == 2 and "exactly one" in both.stderr
    views = hyperlocal(tmp_path, "3d", "--front", "a.png", url=live.url, key=user.key)
    assert views.returncode == 2 and "--back" in views.stderr
    nothing = hyperlocal(tmp_path, "video", url=live.url, key=user.key)
    assert nothing.returncode == 2 and "prompt" in nothing.stderr
    no_file = hyperlocal(tmp_path, "video", "--image", "nope.png", url=live.url, key=user.key)
    assert no_file.returncode == 2 and "no such file: nope.png" in no_file.stderr
