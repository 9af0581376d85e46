"""Images (spec §4) through the real app: generate, edit, outputs served from storage."""

from __future__ import annotations

import base64
import io

import httpx
import pytest
from fastapi import FastAPI
from PIL import Image
from starlette.applications import Starlette
from starlette.responses import Response
from starlette.routing import Route

from tests.conftest import KeyFactory, auth
from tests.support import serve_in_thread, tiny_png


def _open(content: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(content))
    image.load()
    return image


async def test_seed_curl_example_returns_16_9_png(
    client: httpx.AsyncClient, issue_key: KeyFactory
) -> None:
    key = await issue_key()
    body = {
        "model": "gemini-3-1-flash-t2i",
        "prompt": "a sunset over the ocean",
        "aspect_ratio": "16:9",
    }
    response = await client.post("/v1/images/generate", json=body, headers=auth(key))
    assert response.status_code == 200
    payload = response.json()
    assert set(payload) == {"created", "data", "resultId", "creditsUsed"}
    assert payload["resultId"].startswith("res_") and payload["creditsUsed"] == 4
    url = payload["data"][0]["url"]
    assert url == f"http://testserver/files/images/{payload['resultId']}.png"
    assert payload["data"][0]["model"] == "gemini-3-1-flash-t2i"
    image_response = await client.get(url)
    assert image_response.headers["content-type"] == "image/png"
    image = _open(image_response.content)
    assert image.format == "PNG"
    assert abs(image.width / image.height - 16 / 9) < 0.01


async def test_default_model_and_api_v1_prefix(
    client: httpx.AsyncClient, issue_key: KeyFactory
) -> None:
    key = await issue_key()
    response = await client.post("/api/v1/images/generate", json={"prompt": "x"}, headers=auth(key))
    assert response.status_code == 200
    assert response.json()["data"][0]["model"] == "gemini-3-1-flash-t2i"


async def test_jpeg_and_size(client: httpx.AsyncClient, issue_key: KeyFactory) -> None:
    key = await issue_key()
    body = {
        "model": "gpt-4o-image",
        "prompt": "a tall tower",
        "size": "1024x1792",
        "output_format": "jpeg",
    }
    response = await client.post("/v1/images/generate", json=body, headers=auth(key))
    assert response.status_code == 200, response.text
    fetched = await client.get(response.json()["data"][0]["url"])
    assert fetched.headers["content-type"] == "image/jpeg"
    assert _open(fetched.content).size == (1024, 1792)


async def test_edit_with_data_uri_keeps_the_source(
    client: httpx.AsyncClient, issue_key: KeyFactory
) -> None:
    key = await issue_key()
    data_uri = "data:image/png;base64," + base64.b64encode(tiny_png((255, 0, 0), (64, 64))).decode()
    body = {
        "model": "nano-banana-edit",
        "prompt": "make it pop",
        "images": [data_uri],
        "aspect_ratio": "1:1",
    }
    response = await client.post("/v1/images/edit", json=body, headers=auth(key))
    assert response.status_code == 200, response.text
    image = _open((await client.get(response.json()["data"][0]["url"])).content).convert("RGB")
    red, green, blue = image.getpixel((image.width // 2, image.height // 4))  # type: ignore[misc]
    assert red > 180 and green < 80 and blue < 80


async def test_edit_fetches_source_url(client: httpx.AsyncClient, issue_key: KeyFactory) -> None:
    async def png(_request: object) -> Response:
        return Response(tiny_png((0, 0, 255), (32, 32)), media_type="image/png")

    source = Starlette(routes=[Route("/cat.png", png)])
    key = await issue_key()
    with serve_in_thread(source) as base:  # type: ignore[arg-type]
        body = {"model": "nano-banana-edit", "prompt": "blue", "images": [f"{base}/cat.png"]}
        response = await client.post("/v1/images/edit", json=body, headers=auth(key))
    assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    ("images", "error"),
    [
        (
            ["data:image/png;base64," + base64.b64encode(b"not an image at all").decode()],
            "images[0]: ",
        ),
        (["ftp://example.invalid/x.png"], "images"),
        ([], "images"),
    ],
)
async def test_bad_edit_source_is_400_and_free(
    client: httpx.AsyncClient, issue_key: KeyFactory, images: list[str], error: str
) -> None:
    key = await issue_key()
    body = {"model": "nano-banana-edit", "prompt": "x", "images": images}
    response = await client.post("/v1/images/edit", json=body, headers=auth(key))
    assert response.status_code == 400, response.text
    assert response.json()["error"].startswith(error)
    assert (await client.get("/v1/account", headers=auth(key))).json()["credits"] == 1000


async def test_private_source_refused_unless_allowed(
    make_settings,
    issue_key: KeyFactory,  # type: ignore[no-untyped-def]
) -> None:
    from asgi_lifespan import LifespanManager

    from hyperlocal.app import create_app

    connections = 0

    async def png(_request: object) -> Response:
        nonlocal connections
        connections += 1
        return Response(tiny_png(), media_type="image/png")

    app = create_app(make_settings(allow_private_urls=False))
    with serve_in_thread(Starlette(routes=[Route("/a.png", png)])) as base:  # type: ignore[arg-type]
        async with (
            LifespanManager(app),
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://testserver"
            ) as client,
        ):
            from hyperlocal.core import keys
            from hyperlocal.core.keys import KeySpec

            key = await keys.create_key(app.state.services.db, KeySpec("k", 50, 100, 5))
            body = {"model": "nano-banana-edit", "prompt": "x", "images": [f"{base}/a.png"]}
            response = await client.post("/v1/images/edit", json=body, headers=auth(key))
    assert response.status_code == 400
    assert "private" in response.json()["error"] or "loopback" in response.json()["error"]
    assert connections == 0


async def test_webhook_url_turns_request_into_a_job(
    client: httpx.AsyncClient, issue_key: KeyFactory
) -> None:
    key = await issue_key()
    body = {"prompt": "x", "webhook_url": "http://127.0.0.1:9/hook"}
    response = await client.post("/v1/images/generate", json=body, headers=auth(key))
    assert response.status_code == 202
    accepted = response.json()
    assert accepted["status"] == "processing" and accepted["creditsUsed"] == 4
    assert accepted["pollUrl"] == (
        f"http://testserver/v1/jobs/{accepted['jobId']}?model=gemini-3-1-flash-t2i&type=image"
    )


async def test_stored_inputs_are_not_served(
    app: FastAPI, client: httpx.AsyncClient, issue_key: KeyFactory
) -> None:
    key = await issue_key()
    data_uri = "data:image/png;base64," + base64.b64encode(tiny_png()).decode()
    body = {"model": "nano-banana-edit", "prompt": "x", "images": [data_uri]}
    response = await client.post("/v1/images/edit", json=body, headers=auth(key))
    assert response.status_code == 200
    data_dir = app.state.services.settings.data_dir
    files = [p for p in (data_dir / "private").rglob("*") if p.is_file()]
    assert files, "inputs are persisted so a restarted worker can run the job"
    assert not (data_dir / "files" / "inputs").exists(), "never under the public files root"
    relative = files[0].relative_to(data_dir / "private")
    assert (await client.get(f"/files/{relative.as_posix()}")).status_code == 404
    assert (await client.get(f"/files/../private/{relative.as_posix()}")).status_code == 404
    assert (await client.get("/files/../hyperlocal.db")).status_code == 404
