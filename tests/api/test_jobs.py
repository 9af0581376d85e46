"""Async jobs (spec §5, §6): polling, listing, cancel, SSE events, idempotency, the per-key
cap on running jobs, and Prefer: respond-async."""

from __future__ import annotations

import asyncio
import json
import logging

import httpx
import pytest

from tests.conftest import KeyFactory, auth

SLOW_VIDEO = {"model": "test-slow-video", "input": {"prompt": "waves", "seconds": 0.3}}


async def _poll_until_done(client: httpx.AsyncClient, key, job_id: str) -> dict[str, object]:  # type: ignore[no-untyped-def]
    for _ in range(400):
        job = (await client.get(f"/v1/jobs/{job_id}", headers=auth(key))).json()
        if job["status"] != "processing":
            return dict(job)
        await asyncio.sleep(0.025)
    raise AssertionError("job did not finish")


async def test_video_submit_is_202_and_pollable(
    client: httpx.AsyncClient, issue_key: KeyFactory
) -> None:
    key = await issue_key()
    response = await client.post("/v1/videos/generate", json=SLOW_VIDEO, headers=auth(key))
    assert response.status_code == 202
    body = response.json()
    assert set(body) == {"jobId", "status", "message", "creditsUsed", "pollUrl"}
    assert body["status"] == "processing" and body["jobId"].startswith("job_")
    assert body["creditsUsed"] == 10
    assert (
        body["pollUrl"]
        == f"http://testserver/v1/jobs/{body['jobId']}?model=test-slow-video&type=video"
    )
    done = await _poll_until_done(client, key, body["jobId"])
    assert done["status"] == "completed" and done["type"] == "video"
    assert done["model"] == "test-slow-video" and done["creditsUsed"] == 10
    assert str(done["outputUrl"]).startswith("http://testserver/files/videos/")
    assert (await client.get(str(done["outputUrl"]))).status_code == 200


async def test_flat_body_and_api_v1_prefix(
    client: httpx.AsyncClient, issue_key: KeyFactory
) -> None:
    key = await issue_key()
    flat = {"model": "test-slow-video", "prompt": "waves", "seconds": 0.05, "duration": 10}
    response = await client.post("/api/v1/videos/generate", json=flat, headers=auth(key))
    assert response.status_code == 202
    assert response.json()["creditsUsed"] == 20  # 10 credits per 5 s


async def test_model_required_on_video(client: httpx.AsyncClient, issue_key: KeyFactory) -> None:
    key = await issue_key()
    response = await client.post(
        "/v1/videos/generate", json={"input": {"prompt": "x"}}, headers=auth(key)
    )
    assert (response.status_code, response.json()) == (400, {"error": "Model is required"})


async def test_queue_position_and_running_cap(
    client: httpx.AsyncClient, issue_key: KeyFactory
) -> None:
    key = await issue_key(max_running=1)
    body = {"model": "test-slow-video", "input": {"prompt": "x", "seconds": 0.6}}
    ids = [
        (await client.post("/v1/videos/generate", json=body, headers=auth(key))).json()["jobId"]
        for _ in range(3)
    ]
    await asyncio.sleep(0.2)
    views = [(await client.get(f"/v1/jobs/{i}", headers=auth(key))).json() for i in ids]
    assert all(v["status"] == "processing" for v in views)
    assert [v.get("queuePosition") is None for v in views] == [True, False, False]
    running = 0
    for _ in range(60):  # never more than one running at once
        from hyperlocal.store import jobs as store

        services = client._transport.app.state.services  # type: ignore[attr-defined]
        async with services.db.read() as session:
            running = await store.count_running_for_key(session, key.info.id)
        assert running <= 1
        await asyncio.sleep(0.03)
    for job_id in ids:
        assert (await _poll_until_done(client, key, job_id))["status"] == "completed"


async def test_list_is_newest_first_and_paginated(
    client: httpx.AsyncClient, issue_key: KeyFactory
) -> None:
    key, other = await issue_key(), await issue_key()
    body = {"prompt": "x"}
    ids = [
        (
            await client.post(
                "/v1/images/generate", json=body, headers={**auth(key), "Prefer": "respond-async"}
            )
        ).json()["jobId"]
        for _ in range(5)
    ]
    await client.post(
        "/v1/images/generate", json=body, headers={**auth(other), "Prefer": "respond-async"}
    )
    first = (await client.get("/v1/jobs?limit=2", headers=auth(key))).json()
    second = (
        await client.get(f"/v1/jobs?limit=2&cursor={first['nextCursor']}", headers=auth(key))
    ).json()
    third = (
        await client.get(f"/v1/jobs?limit=2&cursor={second['nextCursor']}", headers=auth(key))
    ).json()
    listed = [j["jobId"] for page in (first, second, third) for j in page["data"]]
    assert listed == list(reversed(ids))
    assert "nextCursor" not in third


async def test_cancel_refunds(client: httpx.AsyncClient, issue_key: KeyFactory) -> None:
    key = await issue_key(credits=100)
    body = {"model": "test-slow-video", "input": {"prompt": "x", "seconds": 5}}
    job_id = (await client.post("/v1/videos/generate", json=body, headers=auth(key))).json()[
        "jobId"
    ]
    assert (await client.get("/v1/account", headers=auth(key))).json()["credits"] == 90
    canceled = await client.post(f"/v1/jobs/{job_id}/cancel", headers=auth(key))
    assert canceled.status_code == 200
    assert canceled.json()["status"] == "failed" and canceled.json()["error"] == "canceled"
    assert (await client.get("/v1/account", headers=auth(key))).json()["credits"] == 100
    again = await client.post(f"/v1/jobs/{job_id}/cancel", headers=auth(key))
    assert (again.status_code, again.json()) == (409, {"error": "Job already canceled"})
    assert (await client.get("/v1/account", headers=auth(key))).json()["credits"] == 100
    await asyncio.sleep(0.3)
    assert (await client.get(f"/v1/jobs/{job_id}", headers=auth(key))).json()["status"] == "failed"


async def test_events_stream_status_and_progress(
    client: httpx.AsyncClient, issue_key: KeyFactory
) -> None:
    key = await issue_key()
    body = {"model": "test-slow-video", "input": {"prompt": "x", "seconds": 1.5}}
    job_id = (await client.post("/v1/videos/generate", json=body, headers=auth(key))).json()[
        "jobId"
    ]
    events: list[tuple[str, dict[str, object]]] = []
    async with client.stream("GET", f"/v1/jobs/{job_id}/events", headers=auth(key)) as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        name = ""
        async for line in stream.aiter_lines():
            if line.startswith("event: "):
                name = line.removeprefix("event: ")
            elif line.startswith("data: "):
                events.append((name, json.loads(line.removeprefix("data: "))))
    kinds = [k for k, _ in events]
    assert kinds[0] == "status" and kinds[-1] == "status"
    assert "progress" in kinds
    assert events[-1][1]["status"] == "completed"
    progress = [float(d["progress"]) for k, d in events if k == "progress"]  # type: ignore[arg-type]
    assert progress == sorted(progress)
    missing = await client.get("/v1/jobs/job_nope/events", headers=auth(key))
    assert missing.status_code == 404


async def test_idempotency_replays_and_conflicts(
    client: httpx.AsyncClient, issue_key: KeyFactory
) -> None:
    key = await issue_key(credits=100)
    headers = {**auth(key), "Idempotency-Key": "order-42"}
    first = await client.post("/v1/images/generate", json={"prompt": "same"}, headers=headers)
    second = await client.post("/v1/images/generate", json={"prompt": "same"}, headers=headers)
    assert first.status_code == second.status_code == 200
    assert first.json() == second.json()
    assert (await client.get("/v1/account", headers=auth(key))).json()["credits"] == 96
    conflict = await client.post(
        "/v1/images/generate", json={"prompt": "different"}, headers=headers
    )
    assert conflict.status_code == 409
    assert conflict.json() == {
        "error": "Idempotency-Key was already used with a different request body"
    }
    other_key = await issue_key()
    fresh = await client.post(
        "/v1/images/generate",
        json={"prompt": "same"},
        headers={**auth(other_key), "Idempotency-Key": "order-42"},
    )
    assert fresh.json()["resultId"] != first.json()["resultId"]  # keys are scoped per API key


async def test_concurrent_idempotent_submits_charge_once(
    client: httpx.AsyncClient, issue_key: KeyFactory
) -> None:
    key = await issue_key(credits=100)
    headers = {**auth(key), "Idempotency-Key": "burst", "Prefer": "respond-async"}
    responses = await asyncio.gather(
        *(
            client.post("/v1/images/generate", json={"prompt": "p"}, headers=headers)
            for _ in range(8)
        )
    )
    assert {r.status_code for r in responses} == {202}
    assert len({r.json()["jobId"] for r in responses}) == 1
    assert (await client.get("/v1/account", headers=auth(key))).json()["credits"] == 96


async def test_audio_sync_and_async(client: httpx.AsyncClient, issue_key: KeyFactory) -> None:
    key = await issue_key()
    body = {"model": "test-slow-audio", "input": {"text": "hello", "seconds": 0.05}}
    sync = await client.post("/v1/audio/generate", json=body, headers=auth(key))
    assert sync.status_code == 200
    assert sync.json()["success"] is True and sync.json()["creditsUsed"] == 2
    legacy = await client.post(
        "/api/media/generate", json=body, headers={**auth(key), "Prefer": "respond-async"}
    )
    assert legacy.status_code == 202
    wrong = await client.post(
        "/api/media/generate", json={"model": "sora-2-i2v", "input": {}}, headers=auth(key)
    )
    assert wrong.json() == {"error": "Unsupported model: sora-2-i2v"}


async def test_event_stream_outlives_heartbeats(
    client: httpx.AsyncClient, issue_key: KeyFactory
) -> None:
    """A quiet job: the stream sends heartbeats and stays open until the job ends."""
    from hyperlocal.core import jobs as job_core

    key = await issue_key()
    body = {"model": "test-slow-video", "input": {"prompt": "x", "seconds": 1.2}}
    job_id = (await client.post("/v1/videos/generate", json=body, headers=auth(key))).json()[
        "jobId"
    ]
    services = client._transport.app.state.services  # type: ignore[attr-defined]
    items = [
        item
        async for item in job_core.watch(
            services.db, services.events, key.info, job_id, heartbeat=0.1
        )
    ]
    heartbeats = sum(1 for item in items if item is None)
    assert heartbeats >= 3  # several quiet beats passed without ending the stream
    assert isinstance(items[-1], job_core.JobView) and items[-1].status.value == "completed"


async def _finished_image_job(client: httpx.AsyncClient, key) -> dict[str, object]:  # type: ignore[no-untyped-def]
    headers = {**auth(key), "Prefer": "respond-async"}
    response = await client.post("/v1/images/generate", json={"prompt": "x"}, headers=headers)
    return await _poll_until_done(client, key, response.json()["jobId"])


async def _set_result(client: httpx.AsyncClient, job_id: object, result: object) -> None:
    """Write a job's stored result as an engine (or an older or newer server) might have."""
    from sqlalchemy import update

    from hyperlocal.store.tables import Job

    services = client._transport.app.state.services  # type: ignore[attr-defined]
    async with services.db.transaction() as session:
        await session.execute(update(Job).where(Job.id == job_id).values(result=result))


async def _status_events(client: httpx.AsyncClient, key, job_id: object) -> list[dict[str, object]]:  # type: ignore[no-untyped-def]
    async with client.stream("GET", f"/v1/jobs/{job_id}/events", headers=auth(key)) as stream:
        lines = [line async for line in stream.aiter_lines()]
    return [json.loads(line.removeprefix("data: ")) for line in lines if line.startswith("data: ")]


async def test_engine_extras_never_override_the_job_fields(
    client: httpx.AsyncClient, issue_key: KeyFactory
) -> None:
    """Speech recognition reports the recogniser it used as ``model``: the job's own fields win,
    and the engine's other facts still show."""
    key = await issue_key()
    done = await _finished_image_job(client, key)
    extra = {"model": "tiny.en", "status": "odd", "creditsUsed": 0, "language": "en"}
    await _set_result(client, done["jobId"], {"text": "hi", "duration": 1.5, "extra": extra})
    read = await client.get(f"/v1/jobs/{done['jobId']}", headers=auth(key))
    assert read.status_code == 200, read.text
    listed = await client.get("/v1/jobs", headers=auth(key))
    assert listed.status_code == 200, listed.text
    streamed = (await _status_events(client, key, done["jobId"]))[-1]
    for shown in (read.json(), listed.json()["data"][0], streamed):
        assert {k: shown[k] for k in ("jobId", "status", "model", "creditsUsed")} == {
            k: done[k] for k in ("jobId", "status", "model", "creditsUsed")
        }
        assert (shown["language"], shown["text"], shown["duration"]) == ("en", "hi", 1.5)


async def test_a_job_that_cannot_be_shown_does_not_break_the_list(
    client: httpx.AsyncClient, issue_key: KeyFactory, caplog: pytest.LogCaptureFixture
) -> None:
    key = await issue_key()
    good, broken = await _finished_image_job(client, key), await _finished_image_job(client, key)
    await _set_result(client, broken["jobId"], ["not", "a", "result"])
    with caplog.at_level(logging.ERROR, logger="hyperlocal"):
        listed = await client.get("/v1/jobs", headers=auth(key))
    assert listed.status_code == 200, listed.text
    rows = listed.json()["data"]
    assert [r["jobId"] for r in rows] == [broken["jobId"], good["jobId"]]
    assert rows[1] == good
    assert set(rows[0]) == {"jobId", "status", "error"} and rows[0]["status"] == "completed"
    assert "could not be shown" in rows[0]["error"]
    logged = [r for r in caplog.records if getattr(r, "job_id", None) == broken["jobId"]]
    assert logged and logged[0].exc_info is not None
    read = await client.get(f"/v1/jobs/{broken['jobId']}", headers=auth(key))
    assert read.status_code == 500 and read.json()["code"] == "E9999"
    assert broken["jobId"] in read.json()["error"] and "could not be shown" in read.json()["error"]
    assert (await _status_events(client, key, broken["jobId"])) == [rows[0]]
