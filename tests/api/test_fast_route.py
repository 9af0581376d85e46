"""``FastRoute`` answers every request as FastAPI's own ``APIRoute`` would: the same endpoint,
mounted both ways on the real app, gets the same status, body and rate-limit headers for good
and bad requests alike; and an endpoint it cannot serve is refused when the route is made."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from fastapi import APIRouter, FastAPI, Response
from fastapi.routing import APIRoute
from pydantic import BaseModel

from hyperlocal.api.deps import CurrentCall, CurrentKey, IdempotentCall
from hyperlocal.api.fast_route import FastRoute
from hyperlocal.api.routes._views import json_response
from tests.conftest import KeyFactory, auth


class Part(BaseModel):
    text: str


class EchoBody(BaseModel):
    name: str
    parts: list[Part]
    count: int = 1


class Echoed(BaseModel):
    name: str
    parts: int
    count: int
    key: str
    idem: str | None = None


async def echo(body: EchoBody, call: CurrentCall) -> Response:
    assert call.svc is call.request.app.state.services and call.idempotency_key is None
    echoed = Echoed(name=body.name, parts=len(body.parts), count=body.count, key=call.key.id)
    return json_response(call, echoed)


async def echo_idem(body: EchoBody, call: IdempotentCall) -> Response:
    idem = call.idempotency_key
    echoed = Echoed(
        name=body.name, parts=len(body.parts), count=body.count, key=call.key.id, idem=idem
    )
    return json_response(call, echoed, 201)


@pytest.fixture
def mounted(app: FastAPI) -> FastAPI:
    for prefix, route_class in (("/fast", FastRoute), ("/fastapi", APIRoute)):
        router = APIRouter(route_class=route_class)
        router.post("/echo")(echo)
        router.post("/echo-idem")(echo_idem)
        app.include_router(router, prefix=prefix)
    return app


GOOD = b'{"name": "n", "parts": [{"text": "a"}, {"text": "b"}], "count": 3}'
CASES = [
    GOOD,
    b"",
    b"{not json",
    b"\xff\xfe",
    b"[]",
    b'{"name": "n"}',
    b'{"name": "n", "parts": {"text": "a"}}',
    b'{"name": "n", "parts": [{"text": 5}]}',
    b'{"name": 1, "parts": [], "count": "many"}',
]


async def _both(
    client: httpx.AsyncClient, content: bytes, headers: dict[str, str], path: str = "/echo"
) -> list[tuple[int, Any, str | None]]:
    answers = []
    for prefix in ("/fast", "/fastapi"):
        response = await client.post(
            f"{prefix}{path}",
            content=content,
            headers={"content-type": "application/json", **headers},
        )
        answers.append(
            (response.status_code, response.json(), response.headers.get("x-ratelimit-limit"))
        )
    return answers


@pytest.mark.parametrize("content", CASES)
async def test_same_answers_with_a_key(
    mounted: FastAPI, client: httpx.AsyncClient, issue_key: KeyFactory, content: bytes
) -> None:
    key = await issue_key()
    fast, fastapi = await _both(client, content, auth(key))
    assert fast == fastapi
    if content == GOOD:
        assert fast[0] == 200 and fast[1]["parts"] == 2 and fast[2] == "1000"


@pytest.mark.parametrize("content", CASES)
@pytest.mark.parametrize("authorization", [None, "Bearer sk_nope"])
async def test_same_answers_without_a_valid_key(
    mounted: FastAPI, client: httpx.AsyncClient, content: bytes, authorization: str | None
) -> None:
    headers = {"authorization": authorization} if authorization else {}
    fast, fastapi = await _both(client, content, headers)
    assert fast == fastapi
    assert fast[0] in (400, 401)  # a body that is not JSON fails before the key is checked


@pytest.mark.parametrize("content", [GOOD, b"", b"{not json", b'{"name": "n"}'])
@pytest.mark.parametrize("idem", [None, "", "k-1", "x" * 255, "x" * 256])
async def test_same_answers_with_an_idempotency_key(
    mounted: FastAPI,
    client: httpx.AsyncClient,
    issue_key: KeyFactory,
    content: bytes,
    idem: str | None,
) -> None:
    key = await issue_key()
    headers = auth(key) | ({"Idempotency-Key": idem} if idem is not None else {})
    fast, fastapi = await _both(client, content, headers, "/echo-idem")
    assert fast == fastapi
    if content == GOOD and idem is not None and len(idem) <= 255:
        assert fast[0] == 201 and fast[1]["idem"] == idem, fast


async def test_same_answers_at_the_rate_limit(
    mounted: FastAPI, client: httpx.AsyncClient, issue_key: KeyFactory
) -> None:
    key = await issue_key(rate_limit=4)
    first = await _both(client, GOOD, auth(key))
    limited = await _both(client, GOOD, auth(key))  # requests 3 and 4 fit, then none
    assert [a[0] for a in first + limited] == [200, 200, 200, 200]
    fast, fastapi = await _both(client, b'{"name": 1}', auth(key))
    assert fast == fastapi and fast[0] == 429


async def test_the_hot_routes_are_documented_from_their_call(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    """A ``Call`` shows in the OpenAPI document as what it reads: an ``IdempotentCall`` as the
    Idempotency-Key header, a ``CurrentCall`` as nothing."""
    spec = (await client.get("/openapi.json")).json()
    chat = spec["paths"]["/v1/chat/completions"]["post"]
    schema = chat["requestBody"]["content"]["application/json"]["schema"]
    assert schema["$ref"].endswith("ChatCompletionBody")
    assert "parameters" not in chat
    assert "/v1/chat" in spec["paths"]
    image = spec["paths"]["/v1/images/generate"]["post"]
    assert [(p["in"], p["name"], p["required"]) for p in image["parameters"]] == [
        ("header", "Idempotency-Key", False)
    ]


def test_an_endpoint_it_cannot_serve_is_refused_up_front() -> None:
    async def extra(body: EchoBody, call: CurrentCall, n: int) -> Response:
        raise AssertionError("never called")

    async def untyped(body: dict[str, Any], call: CurrentCall) -> Response:
        raise AssertionError("never called")

    async def a_key(body: EchoBody, call: CurrentKey) -> Response:
        raise AssertionError("never called")

    for endpoint in (extra, untyped, a_key):
        router = APIRouter(route_class=FastRoute)
        with pytest.raises(TypeError, match="FastRoute endpoint"):
            router.post("/x")(endpoint)
