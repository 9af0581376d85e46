"""fal's webhook signatures (providers.md §1.4): ED25519 over the request id, user id,
timestamp and the body's SHA-256, by keys that fal publishes as a JWKS, cached here."""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from hyperlocal.engines.providers.base import FailureKind, ProviderError, WebhookNotice

__all__ = ["DEFAULT_JWKS_URL", "Signed", "WebhookKeys", "notice_of", "signed_message", "verifies"]

DEFAULT_JWKS_URL = "https://rest.alpha.fal.ai/.well-known/jwks.json"
JWKS_MAX_AGE_S = 24 * 3600.0  # fal: cache the key set for at most a day
JWKS_REFETCH_FLOOR_S = 60.0  # a flood of forged webhooks must not become a flood of fetches
JWKS_TIMEOUT = httpx.Timeout(30.0, connect=10.0)
WEBHOOK_TOLERANCE_S = 300.0
_WEBHOOK_HEADERS = (
    "x-fal-webhook-request-id",
    "x-fal-webhook-user-id",
    "x-fal-webhook-timestamp",
    "x-fal-webhook-signature",
)


@dataclass(frozen=True, slots=True)
class Signed:
    request_id: str
    message: bytes
    signature: bytes


def signed_message(headers: Mapping[str, str], body: bytes, now: float) -> Signed:
    """What fal signed: ``request_id \\n user_id \\n timestamp \\n sha256_hex(body)``."""
    lowered = {name.lower(): value for name, value in headers.items()}
    values = [lowered.get(name) for name in _WEBHOOK_HEADERS]
    if not all(values):
        raise ProviderError(FailureKind.INVALID, "fal webhook: X-Fal-Webhook-* headers missing")
    request_id, user_id, timestamp, signature = (str(value) for value in values)
    try:
        stamped, raw = int(timestamp), bytes.fromhex(signature)
    except ValueError as exc:
        raise ProviderError(FailureKind.INVALID, "fal webhook: malformed headers") from exc
    if abs(now - stamped) > WEBHOOK_TOLERANCE_S:
        raise ProviderError(FailureKind.INVALID, "fal webhook: stale timestamp")
    digest = hashlib.sha256(body).hexdigest()
    message = f"{request_id}\n{user_id}\n{timestamp}\n{digest}".encode()
    return Signed(request_id, message, raw)


def verifies(keys: list[Ed25519PublicKey], signed: Signed) -> bool:
    for key in keys:
        with contextlib.suppress(InvalidSignature):
            key.verify(signed.signature, signed.message)
            return True
    return False


def notice_of(body: bytes, header_id: str) -> WebhookNotice:
    """The (verified) notice: the queue request id, from the body where it says, else from
    the header; and, when the request succeeded and fal sent its output (``status: OK`` with a
    ``payload`` object: fal sends ``payload: null`` with a ``payload_error`` when the output
    was not JSON), that output, which ends the job without a status poll or a result fetch.
    An ``ERROR`` is left to the poll, whose result fetch carries the app's own error body."""
    with contextlib.suppress(ValueError):
        notice = json.loads(body)
        if isinstance(notice, dict):
            request_id = notice.get("request_id")
            payload = notice.get("payload")
            ok = notice.get("status") == "OK" and isinstance(payload, dict)
            return WebhookNotice(
                request_id if isinstance(request_id, str) else header_id,
                payload if ok else None,
            )
    return WebhookNotice(header_id)


class WebhookKeys:
    """fal's published ED25519 keys, fetched with the provider's client and kept at most a day;
    fetched again when none verifies, but not more than once a minute."""

    def __init__(self, http: httpx.AsyncClient, url: str, clock: Callable[[], float]) -> None:
        self._http = http
        self._url = url
        self._clock = clock
        self._keys: list[Ed25519PublicKey] = []
        self._fetched_at: float | None = None

    async def current(self) -> list[Ed25519PublicKey]:
        return await self._older_than(JWKS_MAX_AGE_S)

    async def refetched(self) -> list[Ed25519PublicKey]:
        return await self._older_than(JWKS_REFETCH_FLOOR_S)

    async def _older_than(self, seconds: float) -> list[Ed25519PublicKey]:
        """The keys, fetched anew first when those held are ``seconds`` old (or none are)."""
        if self._fetched_at is None or self._clock() - self._fetched_at >= seconds:
            await self._fetch()
        return self._keys

    async def _fetch(self) -> None:
        try:
            response = await self._http.get(self._url, timeout=JWKS_TIMEOUT)
            response.raise_for_status()
            document = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise ProviderError(
                FailureKind.UNAVAILABLE, f"fal webhook: could not fetch the keys at {self._url}"
            ) from exc
        self._keys = _jwks_keys(document)
        self._fetched_at = self._clock()


def _jwks_keys(document: Any) -> list[Ed25519PublicKey]:
    entries = document.get("keys") if isinstance(document, dict) else None
    keys: list[Ed25519PublicKey] = []
    for entry in entries if isinstance(entries, list) else []:
        if not isinstance(entry, dict) or (entry.get("kty"), entry.get("crv")) != (
            "OKP",
            "Ed25519",
        ):
            continue
        with contextlib.suppress(KeyError, ValueError, TypeError, binascii.Error):
            x = str(entry["x"])
            raw = base64.urlsafe_b64decode(x + "=" * (-len(x) % 4))
            keys.append(Ed25519PublicKey.from_public_bytes(raw))
    return keys
