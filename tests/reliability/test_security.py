"""SSRF, bad media and secrets, end to end through the API."""

from __future__ import annotations

import asyncio
import base64
import logging
import socket
import struct
import threading
import time
import zlib
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from starlette.applications import Starlette
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from hyperlocal.app import create_app
from hyperlocal.core import keys
from hyperlocal.core.keys import IssuedKey, KeySpec
from hyperlocal.logs import JsonFormatter, RedactingFilter
from tests.conftest import SettingsFactory, auth
from tests.receiver import running_receiver, wait_until
from tests.support import TEST_ENGINES, serve_in_thread, tiny_png


class CountingListener:
    """A loopback TCP listener that only counts connections (and closes them)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            self.connections += 1
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.sock.close()


@pytest.fixture
def listener() -> Iterator[CountingListener]:
    counting = CountingListener()
    yield counting
    counting.close()


@pytest.fixture
async def strict_app(make_settings: SettingsFactory) -> AsyncIterator[FastAPI]:
    app = create_app(make_settings(allow_private_urls=False), engines=TEST_ENGINES)
    async with LifespanManager(app):
        yield app


async def _client_and_key(
    app: FastAPI, *, admin: bool = False
) -> tuple[httpx.AsyncClient, IssuedKey]:
    key = await keys.create_key(app.state.services.db, KeySpec("sec", 100, 10_000, 5, admin))
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")
    return client, key


SPELLINGS = [
    "127.0.0.1",
    "127.1",
    "0x7f000001",
    "2130706433",
    "0.0.0.0",
    "[::1]",
    "localhost",
    "127.000.000.001",
    "0177.0.0.1",
]


@pytest.mark.parametrize("host", SPELLINGS)
async def test_loopback_spellings_refused_without_connecting(
    strict_app: FastAPI, listener: CountingListener, host: str
) -> None:
    client, key = await _client_and_key(strict_app)
    async with client:
        url = f"http://{host}:{listener.port}/x.png"
        edit = {"model": "nano-banana-edit", "prompt": "x", "images": [url]}
        response = await client.post("/v1/images/edit", json=edit, headers=auth(key))
        assert response.status_code == 400, response.text
        assert response.json()["error"].startswith("images[0]: ")
        hook = {"prompt": "x", "webhook_url": url}
        response = await client.post("/v1/images/generate", json=hook, headers=auth(key))
        assert response.status_code == 400 and response.json()["error"].startswith("webhook_url: ")
        assert (await client.get("/v1/account", headers=auth(key))).json()["credits"] == 100
    assert listener.connections == 0


async def test_redirect_into_loopback_refused(
    make_settings: SettingsFactory, listener: CountingListener
) -> None:
    """The first hop is allowed by the operator allow-list; the redirect target is not."""

    async def hop(_request: object) -> RedirectResponse:
        return RedirectResponse(f"http://127.0.0.1:{listener.port}/secret", status_code=302)

    with serve_in_thread(Starlette(routes=[Route("/hop", hop)])) as base:  # type: ignore[arg-type]
        port = base.rsplit(":", 1)[1]
        app = create_app(make_settings(allow_private_urls=False), engines=TEST_ENGINES)
        async with LifespanManager(app):
            from hyperlocal.inputs import MediaFetcher

            app.state.services.fetcher = MediaFetcher(  # allow only the first hop's host
                allow_private=False,
                max_bytes=1_000_000,
                timeout=5,
                allowed_hosts=frozenset({"127.0.0.2"}),
            )
            client, key = await _client_and_key(app)
            async with client:
                body = {
                    "model": "nano-banana-edit",
                    "prompt": "x",
                    "images": [f"http://127.0.0.2:{port}/hop"],
                }
                response = await client.post("/v1/images/edit", json=body, headers=auth(key))
    assert response.status_code == 400
    assert listener.connections == 0


def _bomb_png() -> bytes:
    """A valid PNG header claiming 100000 x 100000 pixels, with a tiny compressed body."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    ihdr = struct.pack(">IIBBBBB", 100_000, 100_000, 1, 0, 0, 0, 0)
    rows = zlib.compress(b"\x00" * (1 + 100_000 // 8) * 64)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", rows) + chunk(b"IEND", b"")


def _data_uri(data: bytes, mime: str) -> str:
    return f"data:{mime};base64," + base64.b64encode(data).decode()


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param(tiny_png()[:40], id="truncated-png"),
        pytest.param(b"RIFF\x00\x00\x00\x00WAVEjunk", id="non-image-bytes"),
        pytest.param(_bomb_png(), id="decompression-bomb"),
    ],
)
async def test_bad_images_are_400_fast_and_free(strict_app: FastAPI, payload: bytes) -> None:
    client, key = await _client_and_key(strict_app)
    async with client:
        body = {
            "model": "nano-banana-edit",
            "prompt": "x",
            "images": [_data_uri(payload, "image/png")],
        }
        started = time.monotonic()
        response = await client.post("/v1/images/edit", json=body, headers=auth(key))
        assert time.monotonic() - started < 2.0
        assert response.status_code == 400 and response.json()["code"] == "E1004"
        assert (await client.get("/v1/account", headers=auth(key))).json()["credits"] == 100


async def test_huge_claimed_length_refused_before_reading(make_settings: SettingsFactory) -> None:
    sent = 0

    async def liar(_request: object) -> Response:
        nonlocal sent
        sent += 1
        return Response(
            b"x" * 100, headers={"Content-Length": str(1 << 30)}, media_type="image/png"
        )

    app = create_app(make_settings(), engines=TEST_ENGINES)
    with serve_in_thread(Starlette(routes=[Route("/big.png", liar)])) as base:  # type: ignore[arg-type]
        async with LifespanManager(app):
            client, key = await _client_and_key(app)
            async with client:
                body = {"model": "nano-banana-edit", "prompt": "x", "images": [f"{base}/big.png"]}
                started = time.monotonic()
                response = await client.post("/v1/images/edit", json=body, headers=auth(key))
                assert time.monotonic() - started < 3.0
                assert response.status_code == 400 and "larger than" in response.json()["error"]
                assert (await client.get("/v1/account", headers=auth(key))).json()["credits"] == 100


class _Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.addFilter(RedactingFilter())
        self.setFormatter(JsonFormatter())
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


async def test_no_key_or_secret_reaches_the_logs(make_settings: SettingsFactory) -> None:
    """Everything at DEBUG, including SQLAlchemy, httpx and uvicorn, through a full flow."""
    capture = _Capture()
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(capture)
    root.setLevel(logging.DEBUG)
    issued: list[str] = []
    try:
        settings = make_settings(
            webhook_schedule=[0, 0.1], webhook_jitter=0, webhook_poll_interval=0.05
        )
        app = create_app(settings, engines=TEST_ENGINES)
        with running_receiver() as receiver:
            async with LifespanManager(app):
                client, admin = await _client_and_key(app, admin=True)
                issued += [admin.key, admin.webhook_secret]
                async with client:
                    made = (
                        await client.post(
                            "/admin/keys",
                            json={"name": "n", "credits": 9, "admin": True},
                            headers=auth(admin),
                        )
                    ).json()
                    issued += [made["key"], made["webhookSecret"]]
                    await client.get(
                        "/v1/account", headers={"Authorization": "Bearer " + made["key"] + "x"}
                    )
                    await client.post(
                        "/v1/images/generate",
                        json={"prompt": "x", "webhook_url": receiver.url("h")},
                        headers=auth(admin),
                    )
                    await client.post(
                        "/v1/images/generate",
                        json={"model": "test-crash-t2i", "prompt": "x"},
                        headers=auth(admin),
                    )
                    await wait_until(lambda: receiver.on("h"))
                    await asyncio.sleep(0.2)
    finally:
        root.removeHandler(capture)
        root.setLevel(old_level)
    text = "\n".join(capture.lines)
    assert len(capture.lines) > 20, "logging was not captured"
    for secret in issued:
        for fragment in (secret, secret[:14], secret[6:14], secret[-8:]):
            assert fragment not in text  # not even a fragment
