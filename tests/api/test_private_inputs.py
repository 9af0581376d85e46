"""Stored job inputs, against a real server: never served under any spelling of a path, never
left behind by a refused submit, swept once orphaned; and a key that cannot pay is refused
before any input is fetched."""

from __future__ import annotations

import asyncio
import base64
import os
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from hyperlocal.app import create_app
from hyperlocal.core import keys
from hyperlocal.core.keys import IssuedKey, KeySpec
from hyperlocal.runtime import open_database
from hyperlocal.settings import Settings
from tests.conftest import KeyFactory, SettingsFactory, auth, services_of
from tests.support import TEST_ENGINES, serve_in_thread, tiny_png

EDIT = "/v1/images/edit"
PRICE = 4  # nano-banana-edit


@dataclass
class Source:
    """A loopback server of one PNG that counts its requests. With ``hold_until``, each
    request waits until that many have arrived: two submits then pass the same point together."""

    url: str = ""
    requests: int = 0
    hold_until: int = 0

    async def png(self, _request: Request) -> Response:
        self.requests += 1
        deadline = time.monotonic() + 10
        while self.requests < self.hold_until and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        return Response(tiny_png(), media_type="image/png")


@dataclass
class Live:
    url: str
    settings: Settings
    source: Source
    data_dir: Path = field(init=False)

    def __post_init__(self) -> None:
        self.data_dir = self.settings.data_dir

    async def key(self, credits: int, rate_limit: int = 1000) -> IssuedKey:
        db = await open_database(self.settings)
        try:
            return await keys.create_key(db, KeySpec("inputs", credits, rate_limit, 15))
        finally:
            await db.aclose()

    def edit(self, prompt: str = "x") -> dict[str, object]:
        return {"model": "nano-banana-edit", "prompt": prompt, "images": [self.source.url]}


@pytest.fixture
def live(make_settings: SettingsFactory) -> Iterator[Live]:
    # A long auth cache: a key's cached balance stays what it was when it authenticated.
    settings = make_settings(auth_cache_seconds=300)
    source = Source()
    with serve_in_thread(Starlette(routes=[Route("/a.png", source.png)])) as src:  # type: ignore[arg-type]
        source.url = f"{src}/a.png"
        with serve_in_thread(create_app(settings, engines=TEST_ENGINES)) as url:
            yield Live(url, settings, source)


@pytest.fixture
async def http(live: Live) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=live.url, timeout=30) as client:
        yield client


def input_files(data_dir: Path) -> list[Path]:
    """Every stored input, wherever it was written (public files root or private area)."""
    return [
        p for p in data_dir.rglob("*") if p.is_file() and "inputs" in p.relative_to(data_dir).parts
    ]


async def raw_get(base: str, target: str) -> tuple[int, bytes]:
    """GET ``target`` exactly as spelled: no client normalises it on the way."""
    url = httpx.URL(base)
    reader, writer = await asyncio.open_connection(url.host, url.port)
    try:
        request = f"GET {target} HTTP/1.1\r\nHost: {url.host}\r\nConnection: close\r\n\r\n"
        writer.write(request.encode("latin-1"))
        await writer.drain()
        response = await reader.read()
    finally:
        writer.close()
        await writer.wait_closed()
    return int(response.split(b" ", 2)[1]), response


# -- refused before anything is fetched ------------------------------------------------------


async def test_five_402s_from_a_key_without_credits_fetch_and_store_nothing(
    live: Live, http: httpx.AsyncClient
) -> None:
    key = await live.key(credits=0)
    for _ in range(5):
        response = await http.post(EDIT, json=live.edit(), headers=auth(key))
        assert response.status_code == 402, response.text
        assert response.json()["required"] == PRICE
    assert live.source.requests == 0
    assert input_files(live.data_dir) == []


# -- refused submits leave nothing behind ---------------------------------------------------


async def test_402s_at_the_charge_leave_no_inputs(live: Live, http: httpx.AsyncClient) -> None:
    key = await live.key(credits=PRICE)  # one edit; its cached balance then stays at 4
    assert (await http.post(EDIT, json=live.edit(), headers=auth(key))).status_code == 200
    paid = input_files(live.data_dir)
    for _ in range(5):
        response = await http.post(EDIT, json=live.edit(), headers=auth(key))
        assert response.status_code == 402, response.text
    assert live.source.requests == 6  # each was fetched: refused at the charge itself
    assert input_files(live.data_dir) == paid and len(paid) == 1


async def test_a_429_leaves_no_inputs(live: Live, http: httpx.AsyncClient) -> None:
    key = await live.key(credits=100, rate_limit=1)
    assert (await http.post(EDIT, json=live.edit(), headers=auth(key))).status_code == 200
    for _ in range(3):
        assert (await http.post(EDIT, json=live.edit(), headers=auth(key))).status_code == 429
    assert len(input_files(live.data_dir)) == 1


async def test_an_idempotency_conflict_leaves_no_inputs(
    live: Live, http: httpx.AsyncClient
) -> None:
    key = await live.key(credits=100)
    live.source.hold_until = 2  # both submits have looked the key up before either commits
    headers = auth(key) | {"Idempotency-Key": "same-key"}
    answers = await asyncio.gather(
        http.post(EDIT, json=live.edit("one"), headers=headers),
        http.post(EDIT, json=live.edit("two"), headers=headers),
    )
    assert sorted(a.status_code for a in answers) == [200, 409], [a.text for a in answers]
    assert live.source.requests == 2
    assert len(input_files(live.data_dir)) == 1


# -- never served ----------------------------------------------------------------------------


def refused_spellings(key: str) -> list[str]:
    """Ways to name ``key`` (or a file of the private area beside the public root) that are
    not the canonical ``/files/<key>``."""
    return [
        f"/files/./{key}",
        f"/files/%2E/{key}",
        f"/files/%2e/{key}",
        f"/files/images/../{key}",
        f"/files/images/%2e%2e/{key}",
        f"/files/images/%2E%2E/{key}",
        "/files/" + key.replace("/", "%2f"),
        "/files/" + key.replace("/", "%2F"),
        f"/files/%252e/{key}",
        f"/files/%252E%252E/files/{key}",
        f"/files//{key}",
        f"/files/.//{key}",
        f"/files/.%5c{key}",
        f"/files/images/..%5c{key}",
        f"/files/%c0%ae/{key}",
        f"/files/images/%c0%ae%c0%ae/{key}",
        f"/files/%e0%80%ae/{key}",
        f"/files/../private/{key}",
        f"/files/%2e%2e/private/{key}",
        f"/files/..%2fprivate%2f{key}",
        f"/files/.{key}",
    ]


async def test_stored_inputs_are_never_served_under_any_spelling(
    live: Live, http: httpx.AsyncClient
) -> None:
    key = await live.key(credits=100)
    secret = tiny_png((1, 2, 3))
    source = "data:image/png;base64," + base64.b64encode(secret).decode()
    body = {"model": "nano-banana-edit", "prompt": "x", "images": [source]}
    response = await http.post(EDIT, json=body, headers=auth(key))
    assert response.status_code == 200, response.text
    output = httpx.URL(response.json()["data"][0]["url"]).path
    # Inputs a job of an earlier version wrote into the public files root.
    old = live.data_dir / "files" / "inputs" / "job_old" / "images-0"
    old.parent.mkdir(parents=True)
    old.write_bytes(secret)
    stored = [(p, p.relative_to(p.parents[2]).as_posix()) for p in input_files(live.data_dir)]
    assert len(stored) == 2
    for path, name in stored:
        assert path.read_bytes() == secret
        for target in [f"/files/{name}", *refused_spellings(name)]:
            status, answer = await raw_get(live.url, target)
            assert status in (400, 404), f"{target} answered {status}"
            assert secret not in answer, target
    served = await http.get(output)
    assert served.status_code == 200 and served.content.startswith(b"\x89PNG")


async def test_only_the_canonical_path_of_an_output_serves_it(
    live: Live, http: httpx.AsyncClient
) -> None:
    key = await live.key(credits=100)
    response = await http.post(EDIT, json=live.edit(), headers=auth(key))
    output = httpx.URL(response.json()["data"][0]["url"]).path  # /files/images/res_<hex>.png
    name = output.removeprefix("/files/")
    folder, file = name.split("/")
    status, answer = await raw_get(live.url, output)
    assert status == 200 and b"\x89PNG" in answer
    for target in [
        f"/files/{folder}%2F{file}",
        f"/files/{folder}%2f{file}",
        f"/files/./{name}",
        f"/files/{folder}/./{file}",
        f"/files//{name}",
        f"/files/{folder}//{file}",
        f"/files/x/../{name}",
        f"/files/%2e/{name}",
        f"/files/{folder}/%72{file[1:]}",  # an "r", percent-encoded
        f"/files/{folder}%5c{file}",
        f"/files/%69mages/{file}",
        f"/files/{name}%00",
    ]:
        status, answer = await raw_get(live.url, target)
        assert status in (400, 404), f"{target} answered {status}"
        assert b"\x89PNG" not in answer, target


# -- the orphan sweep ------------------------------------------------------------------------


async def test_the_sweep_deletes_old_orphans_and_keeps_live_and_recent_inputs(
    app: FastAPI, client: httpx.AsyncClient, issue_key: KeyFactory
) -> None:
    from hyperlocal.core.stored_inputs import sweep_orphans

    svc = services_of(app)
    key = await issue_key()
    source = "data:image/png;base64," + base64.b64encode(tiny_png()).decode()
    body = {"model": "nano-banana-edit", "prompt": "x", "images": [source]}
    assert (await client.post(EDIT, json=body, headers=auth(key))).status_code == 200
    area = svc.settings.data_dir / "private"
    live_inputs = [p for p in area.rglob("*") if p.is_file()]
    assert len(live_inputs) == 1
    await svc.private.put("inputs/job_gone/t0ken-images-0", b"old orphan", "image/png")
    await svc.private.put("inputs/job_gone/.t0ken-images-0.1.tmp", b"old partial", "image/png")
    await svc.private.put("inputs/job_young/t0ken-images-0", b"recent orphan", "image/png")
    two_hours_ago = time.time() - 7200
    for path in [*live_inputs, *(area / "inputs" / "job_gone").iterdir()]:
        os.utime(path, (two_hours_ago, two_hours_ago))
    deleted = await sweep_orphans(svc.db, svc.private, time.time())
    assert sorted(deleted) == [
        "inputs/job_gone/.t0ken-images-0.1.tmp",
        "inputs/job_gone/t0ken-images-0",
    ]
    left = sorted(p.relative_to(area).as_posix() for p in area.rglob("*") if p.is_file())
    assert left == sorted(
        [live_inputs[0].relative_to(area).as_posix(), "inputs/job_young/t0ken-images-0"]
    )
