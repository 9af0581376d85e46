"""What the console asks of the API (issue 20): whether a key is the admin, the upload limits,
prices quoted by the function that charges, the catalogue without its evidence notes, jobs
found by their image result id, and prompts that are checked before they are charged."""

from __future__ import annotations

import base64

import httpx

from tests.conftest import KeyFactory, auth
from tests.support import tiny_png

PNG = "data:image/png;base64," + base64.b64encode(tiny_png()).decode()


async def test_account_says_whether_the_key_is_admin(
    client: httpx.AsyncClient, issue_key: KeyFactory
) -> None:
    user, admin = await issue_key(), await issue_key(admin=True)
    mine = (await client.get("/v1/account", headers=auth(user))).json()
    assert mine["admin"] is False
    assert (mine["maxUploadBytes"], mine["maxRequestBytes"]) == (20 * 2**20, 25 * 2**20)
    assert (await client.get("/v1/account", headers=auth(admin))).json()["admin"] is True


async def test_a_quote_is_what_the_submit_charges(
    client: httpx.AsyncClient, issue_key: KeyFactory
) -> None:
    key = await issue_key()
    models = (await client.get("/v1/models", headers=auth(key))).json()["data"]
    seedance = next(m for m in models if m["id"] == "seedance-2-0-fast-i2v")
    assert seedance["priceAtDefaults"] == 70  # 28 per 5 s, x2.5 at the default 720p
    assert seedance["priceInputs"] == ["duration", "resolution"]

    settings = {"duration": 10, "resolution": "480p"}
    quote = await client.post(
        "/v1/models/seedance-2-0-fast-i2v/quote", json={"input": settings}, headers=auth(key)
    )
    assert quote.json() == {"model": "seedance-2-0-fast-i2v", "credits": 56}
    body = {"model": "seedance-2-0-fast-i2v", "input": {**settings, "prompt": "x", "image": PNG}}
    submit = await client.post(
        "/v1/videos/generate", json=body, headers={**auth(key), "Prefer": "respond-async"}
    )
    assert submit.json()["creditsUsed"] == 56
    await client.post(f"/v1/jobs/{submit.json()['jobId']}/cancel", headers=auth(key))

    bad = await client.post(
        "/v1/models/seedance-2-0-fast-i2v/quote",
        json={"input": {"duration": 60}},
        headers=auth(key),
    )
    assert (bad.status_code, bad.json()["error"]) == (400, "duration: must be between 5 and 10")
    unknown = await client.post("/v1/models/nope/quote", json={}, headers=auth(key))
    assert (unknown.status_code, unknown.json()["error"]) == (400, "Unsupported model: nope")


async def test_evidence_notes_are_for_the_admin_only(
    client: httpx.AsyncClient, issue_key: KeyFactory
) -> None:
    user, admin = await issue_key(), await issue_key(admin=True)
    models = (await client.get("/v1/models", headers=auth(user))).text
    for internal in ("inferred", "guess", "seen", "accepted and ignored", "evidence"):
        assert internal not in models, internal
    assert (await client.get("/admin/models", headers=auth(user))).status_code == 403
    notes = (await client.get("/admin/models", headers=auth(admin))).json()["data"]
    flux = next(n for n in notes if n["id"] == "flux-1-schnell")
    assert flux["evidence"] == "inferred"
    assert "guess" in flux["evidenceNote"] and flux["priceNote"] == "inferred price"


async def test_an_image_job_is_found_by_its_result_id(
    client: httpx.AsyncClient, issue_key: KeyFactory
) -> None:
    key = await issue_key()
    image = await client.post(
        "/v1/images/generate", json={"prompt": "a red door"}, headers=auth(key)
    )
    result_id = image.json()["resultId"]
    job = (await client.get(f"/v1/jobs/{result_id}", headers=auth(key))).json()
    assert job["jobId"].startswith("job_") and job["resultId"] == result_id
    assert job["input"]["prompt"] == "a red door"
    assert isinstance(job["elapsedMs"], int) and job["elapsedMs"] >= 0
    other = await issue_key()
    assert (await client.get(f"/v1/jobs/{result_id}", headers=auth(other))).status_code == 404


async def test_blank_and_overlong_prompts_are_refused_uncharged(
    client: httpx.AsyncClient, issue_key: KeyFactory
) -> None:
    key = await issue_key(credits=100)
    blank = await client.post("/v1/images/generate", json={"prompt": "   "}, headers=auth(key))
    assert (blank.status_code, blank.json()["error"]) == (400, "prompt: is required")
    long = await client.post(
        "/v1/images/generate", json={"prompt": "x" * 200_000}, headers=auth(key)
    )
    assert (long.status_code, long.json()["error"]) == (
        400,
        "prompt: must be at most 2500 characters",
    )
    assert (await client.get("/v1/account", headers=auth(key))).json()["credits"] == 100
