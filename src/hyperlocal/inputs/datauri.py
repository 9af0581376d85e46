"""Inline media as ``data:`` URIs (RFC 2397), base64 or percent-encoded.

The declared media type is ignored: :func:`hyperlocal.inputs.media.check_media` decides what
the bytes are.
"""

from __future__ import annotations

import base64
from urllib.parse import unquote_to_bytes

from hyperlocal.errors import MediaInputError

__all__ = ["decode_data_uri", "is_data_uri", "too_large"]


def is_data_uri(source: str) -> bool:
    return source[:5].lower() == "data:"


def too_large(field: str, max_bytes: int) -> MediaInputError:
    return MediaInputError(field, f"larger than {max_bytes} bytes")


def decode_data_uri(field: str, uri: str, max_bytes: int) -> bytes:
    """Decode ``uri``, refusing it before decoding when its length alone proves it too large."""
    header, comma, payload = uri[5:].partition(",")
    if not comma:
        raise MediaInputError(field, "not a valid data URI")
    if header.lower().endswith(";base64"):
        data = _decode_base64(field, payload, max_bytes)
    else:
        data = _decode_percent(field, payload, max_bytes)
    if len(data) > max_bytes:
        raise too_large(field, max_bytes)
    return data


def _decode_base64(field: str, payload: str, max_bytes: int) -> bytes:
    payload = "".join(payload.split())  # some clients wrap base64 at 76 columns
    if len(payload) > 4 * -(-max_bytes // 3):
        raise too_large(field, max_bytes)
    try:
        return base64.b64decode(payload, validate=True)
    except ValueError as exc:  # binascii.Error, or non-ASCII text
        raise MediaInputError(field, "data URI is not valid base64") from exc


def _decode_percent(field: str, payload: str, max_bytes: int) -> bytes:
    # Every decoded byte takes at most three characters ("%xx").
    if len(payload) > 3 * max_bytes:
        raise too_large(field, max_bytes)
    return unquote_to_bytes(payload)
