"""One scrape config covers the fleet: a real Prometheus scrapes two API processes (``/metrics``
with an admin key) and a Celery worker (``--metrics-port``) on PostgreSQL and Redis. After a
known workload, the fleet's counters, summed over its processes, equal what the workload did:
the worker counts the jobs it ran, the APIs what they charged, refused and relayed."""

from __future__ import annotations

import asyncio
import time
from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest

from hyperlocal.core import keys
from hyperlocal.core.keys import IssuedKey, KeySpec
from hyperlocal.store.db import Database
from tests.conftest import auth
from tests.prom import (
    Prometheus,
    ScrapeJob,
    preview_chat_model,
    prometheus_binary,
    running_prometheus,
    scrape_config,
    wait_scraped,
)
from tests.receiver import running_receiver
from tests.scaleout._processes import TEST_WORKER, server_with_test_engines, spawned
from tests.scaleout.conftest import CATALOG, ScaleOut
from tests.support import free_port

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.slow]

IMAGE, FAILING, CHAT = "scaleout-t2i", "scaleout-fail-t2i", "scaleout-chat"
N_IMAGES, M_FAILURES, K_CHATS = 3, 2, 2
_EXTRA = f"""
[[model]]
id = "{FAILING}"
category = "image"
name = "Always fails"
engine = "test-fail"
price = {{ kind = "flat", credits = 5 }}
inputs.prompt = {{ type = "string", required = true }}
""" + preview_chat_model(CHAT)


async def _key(db: Database, scale_out: ScaleOut, spec: KeySpec) -> IssuedKey:
    issued = await keys.create_key(db, spec)
    scale_out.scope.track(issued.info.id)
    return issued


async def test_a_real_prometheus_sums_the_fleet(
    scale_out: ScaleOut, database: Database, tmp_path: Path
) -> None:
    prometheus_binary()  # skips, saying why, where the package is missing
    catalog = tmp_path / "catalog.toml"
    catalog.write_text(CATALOG.read_text() + _EXTRA)
    admin, user, broke, hasty = [
        await _key(database, scale_out, spec)
        for spec in (
            KeySpec("admin", 0, 1_000_000, 15, True),
            KeySpec("user", 10_000, 1_000_000, 15),
            KeySpec("broke", 0, 1_000_000, 15),
            KeySpec("hasty", 10_000, 1, 15),
        )
    ]
    ports, metrics_port = [free_port(), free_port()], free_port()
    env = scale_out.env(
        catalog=catalog,
        public_url=f"http://127.0.0.1:{ports[0]}",
        webhook_schedule=[0, 0.2, 0.2],
        webhook_jitter=0,
        webhook_poll_interval=0.1,
    )
    worker = [*TEST_WORKER, "--models", "scaleout-*", "--metrics-port", str(metrics_port)]
    logs = tmp_path / "logs"
    with ExitStack() as stack:
        receiver = stack.enter_context(running_receiver())
        receiver.script["hook"] = [503, 200]
        stack.enter_context(spawned("worker", worker, env, logs))
        urls = [
            stack.enter_context(server_with_test_engines(f"api-{i}", env, logs, ports[i]))
            for i in (0, 1)
        ]
        config = scrape_config(
            tmp_path,
            ScrapeJob("api", [u.removeprefix("http://") for u in urls], admin.key),
            ScrapeJob("worker", [f"127.0.0.1:{metrics_port}"]),
        )
        prometheus = stack.enter_context(running_prometheus(config, tmp_path))
        await asyncio.to_thread(wait_scraped, prometheus, 60)
        await asyncio.to_thread(_run, urls, user, broke, hasty, receiver.url("hook"))
        delivered = 'sum(hyperlocal_webhook_deliveries_total{outcome="delivered"})'
        await asyncio.to_thread(prometheus.wait_for, delivered, 1, 60)
        await asyncio.to_thread(prometheus.wait_scraped_after, time.time())
        _check(prometheus)


def _run(urls: list[str], user: IssuedKey, broke: IssuedKey, hasty: IssuedKey, hook: str) -> None:
    clients = [httpx.Client(base_url=u, timeout=60, trust_env=False) for u in urls]
    try:
        for i in range(N_IMAGES):
            hooked = i == 1  # the webhook outage: its receiver fails the first attempt
            body = {"model": IMAGE, "prompt": f"image {i}"}
            body |= {"webhook_url": hook} if hooked else {}
            response = clients[i % 2].post("/v1/images/generate", json=body, headers=auth(user))
            assert response.status_code == (202 if hooked else 200), response.text
        for i in range(M_FAILURES):
            body = {"model": FAILING, "prompt": "fails"}
            response = clients[i % 2].post("/v1/images/generate", json=body, headers=auth(user))
            assert response.status_code == 500, response.text
        for i in range(K_CHATS):
            body = {"model": CHAT, "messages": [{"role": "user", "content": "hi"}], "stream": False}
            response = clients[i % 2].post("/v1/chat/completions", json=body, headers=auth(user))
            assert response.status_code == 200, response.text
        short = {"model": IMAGE, "prompt": "x"}
        refused = clients[0].post("/v1/images/generate", json=short, headers=auth(broke))
        assert refused.status_code == 402
        # One rolling-hour count in Redis, whichever process answers.
        assert clients[0].get("/v1/account", headers=auth(hasty)).status_code == 200
        assert clients[1].get("/v1/account", headers=auth(hasty)).status_code == 429
    finally:
        for client in clients:
            client.close()


def _check(prometheus: Prometheus) -> None:
    assert prometheus.query("sum by (model) (hyperlocal_jobs_submitted_total)") == {
        f"model={IMAGE}": N_IMAGES,
        f"model={FAILING}": M_FAILURES,
        f"model={CHAT}": K_CHATS,
    }
    assert prometheus.query("sum by (model, status) (hyperlocal_jobs_finished_total)") == {
        f"model={IMAGE},status=completed": N_IMAGES,
        f"model={FAILING},status=failed": M_FAILURES,
        f"model={CHAT},status=completed": K_CHATS,
    }
    # The media jobs ended in the worker; the chats, in the APIs that relayed them.
    finished = "sum(hyperlocal_jobs_finished_total{{job={!r}}})"
    assert prometheus.value(finished.format("worker")) == N_IMAGES + M_FAILURES
    assert prometheus.value(finished.format("api")) == K_CHATS
    assert prometheus.value("sum(hyperlocal_credits_refunded_total)") == 5 * M_FAILURES
    assert prometheus.value("sum(hyperlocal_insufficient_credits_total)") == 1
    assert prometheus.value("sum(hyperlocal_rate_limited_total)") == 1
    assert prometheus.value('sum(hyperlocal_webhook_deliveries_total{outcome="retrying"})') == 1
    queued = f'sum(hyperlocal_job_queue_seconds_count{{model="{IMAGE}"}})'
    assert prometheus.value(queued) == N_IMAGES  # each claimed once, by the worker
    assert prometheus.value("max(hyperlocal_webhook_backlog)") == 0
    assert prometheus.value("count(up == 1)") == 3
