"""One transport for the engine's one client: upstream APIs direct, everything else guarded.

An upstream's ``base_url`` comes from the operator's catalogue, so it is trusted like any other
configuration: it may well be a hyperlocal on the LAN. Output URLs are named by the upstream's
answers instead, and a compromised or confused upstream must not make us fetch a private
address (cloud metadata, the admin port of a neighbour), so they pass the address guard.
"""

from __future__ import annotations

import httpx

from hyperlocal.inputs import AddressPolicy, GuardedTransport

__all__ = ["OriginRouter", "origin"]

Origin = tuple[str, str, int | None]


def origin(url: httpx.URL) -> Origin:
    return url.scheme, url.host.lower(), url.port


class OriginRouter(httpx.AsyncBaseTransport):
    """Sends requests for trusted origins directly, and every other request through the guard.

    Redirects are followed by the client, one request at a time, so each hop is routed anew.
    """

    def __init__(self, policy: AddressPolicy) -> None:
        self._guarded = GuardedTransport(policy)
        self._direct = httpx.AsyncHTTPTransport(trust_env=False)
        self._trusted: set[Origin] = set()

    def trust(self, url: httpx.URL) -> None:
        self._trusted.add(origin(url))

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        trusted = origin(request.url) in self._trusted
        transport = self._direct if trusted else self._guarded
        return await transport.handle_async_request(request)

    async def aclose(self) -> None:
        await self._guarded.aclose()
        await self._direct.aclose()
