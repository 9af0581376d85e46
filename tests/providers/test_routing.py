"""Jobs through provider routes, end to end: the real app, its database and its storage, with
loopback fakes of fal and Replicate behind the shipped catalogue's routes.

Failover, a provider's refusal of the input, 429s, the circuit breaker, overflow from a busy
local engine, cancel, queue position, webhooks (good, forged, lost) and an output that points
at a private address.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI

from hyperlocal.app import create_app
from hyperlocal.core import keys
from hyperlocal.core.keys import IssuedKey, KeySpec
from hyperlocal.engines.base import (
    Artifact,
    EngineContext,
    EngineFactory,
    GenerationRequest,
    GenerationResult,
    ProgressCallback,
)
from hyperlocal.runtime import open_database
from hyperlocal.settings import Settings
from tests.conftest import SettingsFactory, auth, services_of
from tests.providers.fakes.fal import FalState, JobScript, Reply, serve_fal
from tests.providers.fakes.replicate import ReplicateState, running
from tests.providers.servers import serve
from tests.support import eventually, free_port, serve_in_thread, tiny_png

WAIT_S = 60.0
FLUX = {"model": "flux-1-dev", "prompt": "a lighthouse at dusk"}  # fal first, then Replicate
FLUX_CREDITS = 3


@dataclass
class Providers:
    fal: FalState
    replicate: ReplicateState

    def settings(self, make: SettingsFactory, **overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "catalog": None,  # the shipped catalogue and its routes
            "fal_key": self.fal.key,
            "fal_base_url": self.fal.url,
            "fal_jwks_url": self.fal.jwks_url,
            "replicate_api_token": self.replicate.token,
            "replicate_base_url": self.replicate.url,
            "provider_poll_interval": 0.01,
        }
        return make(**(values | overrides))

    def fal_submits(self) -> int:
        return len([r for r in self.fal.requests if r.method == "POST"])

    def replicate_creates(self) -> int:
        return len(
            [
                r
                for r in self.replicate.requests
                if r.method == "POST" and r.path.endswith("/predictions")
            ]
        )


@pytest.fixture
def providers() -> Iterator[Providers]:
    with serve_fal() as fal, running() as replicate:
        yield Providers(fal, replicate)


@dataclass
class Served:
    app: FastAPI
    client: httpx.AsyncClient
    user: IssuedKey
    admin: IssuedKey

    async def balance(self) -> int:
        response = await self.client.get("/v1/account", headers=auth(self.user))
        return int(response.json()["credits"])

    async def attempts(self, job_id: str) -> list[dict[str, Any]]:
        response = await self.client.get(f"/admin/jobs/{job_id}/attempts", headers=auth(self.admin))
        assert response.status_code == 200, response.text
        found: list[dict[str, Any]] = response.json()["data"]
        return found

    async def job(self, job_id: str) -> dict[str, Any]:
        response = await self.client.get(f"/v1/jobs/{job_id}", headers=auth(self.user))
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    async def ended(self, job_id: str) -> dict[str, Any]:
        async def done() -> bool:
            return (await self.job(job_id))["status"] in ("completed", "failed")

        await eventually(done, WAIT_S, f"job {job_id} to end")
        return await self.job(job_id)

    async def image(self, body: Mapping[str, Any]) -> httpx.Response:
        return await self.client.post("/v1/images/generate", json=body, headers=auth(self.user))


@asynccontextmanager
async def served(
    settings: Settings, engines: Mapping[str, EngineFactory] | None = None
) -> AsyncIterator[Served]:
    app = create_app(settings, engines=engines)
    async with LifespanManager(app, startup_timeout=30, shutdown_timeout=30):
        db = services_of(app).db
        user = await keys.create_key(db, KeySpec("user", 1000, 1000, 15))
        admin = await keys.create_key(db, KeySpec("admin", 0, 1000, 15, is_admin=True))
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            yield Served(app, c, user, admin)


def _job_id(response: httpx.Response) -> str:
    """The job behind a synchronous image answer (its ``res_`` id finds it)."""
    return str(response.json()["resultId"])


# -- no key: the stand-in, as before ---------------------------------------------------------


async def test_without_provider_keys_the_builtin_engine_serves(
    make_settings: SettingsFactory, providers: Providers
) -> None:
    async with served(make_settings(catalog=None)) as s:
        response = await s.image(FLUX)
        assert response.status_code == 200, response.text
        assert await s.attempts(_job_id(response)) == []
    assert providers.fal.requests == [] and providers.replicate.requests == []


# -- failover --------------------------------------------------------------------------------


async def test_fal_500_fails_over_to_replicate_charged_once_both_attempts_recorded(
    make_settings: SettingsFactory, providers: Providers
) -> None:
    providers.fal.fail_submit(Reply.server_error())
    async with served(providers.settings(make_settings)) as s:
        response = await s.image(FLUX)
        assert response.status_code == 200, response.text
        url = response.json()["data"][0]["url"]
        assert url.startswith("http://testserver/files/")  # re-hosted: ours, not Replicate's
        stored = await s.client.get(url.removeprefix("http://testserver"))
        assert stored.status_code == 200 and stored.content.startswith(b"\x89PNG")
        assert await s.balance() == 1000 - FLUX_CREDITS
        attempts = await s.attempts(_job_id(response))
    assert [(a["provider"], a["outcome"], a["status"]) for a in attempts] == [
        ("fal", "unavailable", 500),
        ("replicate", "ok", None),
    ]
    assert attempts[1]["requestId"] in providers.replicate.predictions
    assert all(a["latencyS"] is not None for a in attempts)
    assert providers.fal_submits() == 1 and providers.replicate_creates() == 1


async def test_refused_connection_fails_over(
    make_settings: SettingsFactory, providers: Providers
) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    async with served(providers.settings(make_settings, fal_base_url=dead)) as s:
        response = await s.image(FLUX)
        assert response.status_code == 200, response.text
        attempts = await s.attempts(_job_id(response))
    assert [(a["provider"], a["outcome"]) for a in attempts] == [
        ("fal", "unavailable"),
        ("replicate", "ok"),
    ]


async def test_provider_422_is_a_400_with_its_message_and_a_refund_and_no_failover(
    make_settings: SettingsFactory, providers: Providers
) -> None:
    providers.fal.fail_submit(Reply.validation(prompt="The prompt is flagged by the filter"))
    async with served(providers.settings(make_settings)) as s:
        response = await s.image(FLUX)
        assert response.status_code == 400, response.text
        body = response.json()
        assert body["code"] == "E1004"
        assert "The prompt is flagged by the filter" in body["error"]
        assert await s.balance() == 1000  # refunded
        listed = await s.client.get("/v1/jobs", headers=auth(s.user))
        (job,) = listed.json()["data"]
        assert (job["status"], job["code"]) == ("failed", "E1004")
        attempts = await s.attempts(job["jobId"])
    assert [(a["provider"], a["outcome"], a["status"]) for a in attempts] == [
        ("fal", "invalid", 422)
    ]
    assert providers.replicate_creates() == 0


async def test_a_failed_generation_at_the_provider_fails_the_job_and_refunds(
    make_settings: SettingsFactory, providers: Providers
) -> None:
    providers.fal.script(JobScript(running=1, error=Reply(500, {"detail": "CUDA error"})))
    async with served(providers.settings(make_settings)) as s:
        job_id = await _video(s, IMAGE)
        ended = await s.ended(job_id)
        assert ended["status"] == "failed"
        assert await s.balance() == 1000
        attempts = await s.attempts(job_id)
    assert attempts[-1]["provider"] == "fal" and attempts[-1]["outcome"] in ("failed", "invalid")


# -- 429 -------------------------------------------------------------------------------------


async def test_429_within_the_budget_waits_and_retries_the_same_route(
    make_settings: SettingsFactory, providers: Providers
) -> None:
    providers.fal.fail_submit(Reply.rate_limited(0.05))
    async with served(providers.settings(make_settings)) as s:
        response = await s.image(FLUX)
        assert response.status_code == 200, response.text
        attempts = await s.attempts(_job_id(response))
    assert [(a["provider"], a["outcome"]) for a in attempts] == [
        ("fal", "throttled"),
        ("fal", "ok"),
    ]
    assert providers.replicate_creates() == 0


async def test_429_past_the_budget_moves_to_the_next_route(
    make_settings: SettingsFactory, providers: Providers
) -> None:
    providers.fal.fail_submit(Reply.rate_limited(120))
    settings = providers.settings(make_settings, provider_retry_after_budget=30)
    async with served(settings) as s:
        response = await s.image(FLUX)
        assert response.status_code == 200, response.text
        attempts = await s.attempts(_job_id(response))
    assert [(a["provider"], a["outcome"], a["status"]) for a in attempts] == [
        ("fal", "throttled", 429),
        ("replicate", "ok", None),
    ]


# -- the circuit breaker ---------------------------------------------------------------------


async def test_a_provider_that_keeps_failing_is_skipped_for_its_cool_down(
    make_settings: SettingsFactory, providers: Providers
) -> None:
    providers.fal.fail_submit(Reply.server_error(), Reply.server_error())
    settings = providers.settings(
        make_settings, provider_breaker_failures=2, provider_breaker_cooldown=3600
    )
    async with served(settings) as s:
        for _ in range(2):
            assert (await s.image(FLUX)).status_code == 200
        assert providers.fal_submits() == 2
        third = await s.image(FLUX)
        assert third.status_code == 200
        attempts = await s.attempts(_job_id(third))
        listed = await s.client.get("/admin/providers", headers=auth(s.admin))
        models = await s.client.get("/admin/models", headers=auth(s.admin))
    assert providers.fal_submits() == 2  # not contacted while its circuit is open
    assert [(a["provider"], a["outcome"]) for a in attempts] == [
        ("fal", "skipped"),
        ("replicate", "ok"),
    ]
    assert "circuit open" in attempts[0]["error"]
    circuits = {p["name"]: p["circuit"] for p in listed.json()["data"]}
    assert circuits["fal"] == "open" and circuits["replicate"] == "closed"
    flux = next(m for m in models.json()["data"] if m["id"] == "flux-1-dev")
    assert flux["activeRoute"] == "replicate:black-forest-labs/flux-dev"


# -- overflow from a busy local engine ------------------------------------------------------


class GatedEngine:
    """A local engine that holds each job until the test opens its gate (a busy GPU)."""

    entered: asyncio.Event
    gate: asyncio.Event

    async def generate(
        self, request: GenerationRequest, progress: ProgressCallback
    ) -> GenerationResult:
        GatedEngine.entered.set()
        await GatedEngine.gate.wait()
        return GenerationResult([Artifact(tiny_png(), "image/png", "png")])

    async def aclose(self) -> None:
        return None


def _gated(_context: EngineContext) -> GatedEngine:
    return GatedEngine()


OVERFLOW_WAIT_S = 0.001
OVERFLOW_CATALOG = f"""
[[model]]
id = "local-flux"
category = "image"
name = "FLUX on the local GPU, fal behind it"
engine = "preview-image"
price = {{ kind = "flat", credits = 3 }}
inputs.prompt = {{ type = "string", required = true }}

[[model.routes]]
to = "engine:test-gated"
overflow_wait_s = {OVERFLOW_WAIT_S}

[[model.routes]]
to = "fal:fal-ai/flux/dev"
map.prompt = "prompt"
"""


async def test_overflow_sends_new_jobs_to_the_provider_while_the_local_engine_is_busy(
    make_settings: SettingsFactory, providers: Providers, tmp_path: Path
) -> None:
    GatedEngine.entered, GatedEngine.gate = asyncio.Event(), asyncio.Event()
    catalog = tmp_path / "overflow.toml"
    catalog.write_text(OVERFLOW_CATALOG)
    settings = providers.settings(make_settings, catalog=catalog)
    async with served(settings, {"test-gated": _gated}) as s:
        body = {"model": "local-flux", "prompt": "a lighthouse"}
        first = asyncio.create_task(s.image(body))
        await asyncio.wait_for(GatedEngine.entered.wait(), WAIT_S)
        lane = services_of(s.app).router.lane("test-gated")

        async def busy_past_the_overflow_wait() -> bool:
            return lane.expected_wait() > OVERFLOW_WAIT_S

        # On a fast machine the next job can reach the router within the millisecond.
        await eventually(busy_past_the_overflow_wait, WAIT_S, "the engine to be busy long enough")
        # the GPU is busy: on to fal (bounded: should the job wait for the gate, fail now)
        second = await asyncio.wait_for(s.image(body), WAIT_S)
        assert second.status_code == 200, second.text
        GatedEngine.gate.set()
        first_done = await first
        assert first_done.status_code == 200
        local = await s.attempts(_job_id(first_done))
        overflowed = await s.attempts(_job_id(second))
    assert [(a["route"], a["outcome"]) for a in local] == [("engine:test-gated", "ok")]
    assert [(a["provider"], a["outcome"]) for a in overflowed] == [
        ("engine", "skipped"),
        ("fal", "ok"),
    ]
    assert "overflow" in overflowed[0]["error"]
    assert providers.fal_submits() == 1


# -- cancel and queue position --------------------------------------------------------------


async def test_queue_position_flows_into_the_job_and_cancel_reaches_the_provider(
    make_settings: SettingsFactory, providers: Providers
) -> None:
    providers.fal.script(JobScript(queued=10_000))
    async with served(providers.settings(make_settings)) as s:
        job_id = await _video(s, IMAGE)
        assert await s.balance() == 1000 - 35

        async def waiting_at_fal() -> bool:
            job = await s.job(job_id)
            return job["status"] == "processing" and isinstance(job.get("queuePosition"), int)

        await eventually(waiting_at_fal, WAIT_S, "the job to show fal's queue position")
        canceled = await s.client.post(f"/v1/jobs/{job_id}/cancel", headers=auth(s.user))
        assert canceled.status_code == 200, canceled.text
        ended = await s.ended(job_id)
        # the wire shows a canceled job as failed, with error "canceled" (spec §6)
        assert (ended["status"], ended["error"]) == ("failed", "canceled"), ended
        assert await s.balance() == 1000
    (job,) = providers.fal.jobs.values()
    assert job.canceled
    assert [r for r in providers.fal.requests if r.method == "PUT"]


# -- webhooks --------------------------------------------------------------------------------


@asynccontextmanager
async def on_loopback(settings: Settings) -> AsyncIterator[Served]:
    """The app on a real port, so that providers can post webhooks to it."""
    with serve_in_thread(create_app(settings), _port_of(settings.public_url)) as url:
        db = await open_database(settings)
        try:
            user = await keys.create_key(db, KeySpec("user", 1000, 1000, 15))
            admin = await keys.create_key(db, KeySpec("admin", 0, 1000, 15, is_admin=True))
        finally:
            await db.aclose()
        async with httpx.AsyncClient(base_url=url, timeout=WAIT_S) as client:
            yield Served(create_app(settings), client, user, admin)


def _port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


def _webhook_settings(
    make_settings: SettingsFactory, providers: Providers, *, poll: float, public: str
) -> Settings:
    return providers.settings(
        make_settings,
        public_url=public,
        provider_webhooks="on",
        provider_poll_interval=poll,
    )


async def _video(s: Served, image: str) -> str:
    body = {"model": "kling-2-6-i2v-pro", "input": {"prompt": "waves", "image": image}}
    submitted = await s.client.post("/v1/videos/generate", json=body, headers=auth(s.user))
    assert submitted.status_code == 202, submitted.text
    return str(submitted.json()["jobId"])


IMAGE = f"data:image/png;base64,{base64.b64encode(tiny_png()).decode()}"


async def test_a_verified_webhook_wakes_the_job_long_before_its_next_poll(
    make_settings: SettingsFactory, providers: Providers
) -> None:
    providers.fal.script(JobScript(hold=True))
    public = f"http://127.0.0.1:{free_port()}"
    # One poll an hour: only the webhook can end this job within the test's patience.
    settings = _webhook_settings(make_settings, providers, poll=3600, public=public)
    async with on_loopback(settings) as s:
        job_id = await _video(s, IMAGE)

        async def accepted_at_fal() -> bool:
            return len(providers.fal.jobs) == 1

        await eventually(accepted_at_fal, WAIT_S, "fal to accept the job")
        (fal_job,) = providers.fal.jobs.values()
        assert fal_job.webhook_url == f"{public}/v1/providers/fal/webhook"
        providers.fal.release(fal_job.request_id)
        ended = await s.ended(job_id)
        assert ended["status"] == "completed", ended
        assert ended["outputUrl"].startswith(public)
    assert [d.status_code for d in providers.fal.webhooks] == [204]


async def test_without_a_webhook_the_job_ends_when_fal_says_so_not_at_its_next_poll(
    make_settings: SettingsFactory, providers: Providers
) -> None:
    providers.fal.script(JobScript(hold=True))
    # No webhook, and one poll an hour: fal's status stream must tell the end.
    settings = providers.settings(
        make_settings, provider_webhooks="off", provider_poll_interval=3600
    )
    async with served(settings) as s:
        job_id = await _video(s, IMAGE)

        async def running_at_fal() -> bool:
            return any(job.state == "IN_PROGRESS" for job in providers.fal.jobs.values())

        await eventually(running_at_fal, WAIT_S, "fal to run the job")
        (fal_job,) = providers.fal.jobs.values()
        assert fal_job.webhook_url is None
        providers.fal.release(fal_job.request_id)
        ended = await s.ended(job_id)
        assert ended["status"] == "completed", ended
    assert providers.fal.of("GET", "/status") == []  # not one poll
    assert len(providers.fal.of("GET", "/status/stream")) == 1


async def test_a_webhook_with_a_bad_signature_is_refused_and_wakes_nothing(
    make_settings: SettingsFactory, providers: Providers
) -> None:
    public = f"http://127.0.0.1:{free_port()}"
    settings = _webhook_settings(make_settings, providers, poll=3600, public=public)
    async with on_loopback(settings) as s:
        body = json.dumps({"request_id": "r-1", "status": "OK", "payload": {}}).encode()
        forged = providers.fal.sign("r-1", b'{"request_id": "r-1", "status": "ERROR"}')
        refused = await s.client.post("/v1/providers/fal/webhook", content=body, headers=forged)
        assert refused.status_code == 401, refused.text
        assert "error" in refused.json()
        unknown = await s.client.post("/v1/providers/acme/webhook", content=body)
        assert unknown.status_code == 404
        good = await s.client.post(
            "/api/v1/providers/fal/webhook", content=body, headers=providers.fal.sign("r-1", body)
        )
        assert good.status_code == 204


async def test_a_lost_webhook_is_caught_by_polling(
    make_settings: SettingsFactory, providers: Providers
) -> None:
    providers.fal.script(JobScript(running=2))
    dead = f"http://127.0.0.1:{free_port()}"  # where the provider is told to post: nobody
    settings = _webhook_settings(make_settings, providers, poll=0.01, public=dead)
    async with served(settings) as s:
        job_id = await _video(s, IMAGE)
        ended = await s.ended(job_id)
    assert ended["status"] == "completed", ended
    (fal_job,) = providers.fal.jobs.values()
    assert fal_job.webhook_url == f"{dead}/v1/providers/fal/webhook"


# -- outputs pass the address guard ---------------------------------------------------------


async def test_an_output_url_at_a_private_address_is_refused_and_refunded(
    make_settings: SettingsFactory, providers: Providers
) -> None:
    # The fake serves its outputs on 127.0.0.1: with private addresses refused, as in
    # production, the download must be refused, the job failed and its charge given back.
    settings = providers.settings(make_settings, allow_private_urls=False)
    async with served(settings) as s:
        response = await s.image(FLUX)
        assert response.status_code == 500, response.text
        assert "private address" in response.json()["error"]
        assert await s.balance() == 1000
    assert providers.fal_submits() == 1 and providers.replicate_creates() == 0


# -- what providers cost, beside the credits charged -----------------------------------------

KONTEXT_CATALOG = """
[[model]]
id = "kontext-t2i"
category = "image"
name = "FLUX Kontext through BFL"
engine = "preview-image"
price = { kind = "flat", credits = 8 }
inputs.prompt = { type = "string", required = true }

[[model.routes]]
to = "bfl:flux-kontext-pro"
map.prompt = "prompt"
"""


async def test_admin_usage_shows_credits_against_the_providers_reported_cost(
    make_settings: SettingsFactory, tmp_path: Path
) -> None:
    catalog = tmp_path / "kontext.toml"
    catalog.write_text(KONTEXT_CATALOG)
    with serve("bfl") as bfl:
        bfl.state.cost = 4.0  # BFL credits: four cents
        settings = make_settings(catalog=catalog, provider_poll_interval=0.01, **bfl.settings())
        async with served(settings) as s:
            for _ in range(2):
                response = await s.image({"model": "kontext-t2i", "prompt": "a red door"})
                assert response.status_code == 200, response.text
            usage = await s.client.get("/admin/usage?hours=1", headers=auth(s.admin))
            refused = await s.client.get("/admin/usage", headers=auth(s.user))
    assert refused.status_code == 403
    row = next(r for r in usage.json()["data"] if r["model"] == "kontext-t2i")
    assert row["jobs"] == row["completed"] == row["routedJobs"] == 2
    assert row["credits"] == 16 and row["creditsUsd"] == pytest.approx(0.16)
    assert row["providerCostUsd"] == pytest.approx(0.08)
