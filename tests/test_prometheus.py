"""A real Prometheus scrapes a real embedded server (uvicorn on loopback) through ``/metrics``
with an admin key; after a known workload, its HTTP API must show counters equal to what the
workload did: N images, M failures, K chats, one 402, one 429, one webhook outage."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import httpx
import pytest

from hyperlocal.app import create_app
from hyperlocal.core import keys
from hyperlocal.core.keys import IssuedKey, KeySpec
from hyperlocal.runtime import open_database
from hyperlocal.settings import Settings
from tests.conftest import SettingsFactory
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
from tests.support import TEST_CATALOG, TEST_ENGINES, serve_in_thread

DOCS = Path(__file__).resolve().parents[1] / "docs" / "prometheus"
ALERTS, DASHBOARD = DOCS / "alerts.yml", DOCS / "grafana-dashboard.json"
IMAGE = "gemini-3-1-flash-t2i"
FAILING = "test-fail-t2i"
CHAT = "test-preview-chat"
N_IMAGES, M_FAILURES, K_CHATS = 3, 2, 2


@pytest.fixture
def settings(make_settings: SettingsFactory, tmp_path: Path) -> Settings:
    catalog = tmp_path / "catalog.toml"
    catalog.write_text(TEST_CATALOG.read_text() + preview_chat_model(CHAT))
    # The outage: the receiver's first answer fails, the retry (0.2 s later) is delivered.
    return make_settings(catalog=catalog, webhook_schedule=[0, 0.2, 0.2], webhook_jitter=0)


def _keys(settings: Settings) -> tuple[IssuedKey, IssuedKey, IssuedKey, IssuedKey]:
    async def make() -> tuple[IssuedKey, IssuedKey, IssuedKey, IssuedKey]:
        db = await open_database(settings)
        try:
            specs = [
                KeySpec("admin", 0, 100_000, 15, True),
                KeySpec("user", 10_000, 1000, 15),
                KeySpec("broke", 0, 1000, 15),
                KeySpec("hasty", 10_000, 1, 15),
            ]
            admin, user, broke, hasty = [await keys.create_key(db, s) for s in specs]
        finally:
            await db.aclose()
        return admin, user, broke, hasty

    return asyncio.run(make())


def _auth(issued: IssuedKey) -> dict[str, str]:
    return {"Authorization": f"Bearer {issued.key}"}


class Workload:
    """What the workload did, as its responses say."""

    def __init__(self) -> None:
        self.image_credits = 0
        self.completion_tokens = 0


def _run(base: str, user: IssuedKey, broke: IssuedKey, hasty: IssuedKey, hook: str) -> Workload:
    done = Workload()
    with httpx.Client(base_url=base, timeout=30, trust_env=False) as http:
        for i in range(N_IMAGES):
            body = {"model": IMAGE, "prompt": f"image {i}"}
            if i == 0:
                body["webhook_url"] = hook
            response = http.post("/v1/images/generate", json=body, headers=_auth(user))
            assert response.status_code == (202 if i == 0 else 200), response.text  # 202: hooked
            done.image_credits += response.json()["creditsUsed"]
        for _ in range(M_FAILURES):
            body = {"model": FAILING, "prompt": "fails"}
            assert (
                http.post("/v1/images/generate", json=body, headers=_auth(user)).status_code == 500
            )
        for i in range(K_CHATS):
            messages = [{"role": "user", "content": f"hello {i}"}]
            body = {"model": CHAT, "messages": messages, "stream": False}
            response = http.post("/v1/chat/completions", json=body, headers=_auth(user))
            assert response.status_code == 200, response.text
            done.completion_tokens += response.json()["usage"]["completion_tokens"]
        short = http.post(
            "/v1/images/generate", json={"model": IMAGE, "prompt": "x"}, headers=_auth(broke)
        )
        assert short.status_code == 402
        assert http.get("/v1/account", headers=_auth(hasty)).status_code == 200
        assert http.get("/v1/account", headers=_auth(hasty)).status_code == 429
    return done


def test_a_real_prometheus_counts_the_workload(settings: Settings, tmp_path: Path) -> None:
    prometheus_binary()  # skips, saying why, where the package is missing
    admin, user, broke, hasty = _keys(settings)
    with (
        running_receiver() as receiver,
        serve_in_thread(create_app(settings, engines=TEST_ENGINES)) as base,
    ):
        receiver.script["hook"] = [503, 200]
        target = base.removeprefix("http://")
        job = ScrapeJob("hyperlocal", [target], admin.key)
        config = scrape_config(tmp_path, job, rules=[ALERTS])
        with running_prometheus(config, tmp_path) as prometheus:
            wait_scraped(prometheus)
            done = _run(base, user, broke, hasty, receiver.url("hook"))
            # The webhook is delivered behind the workload; then one more scrape of every target.
            prometheus.wait_for('hyperlocal_webhook_deliveries_total{outcome="delivered"}', 1)
            prometheus.wait_scraped_after(time.time())  # and every other fact with it
            _check(prometheus, done)
            _check_operator_view(prometheus)


def _check(prometheus: Prometheus, done: Workload) -> None:
    assert prometheus.query("hyperlocal_jobs_submitted_total") == {
        f"category=image,model={IMAGE}": N_IMAGES,
        f"category=image,model={FAILING}": M_FAILURES,
        f"category=chat,model={CHAT}": K_CHATS,
    }
    assert prometheus.query("hyperlocal_jobs_finished_total") == {
        f"model={IMAGE},status=completed": N_IMAGES,
        f"model={FAILING},status=failed": M_FAILURES,
        f"model={CHAT},status=completed": K_CHATS,
    }
    assert prometheus.query("hyperlocal_credits_charged_total") == {
        f"model={IMAGE}": done.image_credits,
        f"model={FAILING}": 5 * M_FAILURES,  # the test catalogue's flat price
        f"model={CHAT}": K_CHATS,
    }
    assert prometheus.query("hyperlocal_credits_refunded_total") == {
        f"model={FAILING}": 5 * M_FAILURES
    }
    assert prometheus.value("hyperlocal_insufficient_credits_total") == 1
    assert prometheus.value("hyperlocal_rate_limited_total") == 1
    assert prometheus.query("hyperlocal_webhook_deliveries_total") == {
        "outcome=retrying": 1,
        "outcome=delivered": 1,
    }
    assert prometheus.value("hyperlocal_webhook_delivery_seconds_count") == 2
    assert prometheus.value("hyperlocal_webhook_backlog") == 0
    _check_http_and_chat(prometheus, done)


def _check_http_and_chat(prometheus: Prometheus, done: Workload) -> None:
    images = prometheus.query('hyperlocal_http_requests_total{route="/images/generate"}')
    assert images == {
        "method=POST,route=/images/generate,status=200": N_IMAGES - 1,
        "method=POST,route=/images/generate,status=202": 1,  # the one with a webhook
        "method=POST,route=/images/generate,status=500": M_FAILURES,
        "method=POST,route=/images/generate,status=402": 1,
    }
    assert prometheus.query('hyperlocal_http_requests_total{route="/account"}') == {
        "method=GET,route=/account,status=200": 1,
        "method=GET,route=/account,status=429": 1,
    }
    completion = f'hyperlocal_chat_tokens_total{{kind="completion",model="{CHAT}"}}'
    assert prometheus.value(completion) == done.completion_tokens
    ttft = f'hyperlocal_chat_time_to_first_token_seconds_count{{model="{CHAT}"}}'
    assert prometheus.value(ttft) == K_CHATS
    overhead = 'hyperlocal_gateway_overhead_seconds_count{route="/chat/completions"}'
    assert prometheus.value(overhead) == K_CHATS
    assert prometheus.value(f'hyperlocal_job_run_seconds_count{{model="{IMAGE}"}}') == N_IMAGES
    assert prometheus.value("max(hyperlocal_jobs_queued)") == 0  # nothing waits
    assert prometheus.value(f'hyperlocal_jobs_running{{model="{IMAGE}"}}') == 0  # shown at 0
    assert prometheus.value("up") == 1
    assert prometheus.value("process_cpu_seconds_total") is not None  # the default collectors
    assert prometheus.query("hyperlocal_device_memory_bytes") == {}  # no GPU runtime: absent


def _check_operator_view(prometheus: Prometheus) -> None:
    """docs/operations.md's alert rules load and evaluate; every dashboard panel's query
    returns data after the workload, but device memory, absent where there is no GPU."""
    names = {rule["name"] for rule in prometheus.wait_rules_evaluated()}
    assert "HyperlocalNoWorkerForModel" in names
    assert all(rule["state"] == "inactive" for rule in prometheus.wait_rules_evaluated())
    panels = json.loads(DASHBOARD.read_text())["panels"]
    for panel in panels:
        for target in panel["targets"]:
            expr = target["expr"].replace("$__rate_interval", "1m")
            found = prometheus.query(expr)
            if "device_memory" in expr:
                assert found == {}, panel["title"]
            else:
                assert found, f"no data for panel {panel['title']!r}: {expr}"
