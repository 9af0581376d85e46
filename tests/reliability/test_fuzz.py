"""Schemathesis against /openapi.json on a real server, authenticated as admin: no response
is a 5xx, and every 4xx body is JSON with a string ``error``.

Fuzzed URLs must never reach the network, so the input fetcher is replaced by a stand-in
that accepts only data: URIs and refuses everything else without resolving a name.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hyperlocal.app import create_app
from hyperlocal.core import keys
from hyperlocal.core.keys import KeySpec
from hyperlocal.engines.base import MediaInput, MediaKind
from hyperlocal.errors import MediaInputError
from hyperlocal.inputs import check_media
from hyperlocal.inputs.datauri import decode_data_uri, is_data_uri
from hyperlocal.runtime import open_database
from hyperlocal.settings import Settings
from tests.conftest import SettingsFactory
from tests.support import SOAK_SCALE, TEST_ENGINES, serve_in_thread

EXAMPLES = 30 * SOAK_SCALE


class OfflineFetcher:
    """Stands in for the internet: data: URIs decode for real, any URL is refused."""

    async def fetch(self, field: str, source: str, kind: MediaKind) -> MediaInput:
        if not is_data_uri(source):
            raise MediaInputError(field, "URL refused in this test")
        data = decode_data_uri(field, source, 1_000_000)
        return MediaInput(field, kind, check_media(field, kind, data), data, "data:")

    async def check_url(self, field: str, url: str) -> None:
        raise MediaInputError(field, "URL refused in this test")

    async def aclose(self) -> None:
        return None


async def _admin_key(settings: Settings) -> str:
    db = await open_database(settings)
    try:
        return (await keys.create_key(db, KeySpec("fuzz", 10**9, 10**9, 50, True))).key
    finally:
        await db.aclose()


@pytest.fixture
def server(make_settings: SettingsFactory) -> Iterator[tuple[str, str]]:
    settings = make_settings(allow_private_urls=False)
    key = asyncio.run(_admin_key(settings))
    app = create_app(settings, engines=TEST_ENGINES)
    with serve_in_thread(app) as base:
        app.state.services.fetcher = OfflineFetcher()
        yield base, key


def _operations(base: str) -> list[Any]:
    schema = schemathesis.openapi.from_url(f"{base}/openapi.json")
    return [result.ok() for result in schema.get_all_operations()]


def _check(response: httpx.Response, label: str) -> None:
    assert response.status_code < 500, f"{label}: {response.status_code} {response.text[:300]}"
    if 400 <= response.status_code < 500:
        body = response.json()
        assert isinstance(body.get("error"), str), f"{label}: {response.text[:300]}"


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_fuzz_openapi(server: tuple[str, str]) -> None:
    base, key = server
    headers = {"Authorization": f"Bearer {key}"}
    checked = 0
    with httpx.Client(base_url=base, timeout=60) as client:
        for operation in _operations(base):
            label = f"{operation.method.upper()} {operation.path}"

            @settings(
                max_examples=EXAMPLES,
                deadline=None,
                database=None,
                suppress_health_check=list(HealthCheck),
            )
            @given(case=operation.as_strategy(), auth=st.booleans())
            def run(case: Any, auth: bool) -> None:
                nonlocal checked
                kwargs = case.as_transport_kwargs(base_url=base)
                if auth:
                    kwargs["headers"] = {**(kwargs.get("headers") or {}), **headers}
                response = client.request(**_httpx_kwargs(kwargs))
                _check(response, label)  # noqa: B023 - run() is called in this iteration
                checked += 1

            run()
    assert checked > 100


def _httpx_kwargs(kwargs: dict[str, Any]) -> dict[str, Any]:
    allowed = {"method", "url", "headers", "params", "json", "content", "data", "cookies"}
    out = {k: v for k, v in kwargs.items() if k in allowed}
    if "data" in out and not isinstance(out["data"], dict):
        out["content"] = out.pop("data")
    return out
