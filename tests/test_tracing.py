"""Traces (``hyperlocal.tracing``). Off, the app loads nothing of OpenTelemetry's. On, a real
server process exports to a loopback OTLP/HTTP receiver: one trace runs from the submit's
request through the queue to the engine and the storage writes, and the webhook's delivery is a
trace of its own, linked to the job's run, whose POST carries ``traceparent``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import httpx
import pytest

from hyperlocal.core import keys
from hyperlocal.core.keys import IssuedKey, KeySpec
from hyperlocal.runtime import open_database
from hyperlocal.settings import Settings
from tests.conftest import SettingsFactory, auth
from tests.otlp import (
    SERVER,
    Collector,
    Span,
    assert_linked_delivery,
    is_statement,
    only,
    otel_env,
    running_collector,
)
from tests.processes import ROOT, server_env, server_process
from tests.receiver import running_receiver
from tests.support import eventually, free_port

JOB_SECONDS = 0.2  # the stand-in engine's run


def test_off_create_app_imports_no_opentelemetry_module(tmp_path: Path) -> None:
    """Without an endpoint the app starts, serves and stops without loading OpenTelemetry: no
    module of it beyond those FastAPI loads for a bare app (recent FastAPI imports the
    OpenTelemetry API itself, and uses it only once a provider is set)."""
    script = textwrap.dedent(
        """
        import sys
        from fastapi import FastAPI
        from fastapi.testclient import TestClient

        def otel():
            return {m for m in sys.modules if m.partition(".")[0] == "opentelemetry"}

        bare = FastAPI()
        bare.get("/ping")(lambda: "pong")
        with TestClient(bare) as client:
            assert client.get("/ping").status_code == 200
        fastapis = otel()

        from hyperlocal.app import create_app
        from hyperlocal.settings import Settings

        app = create_app(Settings(_env_file=None, data_dir=sys.argv[1], bootstrap_keys=False))
        with TestClient(app) as client:
            assert client.get("/healthz").status_code == 200
        print(sorted(otel() - fastapis))
        print("hyperlocal.tracing._otel" in sys.modules)
        """
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "HYPERLOCAL_"))}
    done = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "data")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-2:] == ["[]", "False"]


async def _key(settings: Settings) -> IssuedKey:
    db = await open_database(settings)
    try:
        return await keys.create_key(db, KeySpec("traces", 100, 10_000, 10))
    finally:
        await db.aclose()


async def _submit_video(port: int, issued: IssuedKey, hook: str) -> str:
    body = {
        "model": "test-slow-video",
        "input": {"prompt": "a lighthouse", "seconds": JOB_SECONDS},
        "webhook_url": hook,
    }
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
        response = await client.post("/v1/videos/generate", json=body, headers=auth(issued))
    assert response.status_code == 202, response.text
    job_id: str = response.json()["jobId"]
    return job_id


def _all_exported(collector: Collector) -> bool:
    names = {s.name for s in collector.spans}
    wanted = {"job.run", "engine.generate", "webhook.deliver"}
    writes = len(collector.named("storage.write"))  # staged, then published
    return wanted <= names and writes == 2 and collector.delivery_post() is not None


@pytest.mark.slow
async def test_one_trace_from_the_submit_to_the_storage_write_and_a_linked_delivery(
    make_settings: SettingsFactory, tmp_path: Path
) -> None:
    settings = make_settings()
    issued = await _key(settings)
    port = free_port()
    with running_collector() as collector, running_receiver() as receiver:
        env = server_env(
            settings.data_dir, **otel_env(collector.base), HYPERLOCAL_WEBHOOK_POLL_INTERVAL="0.1"
        )
        with server_process(port, env, tmp_path / "server.log"):
            job_id = await _submit_video(port, issued, receiver.url("hook"))

            async def delivered() -> bool:
                return bool(receiver.on("hook"))

            async def exported() -> bool:
                return _all_exported(collector)

            await eventually(delivered, 60, "the job's webhook")
            await eventually(exported, 60, "the job's and the delivery's spans")
    assert json.loads(receiver.on("hook")[0].body)["status"] == "completed"
    run = _assert_job_trace(collector, job_id)
    assert_linked_delivery(collector, receiver.on("hook")[0], run)


def _assert_job_trace(collector: Collector, job_id: str) -> Span:
    """The submit's server span is the root; the job's run is its child; the engine's run and
    the outputs' writes are the run's children. The job's run span is returned."""
    submit = only(
        [s for s in collector.named("POST /v1/videos/generate") if s.kind == SERVER], "the submit"
    )
    assert submit.parent == ""
    assert submit.service == "hyperlocal"
    run = only(collector.named("job.run"), "the job's run")
    assert (run.trace_id, run.parent) == (submit.trace_id, submit.span_id)
    assert run.attributes["hyperlocal.job.id"] == job_id
    assert run.attributes["hyperlocal.job.model"] == "test-slow-video"
    assert run.attributes["hyperlocal.job.category"] == "video"
    engine = only(collector.named("engine.generate"), "the engine's run")
    assert (engine.trace_id, engine.parent) == (run.trace_id, run.span_id)
    assert engine.attributes["hyperlocal.engine"] == "test-slow"
    writes = collector.named("storage.write")
    assert sorted(str(w.attributes["hyperlocal.storage.step"]) for w in writes) == [
        "publish",
        "stage",
    ]
    assert {(w.trace_id, w.parent) for w in writes} == {(run.trace_id, run.span_id)}
    statements = [s for s in collector.children(run) if is_statement(s)]
    assert statements, "the run's database statements (its completion) are its children"
    return run
