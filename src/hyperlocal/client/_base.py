"""What the sync and async clients share: the base URL, headers, and reading answers."""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from typing import Any

import httpx

from hyperlocal import __version__
from hyperlocal.client._calls import Call
from hyperlocal.client._errors import ServerError
from hyperlocal.client._retry import RetryPolicy

__all__ = ["DEFAULT_TIMEOUT", "BaseClient", "api_base", "read_json"]

# Generation is synchronous for images, audio and 3D: an answer can take minutes.
DEFAULT_TIMEOUT = httpx.Timeout(600.0, connect=10.0)
USER_AGENT = f"hyperlocal-python/{__version__}"


def api_base(base_url: str | httpx.URL) -> httpx.URL:
    """``http://host:8000`` -> ``http://host:8000/v1/``; a base that already ends in ``/v1``
    (``https://host/api/v1``) is kept, so either form of the hosted URL works."""
    url = httpx.URL(str(base_url))
    path = url.path.rstrip("/")
    if not path.endswith("/v1"):
        path += "/v1"
    return url.copy_with(path=path + "/")


def read_json(response: httpx.Response) -> Mapping[str, Any]:
    try:
        data = json.loads(response.content)
    except ValueError as exc:
        raise ServerError(
            f"expected JSON from {response.url}, got {response.text[:200]!r}",
            status=response.status_code,
        ) from exc
    if not isinstance(data, Mapping):
        raise ServerError(
            f"expected a JSON object from {response.url}", status=response.status_code
        )
    return data


class BaseClient:
    def __init__(self, base_url: str | httpx.URL, api_key: str, max_retries: int) -> None:
        if not api_key:
            raise ValueError("api_key is required (the key the server issued, e.g. ck_...)")
        self.base_url = api_base(base_url)
        self._api_key = api_key
        self._retry = RetryPolicy(max_retries=max_retries)

    def _headers(self, call: Call[Any]) -> dict[str, str]:
        headers = {"User-Agent": USER_AGENT, "Accept": "application/json"}
        if call.authenticate:
            headers["Authorization"] = f"Bearer {self._api_key}"
        if call.submit:
            headers["Idempotency-Key"] = str(uuid.uuid4())
        return headers

    def _url(self, path: str) -> httpx.URL:
        """An absolute URL stays; ``/jobs`` is read under the API base (``.../v1/jobs``)."""
        if path.startswith(("http://", "https://")):
            return httpx.URL(path)
        return self.base_url.join(path.lstrip("/"))

    def _download_url(self, url: str) -> httpx.URL:
        """Output URLs are absolute; a relative one (``/files/x``) is on this server."""
        return httpx.URL(url) if "://" in url else self.base_url.join(url)

    def _same_origin(self, url: httpx.URL) -> bool:
        base = self.base_url
        return (url.scheme, url.host, url.port) == (base.scheme, base.host, base.port)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.base_url)!r})"
