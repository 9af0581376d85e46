"""The router that serves the built console: the page, its hashed assets, and JSON 404s."""

from __future__ import annotations

import re

import httpx

ASSET = re.compile(r'/console/assets/([\w.-]+\.(?:js|css))"')


async def test_page_is_served_without_a_key(client: httpx.AsyncClient) -> None:
    response = await client.get("/console")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert response.headers["cache-control"] == "no-cache"
    assert '<div id="app">' in response.text
    assert (await client.get("/console/")).status_code == 200


async def test_assets_are_immutable_with_their_types(client: httpx.AsyncClient) -> None:
    names = ASSET.findall((await client.get("/console")).text)
    assert {n.rsplit(".", 1)[1] for n in names} == {"js", "css"}
    types = {"js": "text/javascript; charset=utf-8", "css": "text/css; charset=utf-8"}
    for name in names:
        response = await client.get(f"/console/assets/{name}")
        assert response.status_code == 200, name
        assert response.headers["content-type"] == types[name.rsplit(".", 1)[1]]
        assert response.headers["cache-control"] == "public, max-age=31536000, immutable"
    head = await client.head(f"/console/assets/{names[0]}")
    assert head.status_code == 200
    assert head.content == b""


async def test_missing_assets_are_json_404s(client: httpx.AsyncClient) -> None:
    for path in (
        "/console/assets/nope-123.js",
        "/console/assets/%2e%2e/__init__.py",
        "/console/assets/..%2F..%2Fapp.py",
        "/console/assets/",
    ):
        response = await client.get(path)
        assert response.status_code == 404, path
        assert response.json() == {"error": "Asset not found"}, path


async def test_console_is_not_in_the_api_schema(client: httpx.AsyncClient) -> None:
    paths = (await client.get("/openapi.json")).json()["paths"]
    assert not [p for p in paths if p.startswith("/console")]
