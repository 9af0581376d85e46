"""Traces across processes: an API server (``hyperlocal serve``) and a Celery worker (``hyperlocal
worker``) on PostgreSQL and Redis export to one loopback OTLP/HTTP receiver. The worker's run of
a job is a child of the submit's span in the API process; Celery's publish (API) and delivery
(worker) spans join the same trace; the webhook's delivery, made by the API, links to the
worker's run."""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest

from hyperlocal.core.keys import IssuedKey
from hyperlocal.store.db import Database
from tests.conftest import auth
from tests.otlp import (
    CONSUMER,
    PRODUCER,
    SERVER,
    Collector,
    Span,
    assert_linked_delivery,
    is_statement,
    only,
    otel_env,
    running_collector,
)
from tests.receiver import running_receiver
from tests.scaleout._processes import HYPERLOCAL, api_server, eventually, spawned
from tests.scaleout.conftest import ScaleOut, new_key

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.slow]

MODEL = "scaleout-t2i"
WORKER = [*HYPERLOCAL, "worker", "--models", MODEL, "--concurrency", "1"]
PUBLISH, DELIVERY = "apply_async/hyperlocal.run_job", "run/hyperlocal.run_job"


async def test_the_workers_run_of_a_job_continues_the_submits_trace(
    scale_out: ScaleOut, database: Database, tmp_path: Path
) -> None:
    issued = await new_key(database, scale_out.scope)
    env = scale_out.env(webhook_poll_interval=0.1, webhook_jitter=0)
    logs = tmp_path / "logs"
    with ExitStack() as stack:
        collector = stack.enter_context(running_collector())
        receiver = stack.enter_context(running_receiver())
        env |= otel_env(collector.base)
        worker = stack.enter_context(spawned("worker", WORKER, env, logs))
        url = stack.enter_context(api_server("api", env, logs))
        job_id = await _submit(url, issued, receiver.url("hook"))

        async def delivered() -> bool:
            return bool(receiver.on("hook"))

        async def exported() -> bool:
            return _all_exported(collector)

        await eventually(delivered, 60, "the job's webhook")
        await eventually(exported, 60, "the spans of the API and of the worker")
        assert worker.terminate() == 0, worker.output()
    run = _assert_cross_process_trace(collector, job_id)
    assert_linked_delivery(collector, receiver.on("hook")[0], run)


async def _submit(url: str, issued: IssuedKey, hook: str) -> str:
    body = {"model": MODEL, "prompt": "a lighthouse", "webhook_url": hook}
    headers = {**auth(issued), "Prefer": "respond-async"}
    async with httpx.AsyncClient(base_url=url, timeout=30, trust_env=False) as client:
        response = await client.post("/v1/images/generate", json=body, headers=headers)
    assert response.status_code == 202, response.text
    job_id: str = response.json()["jobId"]
    return job_id


def _all_exported(collector: Collector) -> bool:
    names = {s.name for s in collector.spans}
    wanted = {PUBLISH, DELIVERY, "job.run", "engine.generate", "webhook.deliver"}
    writes = len(collector.named("storage.write"))  # staged, then published
    return wanted <= names and writes == 2 and collector.delivery_post() is not None


def _assert_cross_process_trace(collector: Collector, job_id: str) -> Span:
    """API: the submit (the root) and Celery's publish under it. Worker: Celery's delivery under
    the publish, and the job's run under the submit, with the engine's run, the outputs'
    writes and the run's database statements under it. The run's span is returned."""
    submit = only(
        [s for s in collector.named("POST /v1/images/generate") if s.kind == SERVER], "the submit"
    )
    assert (submit.service, submit.parent) == ("hyperlocal", "")
    publish = only(collector.named(PUBLISH), "Celery's publish")
    assert (publish.service, publish.kind) == ("hyperlocal", PRODUCER)
    assert (publish.trace_id, publish.parent) == (submit.trace_id, submit.span_id)
    delivery = only(collector.named(DELIVERY), "Celery's delivery")
    assert (delivery.service, delivery.kind) == ("hyperlocal-worker", CONSUMER)
    assert (delivery.trace_id, delivery.parent) == (publish.trace_id, publish.span_id)
    run = only(collector.named("job.run"), "the job's run")
    assert run.service == "hyperlocal-worker"
    assert (run.trace_id, run.parent) == (submit.trace_id, submit.span_id)
    assert run.attributes["hyperlocal.job.id"] == job_id
    below_run = collector.children(run)
    assert {s.name for s in below_run} >= {"engine.generate", "storage.write"}
    assert {s.service for s in below_run} == {"hyperlocal-worker"}
    assert any(is_statement(s) for s in below_run), "the run's statements on PostgreSQL"
    return run
