"""``Client``: the synchronous SDK. ``_async_client.py`` is its twin, method for method."""

from __future__ import annotations

import os
import time
from pathlib import Path
from types import TracebackType
from typing import Any, Self, TypeVar

import httpx

from hyperlocal.client import _calls as calls
from hyperlocal.client._base import DEFAULT_TIMEOUT, BaseClient, read_json
from hyperlocal.client._calls import Call
from hyperlocal.client._errors import HyperlocalError, error_from_response, network_error
from hyperlocal.client._models import JobAccepted
from hyperlocal.client._resources import (
    AccountAPI,
    AudioAPI,
    ChatAPI,
    ImagesAPI,
    JobsAPI,
    ModelsAPI,
    ThreeDAPI,
    VideosAPI,
)

__all__ = ["Client"]

T = TypeVar("T")


class Client(BaseClient):
    """A client for one server: hyperlocal, or the hosted Hypereal API (same wire).

    ``base_url`` is the server's root (``http://127.0.0.1:8000``) or its versioned base
    (``https://host/api/v1``). Failed calls are retried up to ``max_retries`` times where that
    is safe (see ``_retry``). ``transport`` replaces the network, as httpx allows (e.g.
    ``httpx.MockTransport``). Close it, or use it as a context manager.
    """

    def __init__(
        self,
        base_url: str | httpx.URL,
        api_key: str,
        *,
        timeout: float | httpx.Timeout = DEFAULT_TIMEOUT,
        max_retries: int = 2,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        super().__init__(base_url, api_key, max_retries)
        self._http = httpx.Client(timeout=timeout, transport=transport)
        self.images = ImagesAPI(self)
        self.videos = VideosAPI(self)
        self.audio = AudioAPI(self)
        self.three_d = ThreeDAPI(self)
        self.chat = ChatAPI(self)
        self.jobs = JobsAPI(self)
        self.account = AccountAPI(self)
        self.models = ModelsAPI(self)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def download(self, url: str, path: str | os.PathLike[str]) -> Path:
        """Save an output URL to ``path`` (written whole, then moved into place)."""
        target, absolute = Path(path), self._download_url(url)
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(target.name + ".part")
        response = self._send(
            calls.download(str(absolute), self._same_origin(absolute)), stream=True
        )
        try:
            with partial.open("wb") as out:
                for chunk in response.iter_bytes():
                    out.write(chunk)
            partial.replace(target)
        except httpx.TransportError as exc:
            raise network_error(exc) from exc
        finally:
            response.close()
            partial.unlink(missing_ok=True)
        return target

    def _run(self, call: Call[T]) -> T:
        response = self._send(call)
        if response.status_code == 202 and call.on_job is not None:
            accepted = JobAccepted.from_json(read_json(response))
            return call.on_job(self.jobs.wait(accepted.job_id))
        return call.parse(read_json(response))

    def _send(
        self, call: Call[Any], *, stream: bool = False, timeout: httpx.Timeout | None = None
    ) -> httpx.Response:
        headers, attempt = self._headers(call), 0
        while True:
            outcome = self._attempt(call, headers, stream, timeout)
            if isinstance(outcome, httpx.Response):
                return outcome
            delay = self._retry.delay(outcome, call.idempotent, attempt)
            if delay is None:
                raise outcome
            time.sleep(delay)
            attempt += 1

    def _attempt(
        self, call: Call[Any], headers: dict[str, str], stream: bool, timeout: httpx.Timeout | None
    ) -> httpx.Response | HyperlocalError:
        request = self._http.build_request(
            call.method,
            self._url(call.path),
            json=call.body,
            params=call.params,
            headers=headers,
            timeout=timeout or httpx.USE_CLIENT_DEFAULT,
        )
        try:
            response = self._http.send(
                request, stream=stream, follow_redirects=call.method == "GET"
            )
            if response.is_success:
                return response
            response.read()
        except httpx.TransportError as exc:
            return network_error(exc)
        response.close()
        return error_from_response(response)
