"""Compressed bombs and lying headers against a real server process (issue 16, defects 3 and 4).

A FLAC of silence holds hours in kilobytes (``tests/flac.py``). Before the fix, the server
accepted three hours of 48 kHz stereo as one minute of speech and decoded all of it (4.7 GB
peak). Now the container's headers are checked against the model's caps before anything is
charged or decoded, decoding counts as it goes, and a ``per_minute`` price follows the length:
charged on the headers' length, settled on the decoded one.

Memory is the server's own peak resident set (``VmHWM``), read from ``/proc`` after the
requests: under 1 GB, against the several gigabytes that a full decode of a bomb needs.
"""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from hyperlocal.core import keys
from hyperlocal.core.keys import KeySpec
from hyperlocal.runtime import open_database
from hyperlocal.settings import Settings
from tests.flac import silent_flac
from tests.processes import server_env, server_process
from tests.support import TEST_CATALOG, free_port

CREDITS = 1000
PEAK_LIMIT = 1 << 30  # bytes of resident memory, the server's whole life
ASR_CAP_S = 7200  # audio-asr's caps.audio_seconds in the built-in catalogue
KEYS = ("bombs", "liar", "priced", "shorter")

# A per_minute model on the slow stand-in engine, which decodes nothing and reports no length:
# what it is charged is what the submit priced, so 90 minutes of audio can be priced without
# 90 minutes of speech recognition.
_PRICED_MODEL = """
[[model]]
id = "test-priced-asr"
category = "audio"
name = "per_minute stand-in"
engine = "test-slow"
price = { kind = "per_minute", credits = 1 }
inputs.audio = { type = "audio", required = true }
inputs.seconds = { type = "number", minimum = 0, maximum = 30 }
"""


@dataclass(frozen=True)
class Server:
    url: str
    pid: int
    keys: dict[str, str]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    folder = tmp_path_factory.mktemp("media-bounds")
    catalog = folder / "catalog.toml"
    catalog.write_text(TEST_CATALOG.read_text("utf-8") + _PRICED_MODEL, "utf-8")
    settings = Settings(_env_file=None, data_dir=folder / "data", catalog=catalog)  # type: ignore[call-arg]
    issued = asyncio.run(_issue_keys(settings))
    port = free_port()
    env = server_env(settings.data_dir, HYPERLOCAL_CATALOG=str(catalog))
    with server_process(port, env, folder / "server.log") as proc:
        yield Server(f"http://127.0.0.1:{port}", proc.pid, issued)


async def _issue_keys(settings: Settings) -> dict[str, str]:
    db = await open_database(settings)
    try:
        return {
            name: (await keys.create_key(db, KeySpec(name, CREDITS, 1000, 5))).key for name in KEYS
        }
    finally:
        await db.aclose()


def _submit(server: Server, key: str, model: str, flac: bytes) -> httpx.Response:
    """An audio job, answered 202 at once (``Prefer: respond-async``) or refused."""
    uri = "data:audio/flac;base64," + base64.b64encode(flac).decode()
    headers = {"Authorization": f"Bearer {key}", "Prefer": "respond-async"}
    body = {"model": model, "input": {"audio": uri, "seconds": 0.05}}
    return httpx.post(f"{server.url}/v1/audio/generate", json=body, headers=headers, timeout=60)


def _finished(server: Server, key: str, job_id: str, timeout: float = 60) -> dict[str, Any]:
    """The job once it is no longer processing (the bound only fails a hung job)."""
    deadline = time.monotonic() + timeout
    while True:
        job = _get(server, key, f"/v1/jobs/{job_id}")
        if job["status"] != "processing":
            return job
        assert time.monotonic() < deadline, f"job {job_id} still processing after {timeout} s"
        time.sleep(0.05)


def _get(server: Server, key: str, path: str) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {key}"}
    response = httpx.get(f"{server.url}{path}", headers=headers, timeout=30)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _balance(server: Server, key: str) -> int:
    return int(_get(server, key, "/v1/account")["credits"])


def _peak_rss(server: Server) -> int:
    for line in Path(f"/proc/{server.pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM in /proc status")


def test_compressed_bombs_are_refused_before_decoding(server: Server) -> None:
    """Three hours of 48 kHz stereo in 140 kB (4.1 GB as float32), its length stated; and ten
    hours of 8 kHz in 62 kB whose header leaves the length out (as a streaming encoder does),
    so that only counting while decoding finds it. Both 400, nothing charged."""
    key = server.keys["bombs"]
    bombs = {
        "stated": silent_flac(3 * 3600, 48000, channels=2),
        "unstated": silent_flac(10 * 3600, 8000, stated=0),
    }
    for name, flac in bombs.items():
        response = _submit(server, key, "audio-asr", flac)
        assert response.status_code == 400, (name, response.status_code, response.text)
        assert f"{ASR_CAP_S} s" in response.json()["error"], (name, response.text)
    assert _balance(server, key) == CREDITS
    assert _peak_rss(server) < PEAK_LIMIT, f"peak RSS {_peak_rss(server) / 2**20:.0f} MiB"


def test_a_header_that_understates_fails_the_job_and_refunds(server: Server) -> None:
    """A header that says one minute over ten hours of frames: charged one minute, then the
    decoder stops a second past the stated length; the job fails, refunded in full."""
    key = server.keys["liar"]
    response = _submit(server, key, "audio-asr", silent_flac(10 * 3600, 8000, stated=60))
    assert response.status_code == 202, response.text
    assert response.json()["creditsUsed"] == 1
    job = _finished(server, key, response.json()["jobId"])
    assert job["status"] == "failed", job
    assert "more audio than the 60.0 s its header states" in job["error"], job
    assert _balance(server, key) == CREDITS
    assert _peak_rss(server) < PEAK_LIMIT, f"peak RSS {_peak_rss(server) / 2**20:.0f} MiB"


def test_per_minute_price_follows_the_stated_length(server: Server) -> None:
    """Ninety minutes of audio (10 kB of FLAC) cost 90 credits, not 1."""
    key = server.keys["priced"]
    response = _submit(server, key, "test-priced-asr", silent_flac(90 * 60, 8000))
    assert response.status_code == 202, response.text
    assert response.json()["creditsUsed"] == 90
    job = _finished(server, key, response.json()["jobId"])
    assert (job["status"], job["creditsUsed"]) == ("completed", 90), job
    assert _balance(server, key) == CREDITS - 90


def test_speech_shorter_than_stated_is_refunded_the_difference(server: Server) -> None:
    """audio-asr on a header of 90 minutes over 3 s of frames: charged 90 at submit; once
    decoded and transcribed, the job costs 1, and 89 come back with its completion."""
    key = server.keys["shorter"]
    response = _submit(server, key, "audio-asr", silent_flac(3, 16000, stated=90 * 60))
    assert response.status_code == 202, response.text
    assert response.json()["creditsUsed"] == 90
    job = _finished(server, key, response.json()["jobId"])
    assert (job["status"], job["creditsUsed"]) == ("completed", 1), job
    assert _balance(server, key) == CREDITS - 1
    ledger = _get(server, key, "/v1/account/ledger")["data"]
    assert [line["amount"] for line in ledger][:2] == [89, -90], ledger
