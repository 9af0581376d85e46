"""``GET /metrics``: who may read it, what turning metrics off leaves, the bind of its own, and
several processes writing one ``PROMETHEUS_MULTIPROC_DIR``. What the counters count, against a
real Prometheus, is ``tests/test_prometheus.py``."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
from asgi_lifespan import LifespanManager
from fastapi import FastAPI

from hyperlocal.app import create_app
from hyperlocal.core import keys
from hyperlocal.core.keys import IssuedKey, KeySpec
from tests.conftest import KeyFactory, SettingsFactory, auth, services_of
from tests.support import TEST_ENGINES, free_port

ROOT = Path(__file__).resolve().parents[2]


@asynccontextmanager
async def _client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with LifespanManager(app, startup_timeout=30, shutdown_timeout=30):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            yield c


async def _key(app: FastAPI, *, admin: bool = False) -> IssuedKey:
    return await keys.create_key(services_of(app).db, KeySpec("m", 100, 1000, 15, admin))


def _series(text: str, name: str) -> dict[str, float]:
    """The samples of ``name`` (its labels as written, to its value)."""
    found: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            labels, _, value = line[len(name) :].rpartition(" ")
            found[labels] = float(value)
    return found


async def test_only_an_admin_key_reads_the_metrics(
    client: httpx.AsyncClient, issue_key: KeyFactory
) -> None:
    assert (await client.get("/metrics")).status_code == 401
    user = await issue_key()
    assert (await client.get("/metrics", headers=auth(user))).status_code == 403
    admin = await issue_key(admin=True)
    response = await client.get("/metrics", headers=auth(admin))
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=")
    assert "hyperlocal_webhook_backlog 0.0" in response.text  # read from the database
    assert "process_cpu_seconds_total" in response.text  # the client's default collectors


async def test_routes_are_counted_by_their_template_never_the_path(
    client: httpx.AsyncClient, issue_key: KeyFactory
) -> None:
    user, admin = await issue_key(), await issue_key(admin=True)
    for job_id in ("job_a", "job_b"):
        assert (await client.get(f"/v1/jobs/{job_id}", headers=auth(user))).status_code == 404
    assert (await client.get("/no/such/path/abc")).status_code == 404
    text = (await client.get("/metrics", headers=auth(admin))).text
    counted = _series(text, "hyperlocal_http_requests_total")
    assert counted['{method="GET",route="/jobs/{job_id}",status="404"}'] == 2
    assert counted['{method="GET",route="unmatched",status="404"}'] == 1
    assert not any("job_a" in labels or "abc" in labels for labels in counted)


async def test_public_metrics_need_no_key(make_settings: SettingsFactory) -> None:
    app = create_app(make_settings(metrics_public=True), engines=TEST_ENGINES)
    async with _client(app) as client:
        response = await client.get("/metrics")
    assert response.status_code == 200
    assert "hyperlocal_rate_limited_total 0.0" in response.text


async def test_metrics_off_records_nothing_and_answers_404(make_settings: SettingsFactory) -> None:
    app = create_app(make_settings(metrics=False), engines=TEST_ENGINES)
    async with _client(app) as client:
        admin = await _key(app, admin=True)
        assert (await client.get("/metrics", headers=auth(admin))).status_code == 404


async def test_a_bind_of_its_own_answers_anyone(make_settings: SettingsFactory) -> None:
    bind = f"127.0.0.1:{free_port()}"
    app = create_app(make_settings(metrics_bind=bind), engines=TEST_ENGINES)
    async with _client(app) as client:
        user = await _key(app)
        body = {"model": "test-fail-t2i", "prompt": "x"}
        assert (await client.post("/v1/images/generate", json=body, headers=auth(user))).is_error
        # The server's thread reads the queue on this loop: it must not be blocked meanwhile.
        response = await asyncio.to_thread(httpx.get, f"http://{bind}/metrics", trust_env=False)
    assert response.status_code == 200
    failed = _series(response.text, "hyperlocal_jobs_finished_total")
    assert failed == {'{model="test-fail-t2i",status="failed"}': 1.0}
    assert "hyperlocal_webhook_pending 0.0" in response.text


_RECORD = """
from hyperlocal.prometheus import PrometheusMetrics
PrometheusMetrics().submitted("m", "image", 3)
"""
_RENDER = """
from hyperlocal.prometheus import PrometheusMetrics
import sys
sys.stdout.write(PrometheusMetrics().render(None).decode())
"""


def test_processes_sharing_a_multiprocess_dir_are_scraped_as_one(tmp_path: Path) -> None:
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    for _ in range(2):  # two API processes, one after the other
        subprocess.run([sys.executable, "-c", _RECORD], env=env, cwd=ROOT, check=True)
    out = subprocess.run(
        [sys.executable, "-c", _RENDER], env=env, cwd=ROOT, check=True, capture_output=True
    ).stdout.decode()
    submitted = _series(out, "hyperlocal_jobs_submitted_total")
    assert submitted == {'{category="image",model="m"}': 2.0}
    assert _series(out, "hyperlocal_credits_charged_total") == {'{model="m"}': 6.0}
    assert "process_cpu_seconds_total" not in out  # per process: left out, as the client says


_HOLD_A_MODEL = """
import sys
from hyperlocal.prometheus import PrometheusMetrics
PrometheusMetrics().resident("cpu", 1)
sys.stdout.write("loaded\\n")
sys.stdout.flush()
sys.stdin.read()  # runs until the test closes its stdin
"""


def _loaded(env: dict[str, str]) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, "-c", _RENDER], env=env, cwd=ROOT, check=True, capture_output=True
    ).stdout.decode()
    return _series(out, "hyperlocal_models_loaded")


def test_a_process_that_ended_stops_counting_its_loaded_models(tmp_path: Path) -> None:
    """Live gauges of a process that is gone (killed, or a uvicorn worker, which no hook
    buries) are removed at the next scrape; those of a running one still count."""
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    holders = [
        subprocess.Popen(
            [sys.executable, "-c", _HOLD_A_MODEL],
            env=env,
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        for _ in range(2)
    ]
    try:
        for holder in holders:
            assert holder.stdout is not None and holder.stdout.readline() == b"loaded\n"
        assert _loaded(env) == {'{device="cpu"}': 2.0}
        holders[0].kill()
        holders[0].communicate()
        assert _loaded(env) == {'{device="cpu"}': 1.0}
    finally:
        for holder in holders:
            holder.kill()
            holder.communicate()  # waits, and closes its pipes
    assert _loaded(env) in ({}, {'{device="cpu"}': 0.0})
    assert not list(tmp_path.glob("gauge_live*"))
