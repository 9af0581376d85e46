"""Admin key management over HTTP, the account view, and the model catalogue."""

from __future__ import annotations

import httpx

from tests.conftest import KeyFactory, auth


async def test_admin_manages_keys(client: httpx.AsyncClient, issue_key: KeyFactory) -> None:
    admin = await issue_key(admin=True, credits=0)
    created = await client.post(
        "/admin/keys",
        json={"name": "team-a", "credits": 250, "rate_limit": 40},
        headers=auth(admin),
    )
    assert created.status_code == 201
    body = created.json()
    assert body["key"].startswith("ck_") and body["webhookSecret"].startswith("whsec_")
    assert (body["credits"], body["rateLimit"], body["name"]) == (250, 40, "team-a")
    new_key = {"Authorization": f"Bearer {body['key']}"}
    account = (await client.get("/v1/account", headers=new_key)).json()
    assert account == {
        "keyId": body["id"],
        "keyName": "team-a",
        "credits": 250,
        "rateLimit": 40,
        "maxRunningJobs": 15,
        "admin": False,
        "maxUploadBytes": 20 * 2**20,
        "maxRequestBytes": 25 * 2**20,
    }
    granted = await client.post(
        f"/admin/keys/{body['id']}/credits", json={"credits": 50}, headers=auth(admin)
    )
    assert granted.json()["credits"] == 300
    listed = (await client.get("/admin/keys", headers=auth(admin))).json()["data"]
    assert body["id"] in {k["id"] for k in listed}
    assert all("key" not in k for k in listed)
    ledger = (await client.get(f"/admin/keys/{body['id']}/ledger", headers=auth(admin))).json()[
        "data"
    ]
    assert [(x["kind"], x["amount"], x["balanceAfter"]) for x in ledger] == [
        ("grant", 50, 300),
        ("grant", 250, 250),
    ]
    missing = await client.post(
        "/admin/keys/key_nope/credits", json={"credits": 5}, headers=auth(admin)
    )
    assert (missing.status_code, missing.json()) == (404, {"error": "Key not found"})


async def test_account_ledger_shows_charge_and_refund(
    client: httpx.AsyncClient, issue_key: KeyFactory
) -> None:
    key = await issue_key(credits=20)
    await client.post("/v1/images/generate", json={"prompt": "x"}, headers=auth(key))
    await client.post(
        "/v1/images/generate", json={"prompt": "x", "model": "test-fail-t2i"}, headers=auth(key)
    )
    lines = (await client.get("/v1/account/ledger", headers=auth(key))).json()["data"]
    assert [(x["kind"], x["amount"]) for x in lines] == [
        ("refund", 5),
        ("charge", -5),
        ("charge", -4),
        ("grant", 20),
    ]
    assert lines[0]["balanceAfter"] == 16


async def test_models_lists_catalogue_with_prices(
    client: httpx.AsyncClient, issue_key: KeyFactory
) -> None:
    key = await issue_key()
    response = await client.get("/v1/models", headers=auth(key))
    assert response.status_code == 200
    payload = response.json()
    assert payload["object"] == "list"
    by_id = {m["id"]: m for m in payload["data"]}
    counts: dict[str, int] = {}
    for model in payload["data"]:
        counts[model["category"]] = counts.get(model["category"], 0) + 1
    assert counts["image"] >= 10 and counts["video"] >= 21 and counts["3d"] >= 6
    assert counts["image_edit"] >= 5 and counts["audio"] >= 7
    gemini = by_id["gemini-3-1-flash-t2i"]
    assert (gemini["price"]["kind"], gemini["price"]["credits"]) == ("flat", 4)
    assert gemini["available"] is True
    assert "16:9" in gemini["inputs"]["aspect_ratio"]["enum"]
    assert by_id["sora-2-i2v"]["price"]["kind"] == "per_second"
    assert by_id["smollm2-135m"]["available"] is True  # served by the chat registry
    assert (await client.get("/api/v1/models", headers=auth(key))).status_code == 200


async def test_healthz_and_openapi(client: httpx.AsyncClient) -> None:
    health = await client.get("/healthz")
    assert health.status_code == 200 and health.json()["status"] == "ok"
    spec = (await client.get("/openapi.json")).json()
    assert "/v1/images/generate" in spec["paths"]
    assert (await client.get("/docs")).status_code == 200
