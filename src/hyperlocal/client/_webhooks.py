"""Checking a webhook delivery, as Standard Webhooks (standardwebhooks.com) specifies."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time
from collections.abc import Mapping
from typing import Any

from hyperlocal.client._errors import WebhookVerificationError

__all__ = ["verify_webhook"]


def verify_webhook(
    payload: bytes | str, headers: Mapping[str, str], secret: str, *, tolerance: int = 300
) -> dict[str, Any]:
    """Return the delivery's JSON payload if it is genuine and fresh; raise
    ``WebhookVerificationError`` otherwise.

    ``payload`` must be the raw request body, byte for byte, as received (not re-serialised
    JSON). ``headers`` are the request's, in any case. ``secret`` is the key's ``whsec_...``.
    A timestamp more than ``tolerance`` seconds from now, either way, is refused, which stops
    an old delivery being replayed. Receivers should still de-duplicate on ``webhook-id``
    (or the payload's ``jobId``): delivery is at least once.
    """
    body = payload.encode() if isinstance(payload, str) else payload
    message_id, timestamp, signatures = _headers(headers)
    _check_timestamp(timestamp, tolerance)
    expected = _signature(_key(secret), message_id, timestamp, body)
    if not any(hmac.compare_digest(expected, s) for s in _v1_signatures(signatures)):
        raise WebhookVerificationError("no matching signature")
    try:
        data = json.loads(body)
    except ValueError as exc:
        raise WebhookVerificationError("payload is not JSON") from exc
    if not isinstance(data, dict):
        raise WebhookVerificationError("payload is not a JSON object")
    return data


def _headers(headers: Mapping[str, str]) -> tuple[str, str, str]:
    lowered = {k.lower(): v for k, v in headers.items()}
    names = ("webhook-id", "webhook-timestamp", "webhook-signature")
    missing = [name for name in names if not lowered.get(name)]
    if missing:
        raise WebhookVerificationError(f"missing header(s): {', '.join(missing)}")
    return lowered[names[0]], lowered[names[1]], lowered[names[2]]


def _check_timestamp(timestamp: str, tolerance: int) -> None:
    try:
        sent = int(timestamp)
    except ValueError as exc:
        raise WebhookVerificationError("invalid webhook-timestamp") from exc
    now = time.time()
    if sent < now - tolerance:
        raise WebhookVerificationError("message timestamp too old")
    if sent > now + tolerance:
        raise WebhookVerificationError("message timestamp too new")


def _key(secret: str) -> bytes:
    try:
        return base64.b64decode(secret.removeprefix("whsec_"), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise WebhookVerificationError("the secret is not a valid whsec_ secret") from exc


def _signature(key: bytes, message_id: str, timestamp: str, body: bytes) -> bytes:
    signed = f"{message_id}.{timestamp}.".encode() + body
    return base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest())


def _v1_signatures(header: str) -> list[bytes]:
    """``v1,<base64>`` entries, space-separated; other versions are skipped."""
    found = []
    for entry in header.split():
        version, _, value = entry.partition(",")
        if version == "v1" and value:
            found.append(value.encode())
    return found
