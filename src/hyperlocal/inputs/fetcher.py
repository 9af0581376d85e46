"""Fetching input media from client-given URLs and ``data:`` URIs, safely.

Every refusal is a :class:`MediaInputError` whose message names the field and says what was
wrong in terms a client can act on, never the server's internals.
"""

from __future__ import annotations

import asyncio

import httpx

from hyperlocal.engines.base import MediaCaps, MediaInput, MediaKind
from hyperlocal.errors import MediaInputError
from hyperlocal.inputs.datauri import decode_data_uri, is_data_uri, too_large
from hyperlocal.inputs.guard import (
    AddressPolicy,
    ForbiddenAddressError,
    GuardedTransport,
    UnresolvableHostError,
)
from hyperlocal.inputs.media import check_media, media_seconds

__all__ = ["MediaFetcher"]

_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_DEFAULT_PORTS = {"http": 80, "https": 443}
_FORBIDDEN = "URL resolves to a private or loopback address"
_CAPS = MediaCaps()


class MediaFetcher:
    """Fetches and checks input media; one per application, closed with :meth:`aclose`.

    ``allow_private`` permits URLs that resolve to private, loopback or link-local addresses
    (development and tests). ``allowed_hosts`` is an operator allow-list of host names, spelled
    as in URLs, that may resolve anywhere (for example internal object storage). ``max_bytes``
    caps each medium, ``timeout`` caps the seconds spent fetching one URL, redirects included.
    """

    def __init__(
        self,
        *,
        allow_private: bool,
        max_bytes: int,
        timeout: float,
        max_redirects: int = 5,
        allowed_hosts: frozenset[str] = frozenset(),
    ) -> None:
        self._policy = AddressPolicy(allow_private, allowed_hosts)
        self._max_bytes = max_bytes
        self._timeout = timeout
        self._max_redirects = max_redirects
        self._client = httpx.AsyncClient(
            transport=GuardedTransport(self._policy),
            follow_redirects=False,  # each hop is checked here, see _follow
            trust_env=False,  # a proxy from the environment would bypass the address guard
            timeout=timeout,
            # Compressed bodies could expand far past max_bytes; the cap counts wire bytes.
            headers={"Accept-Encoding": "identity", "User-Agent": "hyperlocal"},
        )

    async def fetch(
        self, field: str, source: str, kind: MediaKind, caps: MediaCaps = _CAPS
    ) -> MediaInput:
        """Fetch ``source`` (an http(s) URL or a ``data:`` URI), check it is a ``kind`` within
        ``caps``, and read its length (audio, video)."""
        if is_data_uri(source):
            data, origin = decode_data_uri(field, source, self._max_bytes), "data:"
        else:
            data, origin = await self._download(field, source), source
        content_type, seconds = await asyncio.to_thread(_check, field, kind, data, caps)
        return MediaInput(
            field=field,
            kind=kind,
            content_type=content_type,
            data=data,
            source=origin,
            seconds=seconds,
        )

    async def check_url(self, field: str, url: str) -> None:
        """Refuse ``url`` unless it is http(s) and its host resolves only to allowed addresses.

        For URLs the server calls later (``webhook_url``). The check is repeated at delivery
        time only if the sender uses :class:`~hyperlocal.inputs.guard.GuardedTransport`.
        """
        target = _parse_url(field, url)
        port = target.port or _DEFAULT_PORTS[target.scheme]
        try:
            async with asyncio.timeout(self._timeout):
                await self._policy.vet(target.raw_host.decode("ascii"), port)
        except (TimeoutError, UnresolvableHostError) as exc:
            raise MediaInputError(field, "URL host could not be resolved") from exc
        except ForbiddenAddressError as exc:
            raise MediaInputError(field, _FORBIDDEN) from exc

    async def aclose(self) -> None:
        await self._client.aclose()

    async def _download(self, field: str, url: str) -> bytes:
        target = _parse_url(field, url)
        try:
            async with asyncio.timeout(self._timeout):
                return await self._follow(field, target)
        except (TimeoutError, httpx.TimeoutException) as exc:
            raise _unfetchable(field, "timed out") from exc
        except ForbiddenAddressError as exc:
            raise MediaInputError(field, _FORBIDDEN) from exc
        except UnresolvableHostError as exc:
            raise _unfetchable(field, "host not found") from exc
        except httpx.ProtocolError as exc:
            raise _unfetchable(field, "invalid HTTP response") from exc
        except httpx.HTTPError as exc:
            raise _unfetchable(field, "connection failed") from exc

    async def _follow(self, field: str, url: httpx.URL) -> bytes:
        # Redirects are followed here, not by httpx, so that every hop is parsed and refused
        # like the first URL; the address guard in the transport sees every connection anyway.
        for _ in range(self._max_redirects + 1):
            async with self._client.stream("GET", url) as response:
                next_url = _redirect_target(field, response)
                if next_url is None:
                    return await self._read_body(field, response)
            url = next_url
        raise _unfetchable(field, "too many redirects")

    async def _read_body(self, field: str, response: httpx.Response) -> bytes:
        if not response.is_success:
            raise _unfetchable(field, f"HTTP {response.status_code}")
        if _declared_length(response) > self._max_bytes:
            raise too_large(field, self._max_bytes)
        # Counted while streaming: Content-Length may be absent or wrong (chunked, or a lie).
        body = bytearray()
        async for chunk in response.aiter_raw():
            body += chunk
            if len(body) > self._max_bytes:
                raise too_large(field, self._max_bytes)
        return bytes(body)


def _check(field: str, kind: MediaKind, data: bytes, caps: MediaCaps) -> tuple[str, float | None]:
    return check_media(field, kind, data), media_seconds(field, kind, data, caps)


def _parse_url(field: str, url: str | httpx.URL) -> httpx.URL:
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as exc:
        raise MediaInputError(field, "not a valid URL") from exc
    if parsed.scheme not in _DEFAULT_PORTS:
        raise MediaInputError(field, "URL must be http or https")
    if not parsed.host:
        raise MediaInputError(field, "not a valid URL")
    if parsed.userinfo:
        raise MediaInputError(field, "URL must not contain credentials")
    return parsed


def _redirect_target(field: str, response: httpx.Response) -> httpx.URL | None:
    location = response.headers.get("Location")
    if response.status_code not in _REDIRECTS or location is None:
        return None
    # A malformed Location never gets here: httpx refuses it with a ProtocolError already.
    return _parse_url(field, response.url.join(location))


def _declared_length(response: httpx.Response) -> int:
    try:
        return int(response.headers.get("Content-Length", "0"))
    except ValueError:
        return 0  # unparseable: the streaming count still applies


def _unfetchable(field: str, reason: str) -> MediaInputError:
    return MediaInputError(field, f"could not fetch URL ({reason})")
