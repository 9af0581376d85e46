"""``AsyncClient``: the asynchronous twin of ``Client`` (``_client.py``), method for method.
It runs on asyncio or trio, as httpx does."""

from __future__ import annotations

import os
from pathlib import Path
from types import TracebackType
from typing import Any, Self, TypeVar

import anyio
import httpx

from hyperlocal.client import _calls as calls
from hyperlocal.client._async_resources import (
    AsyncAccountAPI,
    AsyncAudioAPI,
    AsyncChatAPI,
    AsyncImagesAPI,
    AsyncJobsAPI,
    AsyncModelsAPI,
    AsyncThreeDAPI,
    AsyncVideosAPI,
)
from hyperlocal.client._base import DEFAULT_TIMEOUT, BaseClient, read_json
from hyperlocal.client._calls import Call
from hyperlocal.client._errors import HyperlocalError, error_from_response, network_error
from hyperlocal.client._models import JobAccepted

__all__ = ["AsyncClient"]

T = TypeVar("T")


class AsyncClient(BaseClient):
    """The async ``Client``: the same methods, awaited.

    ``base_url`` is the server's root (``http://127.0.0.1:8000``) or its versioned base
    (``https://host/api/v1``). Failed calls are retried up to ``max_retries`` times where that
    is safe (see ``_retry``). ``transport`` replaces the network, as httpx allows (e.g.
    ``httpx.MockTransport``). Close it with ``aclose()``, or use it with ``async with``.
    """

    def __init__(
        self,
        base_url: str | httpx.URL,
        api_key: str,
        *,
        timeout: float | httpx.Timeout = DEFAULT_TIMEOUT,
        max_retries: int = 2,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        super().__init__(base_url, api_key, max_retries)
        self._http = httpx.AsyncClient(timeout=timeout, transport=transport)
        self.images = AsyncImagesAPI(self)
        self.videos = AsyncVideosAPI(self)
        self.audio = AsyncAudioAPI(self)
        self.three_d = AsyncThreeDAPI(self)
        self.chat = AsyncChatAPI(self)
        self.jobs = AsyncJobsAPI(self)
        self.account = AsyncAccountAPI(self)
        self.models = AsyncModelsAPI(self)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def download(self, url: str, path: str | os.PathLike[str]) -> Path:
        """Save an output URL to ``path`` (written whole, then moved into place)."""
        target, absolute = Path(path), self._download_url(url)
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(target.name + ".part")
        response = await self._send(
            calls.download(str(absolute), self._same_origin(absolute)), stream=True
        )
        try:
            async with await anyio.open_file(partial, "wb") as out:
                async for chunk in response.aiter_bytes():
                    await out.write(chunk)
            partial.replace(target)
        except httpx.TransportError as exc:
            raise network_error(exc) from exc
        finally:
            await response.aclose()
            partial.unlink(missing_ok=True)
        return target

    async def _run(self, call: Call[T]) -> T:
        response = await self._send(call)
        if response.status_code == 202 and call.on_job is not None:
            accepted = JobAccepted.from_json(read_json(response))
            return call.on_job(await self.jobs.wait(accepted.job_id))
        return call.parse(read_json(response))

    async def _send(
        self, call: Call[Any], *, stream: bool = False, timeout: httpx.Timeout | None = None
    ) -> httpx.Response:
        headers, attempt = self._headers(call), 0
        while True:
            outcome = await self._attempt(call, headers, stream, timeout)
            if isinstance(outcome, httpx.Response):
                return outcome
            delay = self._retry.delay(outcome, call.idempotent, attempt)
            if delay is None:
                raise outcome
            await anyio.sleep(delay)
            attempt += 1

    async def _attempt(
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
            response = await self._http.send(
                request, stream=stream, follow_redirects=call.method == "GET"
            )
            if response.is_success:
                return response
            await response.aread()
        except httpx.TransportError as exc:
            return network_error(exc)
        await response.aclose()
        return error_from_response(response)
