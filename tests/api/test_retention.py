"""Retention on a stepped clock: outputs and inputs are deleted when their time is up and not
before, the job rows stay, an expired output answers 410, and the storage report adds up."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI

from hyperlocal.app import create_app
from hyperlocal.core import keys
from hyperlocal.core.keys import IssuedKey, KeySpec
from hyperlocal.core.retention import input_keys, job_retention
from hyperlocal.core.services import Services
from hyperlocal.settings import Settings
from hyperlocal.store import jobs as job_store
from tests.conftest import SettingsFactory, auth, services_of
from tests.support import TEST_ENGINES, SteppedClock, eventually, sweep_at, tiny_png

HOUR = 3600.0


@dataclass
class Server:
    app: FastAPI
    client: httpx.AsyncClient
    clock: SteppedClock
    key: IssuedKey

    @property
    def svc(self) -> Services:
        return services_of(self.app)


async def open_server(settings: Settings) -> AsyncIterator[Server]:
    clock = SteppedClock()
    app = create_app(settings, engines=TEST_ENGINES, clock=clock)
    async with (
        LifespanManager(app, startup_timeout=30, shutdown_timeout=30),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client,
    ):
        key = await keys.create_key(services_of(app).db, KeySpec("retention", 1000, 1000, 15))
        yield Server(app, client, clock, key)


# The sweep runs at start and when poked: the test decides when it looks.
HOURLY = {"output_retention": HOUR, "retention_sweep_interval": HOUR}


@pytest.fixture
async def server(make_settings: SettingsFactory) -> AsyncIterator[Server]:
    async for opened in open_server(make_settings(**HOURLY)):
        yield opened


@pytest.fixture
async def server_on_both(db_settings: Settings) -> AsyncIterator[Server]:
    """On SQLite, then on PostgreSQL (migration 0006 on both)."""
    async for opened in open_server(db_settings.model_copy(update=HOURLY)):
        yield opened


async def edit_job(server: Server, retention: int | None = None) -> dict[str, Any]:
    """An image edit (one stored input, one output), run to completion; its job view."""
    source = "data:image/png;base64," + base64.b64encode(tiny_png()).decode()
    body: dict[str, Any] = {"model": "nano-banana-edit", "prompt": "x", "images": [source]}
    if retention is not None:
        body["retention"] = retention
    headers = auth(server.key) | {"Prefer": "respond-async"}
    accepted = await server.client.post("/v1/images/edit", json=body, headers=headers)
    assert accepted.status_code == 202, accepted.text
    job_id = accepted.json()["jobId"]
    view: dict[str, Any] = {}

    async def completed() -> bool:
        nonlocal view
        view = (await server.client.get(f"/v1/jobs/{job_id}", headers=auth(server.key))).json()
        return bool(view["status"] == "completed")

    await eventually(completed, 30, f"job {job_id} to complete")
    return view


async def sweep_to(server: Server, now: float) -> None:
    await sweep_at(server.svc.expiry, server.clock, now)


async def row_of(server: Server, job_id: str) -> Any:
    async with server.svc.db.read() as session:
        return await job_store.get(session, job_id)


def file_path(view: dict[str, Any]) -> str:
    return str(view["outputUrl"]).removeprefix("http://testserver")


async def stored(svc: Services, key: str) -> bool:
    try:
        await svc.storage.get(key)
    except FileNotFoundError:
        return False
    return True


async def inputs_stored(server: Server, job: Any) -> bool:
    found = []
    for key in input_keys(job.inputs):
        try:
            await server.svc.private.get(key)
            found.append(key)
        except FileNotFoundError:
            pass
    return bool(found)


async def test_outputs_and_inputs_expire_on_time_and_the_job_row_stays(
    server_on_both: Server,
) -> None:
    server = server_on_both
    kept = await edit_job(server)  # the server's hour
    short = await edit_job(server, retention=60)  # shorter: honoured
    long = await edit_job(server, retention=10**9)  # longer: kept for the server's hour only
    rows = {v["jobId"]: await row_of(server, v["jobId"]) for v in (kept, short, long)}
    for view, seconds in ((kept, HOUR), (short, 60.0), (long, HOUR)):
        row = rows[view["jobId"]]
        assert row.expires_at == pytest.approx(row.finished_at + seconds)
        assert view["expiresAt"] == int(row.expires_at)
        assert "expired" not in view
        assert await inputs_stored(server, row)
    short_row = rows[short["jobId"]]

    await sweep_to(server, short_row.expires_at - 1)  # a second early: nothing goes
    assert (await server.client.get(file_path(short))).status_code == 200
    assert await inputs_stored(server, short_row)

    await sweep_to(server, short_row.expires_at + 1)
    gone = await server.client.get(file_path(short))
    assert (gone.status_code, gone.json()) == (410, {"error": "Output expired"})
    assert not await stored(server.svc, short_row.output_keys[0])
    assert not await inputs_stored(server, short_row)  # inputs never outlive the outputs
    assert (await server.client.get(file_path(kept))).status_code == 200
    assert await inputs_stored(server, rows[kept["jobId"]])

    shown = (await server.client.get(f"/v1/jobs/{short['jobId']}", headers=auth(server.key))).json()
    assert shown["status"] == "completed" and shown["expired"] is True
    assert "outputUrl" not in shown and shown["expiresAt"] == short["expiresAt"]
    listed = (await server.client.get("/v1/jobs", headers=auth(server.key))).json()["data"]
    assert {j["jobId"] for j in listed} == set(rows)  # every row is kept, and shows

    last = max(rows[v["jobId"]].expires_at for v in (kept, long))
    await sweep_to(server, last + 1)
    for view in (kept, long):
        assert (await server.client.get(file_path(view))).status_code == 410
        row = await row_of(server, view["jobId"])
        assert row is not None and row.expired_at is not None and row.inputs_expire_at is None
        assert not await inputs_stored(server, row)
    assert (await server.client.get("/files/images/res_never.png")).status_code == 404


async def test_retention_is_checked_and_forever_keeps_outputs(
    make_settings: SettingsFactory,
) -> None:
    async for server in open_server(make_settings(output_retention=0)):
        body = {"model": "nano-banana-edit", "prompt": "x", "images": [], "retention": 0}
        refused = await server.client.post("/v1/images/edit", json=body, headers=auth(server.key))
        assert refused.status_code == 400 and refused.json()["error"].startswith("retention")
        forever = await edit_job(server)
        assert "expiresAt" not in forever  # kept forever: no expiry to show
        row = await row_of(server, forever["jobId"])
        assert row.expires_at is None and row.inputs_expire_at is not None  # inputs: 24 h
        await sweep_to(server, server.clock.now + 10 * 365 * 86_400)
        assert (await server.client.get(file_path(forever))).status_code == 200
        assert not await inputs_stored(server, await row_of(server, forever["jobId"]))


def test_retention_settings_read_seconds_and_durations(make_settings: SettingsFactory) -> None:
    for value, seconds in (("7d", 604_800), ("24h", 86_400), ("1d12h", 129_600), ("90", 90)):
        assert make_settings(output_retention=value).output_retention == seconds
    assert make_settings().output_retention == 7 * 86_400
    with pytest.raises(ValueError, match="output_retention"):
        make_settings(output_retention="a week")
    assert job_retention(3600, None) == 3600
    assert job_retention(3600, 60) == 60 and job_retention(3600, 7200) == 3600
    assert job_retention(0, None) is None and job_retention(0, 60) == 60


async def test_admin_storage_reports_bytes_by_kind_and_age(server: Server) -> None:
    admin = await keys.create_key(server.svc.db, KeySpec("admin", 0, 1000, 15, True))
    await edit_job(server)
    refused = await server.client.get("/admin/storage", headers=auth(server.key))
    assert refused.status_code == 403
    report = (await server.client.get("/admin/storage", headers=auth(admin))).json()
    kinds, ages = report["byKind"], report["byAge"]
    assert kinds["images"]["files"] == 1 and kinds["images"]["bytes"] > 0
    assert kinds["inputs"]["files"] == 1 and kinds["inputs"]["bytes"] == len(tiny_png())
    assert ages["<1h"] == report["total"]
    assert report["total"]["files"] == sum(k["files"] for k in kinds.values())
