"""The SDK's client, adjusted: our own httpx client under it, so that the SDK's
``RetryTransport`` (ten retries of 429/503/504) never runs, with two request/response hooks
for what the SDK does its own way."""

from __future__ import annotations

import re

import httpx
from replicate.__about__ import __version__ as SDK_VERSION
from replicate.client import Client

from hyperlocal import __version__
from hyperlocal.engines.providers.base import ProviderContext
from hyperlocal.engines.providers.replicate._errors import raise_throttled

__all__ = ["CREATE_MARGIN_S", "Sdk", "http_client", "widen_wait_timeout"]

# The SDK gives a ``Prefer: wait=N`` create N + 0.5 s to answer. Over the internet that margin
# is thin, and a create that times out after Replicate accepted it would run unseen (and be
# charged) while the router tries the next route.
CREATE_MARGIN_S = 10.0
_TIMEOUT = httpx.Timeout(30.0, connect=10.0)
_PREFER_WAIT = re.compile(r"\bwait=(\d+)")


class Sdk(Client):
    """The SDK over our httpx client: its requests and parsing, without its RetryTransport."""

    def __init__(self, http: httpx.AsyncClient) -> None:
        super().__init__()
        self._http = http

    @property
    def _async_client(self) -> httpx.AsyncClient:
        return self._http


def http_client(context: ProviderContext) -> httpx.AsyncClient:
    """The client that :class:`Sdk` sends through: the token, no proxy from the environment,
    a create's read timeout widened to its ``Prefer: wait``, and a 429 raised with its wait."""
    return httpx.AsyncClient(
        base_url=context.base_url,
        headers={
            "Authorization": f"Bearer {context.key}",
            "User-Agent": f"hyperlocal/{__version__} replicate-python/{SDK_VERSION}",
        },
        timeout=_TIMEOUT,
        trust_env=False,
        event_hooks={"request": [widen_wait_timeout], "response": [raise_throttled]},
    )


async def widen_wait_timeout(request: httpx.Request) -> None:
    match = _PREFER_WAIT.search(request.headers.get("prefer", ""))
    if match is not None:
        timeout = dict(request.extensions.get("timeout") or {})
        timeout["read"] = int(match.group(1)) + CREATE_MARGIN_S
        request.extensions["timeout"] = timeout
