"""``DirectRoute`` answers every request as FastAPI's own ``APIRoute`` would: the same endpoint,
mounted both ways on the real app, gets the same status, body and rate-limit headers for good
and bad requests alike; and an endpoint it cannot serve is refused when the route is made."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.routing import APIRoute
from pydantic import BaseModel

from hyperlocal.api.deps import CurrentKey, IdempotencyKey, Svc
from hyperlocal.api.direct import DirectRoute
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


async def echo(body: EchoBody, key: CurrentKey, svc: Svc, request: Request) -> Response:
    assert svc is request.app.state.services
    echoed = Echoed(name=body.name, parts=len(body.parts), count=body.count, key=key.id)
    return json_response(request, echoed)


async def echo_idem(
    body: EchoBody, key: CurrentKey, svc: Svc, request: Request, idem: IdempotencyKey = None
) -> Response:
    echoed = Echoed(name=body.name, parts=len(body.parts), count=body.count, key=key.id, idem=idem)
    return json_response(request, echoed, 201)


@pytest.fixture
def mounted(app: FastAPI) -> FastAPI:
    for prefix, route_class in (("/direct", DirectRoute), ("/fastapi", APIRoute)):
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
    for prefix in ("/direct", "/fastapi"):
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
    direct, fastapi = await _both(client, content, auth(key))
    assert direct == fastapi
    if content == GOOD:
        assert direct[0] == 200 and direct[1]["parts"] == 2 and direct[2] == "1000"


@pytest.mark.parametrize("content", CASES)
@pytest.mark.parametrize("authorization", [None, "Bearer sk_nope"])
async def test_same_answers_without_a_valid_key(
    mounted: FastAPI, client: httpx.AsyncClient, content: bytes, authorization: str | None
) -> None:
    headers = {"authorization": authorization} if authorization else {}
    direct, fastapi = await _both(client, content, headers)
    assert direct == fastapi
    assert direct[0] in (400, 401)  # a body that is not JSON fails before the key is checked


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
    direct, fastapi = await _both(client, content, headers, "/echo-idem")
    assert direct == fastapi
    if content == GOOD and idem is not None and len(idem) <= 255:
        assert direct[0] == 201 and direct[1]["idem"] == idem, direct


async def test_same_answers_at_the_rate_limit(
    mounted: FastAPI, client: httpx.AsyncClient, issue_key: KeyFactory
) -> None:
    key = await issue_key(rate_limit=4)
    first = await _both(client, GOOD, auth(key))
    limited = await _both(client, GOOD, auth(key))  # requests 3 and 4 fit, then none
    assert [a[0] for a in first + limited] == [200, 200, 200, 200]
    direct, fastapi = await _both(client, b'{"name": 1}', auth(key))
    assert direct == fastapi and direct[0] == 429


async def test_the_chat_routes_are_direct_and_documented(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    spec = (await client.get("/openapi.json")).json()
    body = spec["paths"]["/v1/chat/completions"]["post"]["requestBody"]
    assert body["content"]["application/json"]["schema"]["$ref"].endswith("ChatCompletionBody")
    assert "/v1/chat" in spec["paths"]


def test_an_endpoint_it_cannot_serve_is_refused_up_front() -> None:
    async def extra(
        body: EchoBody, key: CurrentKey, svc: Svc, request: Request, n: int
    ) -> Response:
        raise AssertionError("never called")

    async def untyped(
        body: dict[str, Any], key: CurrentKey, svc: Svc, request: Request
    ) -> Response:
        raise AssertionError("never called")

    for endpoint in (extra, untyped):
        router = APIRouter(route_class=DirectRoute)
        with pytest.raises(TypeError, match="DirectRoute endpoint"):
            router.post("/x")(endpoint)
