"""Media inputs on the wire: every media field takes an http(s) URL or a ``data:`` URI.

The SDK also takes raw bytes and local paths and sends them as data URIs. A plain ``str``
must already be a URL or a data URI: it is never read as a file name, so a string that came
from someone else (a form field, a chat message) cannot make the SDK upload a local file.
"""

from __future__ import annotations

import base64
import mimetypes
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TypeAlias

__all__ = ["MEDIA_FIELDS", "MediaInput", "data_uri", "encode_inputs", "encode_media"]

MediaInput: TypeAlias = str | bytes | os.PathLike[str]

_SCHEMES = ("http://", "https://", "data:")
_MAGIC: tuple[tuple[int, bytes, str], ...] = (
    (0, b"\x89PNG\r\n\x1a\n", "image/png"),
    (0, b"\xff\xd8\xff", "image/jpeg"),
    (0, b"GIF8", "image/gif"),
    (8, b"WEBP", "image/webp"),
    (8, b"WAVE", "audio/wav"),
    (0, b"ID3", "audio/mpeg"),
    (0, b"\xff\xfb", "audio/mpeg"),
    (0, b"\xff\xf3", "audio/mpeg"),
    (0, b"OggS", "audio/ogg"),
    (0, b"fLaC", "audio/flac"),
    (4, b"ftyp", "video/mp4"),
    (0, b"\x1aE\xdf\xa3", "video/webm"),
    (0, b"glTF", "model/gltf-binary"),
)


def sniff(data: bytes) -> str:
    for offset, magic, mime in _MAGIC:
        if data[offset : offset + len(magic)] == magic:
            return mime
    return "application/octet-stream"


def data_uri(data: bytes, mime: str | None = None) -> str:
    return f"data:{mime or sniff(data)};base64,{base64.b64encode(data).decode('ascii')}"


def encode_media(value: MediaInput) -> str:
    """A URL or data URI unchanged; bytes or a path as a data URI."""
    if isinstance(value, bytes):
        return data_uri(value)
    if isinstance(value, str):
        if value[:8].lower().startswith(_SCHEMES):
            return value
        raise ValueError(
            f"media must be an http(s) URL, a data: URI, bytes or a Path, not {value[:60]!r}"
            " (pass Path(...) to send a local file)"
        )
    path = Path(value)
    data = path.read_bytes()
    guessed, _ = mimetypes.guess_type(path.name)
    return data_uri(data, guessed or sniff(data))


# The wire's media fields (spec §5, §7, §8, §11): a string here must be a URL or data URI.
MEDIA_FIELDS = frozenset(
    {
        "image", "images", "reference_images", "start_image", "end_image", "last_image",
        "audio", "video", "front_image_url", "back_image_url", "left_image_url",
        "right_image_url",
    }
)  # fmt: skip


def _encode_value(value: Any, media: bool) -> Any:
    if isinstance(value, bytes | os.PathLike) or (media and isinstance(value, str)):
        return encode_media(value)
    if isinstance(value, Sequence) and not isinstance(value, str):
        return [_encode_value(v, media) for v in value]
    return value


def encode_inputs(values: Mapping[str, Any]) -> dict[str, Any]:
    """Drop the None values, check the media fields' strings, and send every bytes or path
    value (or list of them), in any field, as a data URI."""
    return {k: _encode_value(v, k in MEDIA_FIELDS) for k, v in values.items() if v is not None}
