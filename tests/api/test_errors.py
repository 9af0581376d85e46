"""Every error row of spec §2, with exact bodies, against the real app."""

from __future__ import annotations

import httpx
import pytest

from hyperlocal.app import create_app
from tests.conftest import KeyFactory, SettingsFactory, auth
from tests.support import TEST_ENGINES

UNAUTHORIZED = {"error": "Unauthorized. Please log in or provide a valid API key."}
PROMPT = {"prompt": "a lighthouse at dusk"}


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer ck_not_a_real_key"},
        {"Authorization": "Basic abc"},
        {"Authorization": "Bearer "},
    ],
)
async def test_missing_or_bad_key_is_401(
    client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    response = await client.post("/v1/images/generate", json=PROMPT, headers=headers)
    assert response.status_code == 401
    assert response.json() == UNAUTHORIZED


async def test_revoked_key_is_401(client: httpx.AsyncClient, issue_key: KeyFactory) -> None:
    admin, user = await issue_key(admin=True), await issue_key()
    assert (await client.get("/v1/account", headers=auth(user))).status_code == 200
    revoked = await client.post(f"/admin/keys/{user.info.id}/revoke", headers=auth(admin))
    assert revoked.json()["revoked"] is True
    response = await client.get("/v1/account", headers=auth(user))
    assert (response.status_code, response.json()) == (401, UNAUTHORIZED)


async def test_model_missing_on_edit_is_400(
    client: httpx.AsyncClient, issue_key: KeyFactory
) -> None:
    key = await issue_key()
    body = {"prompt": "make it blue", "images": ["data:image/png;base64,AAAA"]}
    response = await client.post("/v1/images/edit", json=body, headers=auth(key))
    assert (response.status_code, response.json()) == (400, {"error": "Model is required"})


@pytest.mark.parametrize(
    ("path", "model"),
    [
        ("/v1/images/generate", "no-such-model"),
        ("/v1/images/generate", "sora-2-i2v"),  # a video model on the image endpoint
        ("/v1/images/edit", "gemini-3-1-flash-t2i"),  # generate model on the edit endpoint
    ],
)
async def test_unsupported_model_is_400(
    client: httpx.AsyncClient, issue_key: KeyFactory, path: str, model: str
) -> None:
    key = await issue_key()
    body = {**PROMPT, "model": model, "images": ["data:image/png;base64,AAAA"]}
    response = await client.post(path, json=body, headers=auth(key))
    assert (response.status_code, response.json()) == (
        400,
        {"error": f"Unsupported model: {model}"},
    )


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ({"aspect_ratio": "7:3"}, "aspect_ratio: must be one of"),
        ({"prompt": None}, "prompt: is required"),
        ({"prompt": 42}, "prompt: "),
        ({"output_format": "gif"}, "output_format: must be one of"),
    ],
)
async def test_invalid_input_is_400_e1004(
    client: httpx.AsyncClient, issue_key: KeyFactory, body: dict[str, object], error: str
) -> None:
    key = await issue_key()
    response = await client.post("/v1/images/generate", json={**PROMPT, **body}, headers=auth(key))
    assert response.status_code == 400
    assert response.json()["code"] == "E1004"
    assert response.json()["error"].startswith(error)
    assert (await client.get("/v1/account", headers=auth(key))).json()["credits"] == 1000


async def test_unknown_input_fields_are_ignored(
    client: httpx.AsyncClient, issue_key: KeyFactory
) -> None:
    key = await issue_key()
    body = {**PROMPT, "format": "png", "last_frame_image": "x", "tail_image": 3}
    response = await client.post("/v1/images/generate", json=body, headers=auth(key))
    assert response.status_code == 200


async def test_insufficient_credits_is_402_with_amounts(
    client: httpx.AsyncClient, issue_key: KeyFactory
) -> None:
    key = await issue_key(credits=3)
    response = await client.post("/v1/images/generate", json=PROMPT, headers=auth(key))
    assert response.status_code == 402
    assert response.json() == {"error": "Insufficient credits", "required": 4, "available": 3}


async def test_job_not_found_and_other_keys_job_are_404(
    client: httpx.AsyncClient, issue_key: KeyFactory
) -> None:
    owner, other = await issue_key(), await issue_key()
    accepted = await client.post(
        "/v1/images/generate", json=PROMPT, headers={**auth(owner), "Prefer": "respond-async"}
    )
    assert accepted.status_code == 202
    job_id = accepted.json()["jobId"]
    for path, key in ((f"/v1/jobs/{job_id}", other), ("/v1/jobs/job_doesnotexist", owner)):
        response = await client.get(path, headers=auth(key))
        assert (response.status_code, response.json()) == (404, {"error": "Job not found"})
    assert (await client.get(f"/v1/jobs/{job_id}", headers=auth(owner))).status_code == 200


async def test_body_too_large_is_413(make_settings: SettingsFactory, issue_key: KeyFactory) -> None:
    from asgi_lifespan import LifespanManager

    app = create_app(make_settings(max_body_bytes=1000), engines=TEST_ENGINES)
    async with (
        LifespanManager(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://testserver"
        ) as client,
    ):
        big = {"prompt": "x" * 5000}
        response = await client.post("/v1/images/generate", json=big)
        assert (response.status_code, response.json()) == (
            413,
            {"error": "Request body too large", "limit": 1000},
        )

        async def chunks():  # no Content-Length: the limit holds while streaming
            for _ in range(10):
                yield b"x" * 500

        streamed = await client.post("/v1/images/generate", content=chunks())
        assert (streamed.status_code, streamed.json()["limit"]) == (413, 1000)


async def test_rate_limit_is_429_with_headers_and_not_charged(
    client: httpx.AsyncClient, issue_key: KeyFactory
) -> None:
    key = await issue_key(rate_limit=3)
    for remaining in (2, 1, 0):
        ok = await client.post("/v1/images/generate", json=PROMPT, headers=auth(key))
        assert ok.status_code == 200
        assert ok.headers["X-RateLimit-Remaining"] == str(remaining)
        assert ok.headers["X-RateLimit-Limit"] == "3"
    limited = await client.post("/v1/images/generate", json=PROMPT, headers=auth(key))
    assert limited.status_code == 429
    assert limited.json() == {"error": "Rate limit exceeded", "limit": 3, "window": "1h"}
    assert 3500 <= int(limited.headers["Retry-After"]) <= 3600
    assert limited.headers["X-RateLimit-Remaining"] == "0"
    assert int(limited.headers["X-RateLimit-Reset"]) > 0
    services = client._transport.app.state.services  # type: ignore[attr-defined]
    from hyperlocal.core import keys

    assert (await keys.get_key(services.db, key.info.id)).credits == 1000 - 3 * 4


@pytest.mark.parametrize(
    ("model", "error", "code"),
    [
        ("test-fail-t2i", "the model ran out of memory", "E1001"),
        ("test-crash-t2i", "Unexpected error during generation", "E9999"),
    ],
)
async def test_generation_failure_is_500_and_refunded(
    client: httpx.AsyncClient, issue_key: KeyFactory, model: str, error: str, code: str
) -> None:
    key = await issue_key(credits=100)
    response = await client.post(
        "/v1/images/generate", json={**PROMPT, "model": model}, headers=auth(key)
    )
    assert (response.status_code, response.json()) == (500, {"error": error, "code": code})
    assert "Traceback" not in response.text
    assert (await client.get("/v1/account", headers=auth(key))).json()["credits"] == 100


async def test_generation_timeout_is_e1002_and_refunded(
    client: httpx.AsyncClient, issue_key: KeyFactory
) -> None:
    key = await issue_key(credits=100)
    body = {**PROMPT, "model": "test-slow-t2i", "seconds": 5}
    response = await client.post("/v1/images/generate", json=body, headers=auth(key))
    assert response.status_code == 500
    assert response.json() == {"error": "Generation timed out after 1 s", "code": "E1002"}
    assert (await client.get("/v1/account", headers=auth(key))).json()["credits"] == 100


async def test_engine_not_installed_is_503_and_not_charged(
    client: httpx.AsyncClient, issue_key: KeyFactory
) -> None:
    key = await issue_key(credits=100)
    body = {**PROMPT, "model": "test-missing-engine-t2i"}
    response = await client.post("/v1/images/generate", json=body, headers=auth(key))
    assert response.status_code == 503
    assert response.json() == {"error": "Engine 'not-installed' is not installed on this server"}
    assert (await client.get("/v1/account", headers=auth(key))).json()["credits"] == 100


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/v1/nothing-here", 404),
        ("GET", "/v1/images/generate", 405),
        ("DELETE", "/healthz", 405),
    ],
)
async def test_routing_errors_are_json(
    client: httpx.AsyncClient, method: str, path: str, status: int
) -> None:
    response = await client.request(method, path)
    assert response.status_code == status
    assert isinstance(response.json()["error"], str)


async def test_invalid_json_is_400(client: httpx.AsyncClient, issue_key: KeyFactory) -> None:
    key = await issue_key()
    response = await client.post(
        "/v1/images/generate",
        content=b"{not json",
        headers={**auth(key), "Content-Type": "application/json"},
    )
    assert response.status_code == 400
    assert response.json() == {"error": "body: invalid JSON", "code": "E1004"}


async def test_admin_routes_refuse_other_keys(
    client: httpx.AsyncClient, issue_key: KeyFactory
) -> None:
    user = await issue_key()
    for method, path in (("GET", "/admin/keys"), ("POST", "/admin/keys")):
        response = await client.request(method, path, headers=auth(user), json={"name": "x"})
        assert response.status_code == 403
        assert response.json() == {"error": "Forbidden. This route needs the admin key."}
