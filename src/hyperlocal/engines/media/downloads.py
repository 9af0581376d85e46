"""Bringing a remote engine's outputs home (an upstream's, a provider's), so that the runner
re-hosts them in our storage: through the caller's client (the address guard's), capped in
size, with a content type and an extension that agree.

No key is sent with a download unless the caller passes ``headers``: output URLs are public
on the hosted service and on providers' CDNs, which have no business seeing a key.
"""

from __future__ import annotations

import mimetypes
import re
from collections.abc import Mapping
from pathlib import PurePosixPath

import httpx

from hyperlocal.engines.base import Artifact, Category
from hyperlocal.errors import GenerationError
from hyperlocal.inputs import ForbiddenAddressError, UnresolvableHostError
from hyperlocal.inputs.datauri import decode_data_uri, is_data_uri

__all__ = ["MAX_OUTPUT_BYTES", "artifact_of", "download"]

MAX_OUTPUT_BYTES = 1024 * 1024 * 1024

_DEFAULTS = {
    Category.IMAGE: ("image/png", "png"),
    Category.IMAGE_EDIT: ("image/png", "png"),
    Category.VIDEO: ("video/mp4", "mp4"),
    Category.AUDIO: ("audio/mpeg", "mp3"),
    Category.THREE_D: ("model/gltf-binary", "glb"),
}
# Spellings that mimetypes lacks or spells differently from what clients expect.
_EXTENSIONS = {
    "model/gltf-binary": "glb",
    "audio/mpeg": "mp3",
    "audio/wav": "wav",
    "audio/x-wav": "wav",
    "audio/ogg": "ogg",
    "image/jpeg": "jpg",
    "application/json": "json",
}
_TYPES = {extension: kind for kind, extension in _EXTENSIONS.items()} | {"jpeg": "image/jpeg"}
_EXTENSION = re.compile(r"[a-z0-9]{1,8}")
_CONTENT_TYPE = re.compile(r"[a-z0-9.+-]+/[a-z0-9.+-]+")


async def download(
    client: httpx.AsyncClient,
    base: httpx.URL,
    url: str,
    category: Category,
    *,
    source: str = "upstream",
    headers: Mapping[str, str] | None = None,
) -> Artifact:
    """The output at ``url`` (absolute, relative to ``base``, or a ``data:`` URI). Errors
    name ``source``; ``headers`` go with the request (none by default: see above)."""
    if is_data_uri(url):
        data = decode_data_uri("output", url, MAX_OUTPUT_BYTES)
        return _artifact(data, url[5:].split(";", 1)[0].split(",", 1)[0], "", category)
    target = base.join(url)
    if target.scheme not in ("http", "https"):
        raise GenerationError(f"{source}: the output URL is not http(s)")
    try:
        return await _fetch(client, target, category, source, headers or {})
    except ForbiddenAddressError as exc:
        raise GenerationError(f"{source}: the output URL resolves to a private address") from exc
    except UnresolvableHostError as exc:
        raise GenerationError(f"{source}: the output URL's host could not be resolved") from exc


async def _fetch(
    client: httpx.AsyncClient,
    url: httpx.URL,
    category: Category,
    source: str,
    headers: Mapping[str, str],
) -> Artifact:
    async with client.stream("GET", url, headers=headers, follow_redirects=True) as response:
        if not response.is_success:
            raise GenerationError(
                f"{source}: downloading the output failed (HTTP {response.status_code})"
            )
        data = await _read_capped(response, source)
        declared = response.headers.get("Content-Type", "")
        return _artifact(data, declared, response.url.path, category)


async def _read_capped(response: httpx.Response, source: str) -> bytes:
    body = bytearray()
    async for chunk in response.aiter_bytes():
        body += chunk
        if len(body) > MAX_OUTPUT_BYTES:
            raise GenerationError(f"{source}: the output is larger than {MAX_OUTPUT_BYTES} bytes")
    return bytes(body)


def artifact_of(data: bytes, content_type: str | None, category: Category) -> Artifact:
    """An output whose bytes came with the answer (inline data, an authenticated download)."""
    return _artifact(data, content_type or "", "", category)


def _artifact(data: bytes, declared: str, path: str, category: Category) -> Artifact:
    """Content type from the response, else from the name; the category's usual one when
    neither says anything we can trust.

    The extension must agree with the content type, because our storage serves each file with
    the type that its extension implies: the name's own extension when it agrees, else the
    type's usual one.
    """
    default_type, default_extension = _DEFAULTS.get(category, ("application/octet-stream", "bin"))
    named = _extension_of(path)
    content_type = _clean_type(declared) or _type_of(named) or default_type
    agrees = named if named and _type_of(named) == content_type else None
    extension = agrees or _extension_for(content_type) or named or default_extension
    if category is Category.THREE_D:  # the contract: 3D output is always GLB
        content_type, extension = "model/gltf-binary", "glb"
    return Artifact(data=data, content_type=content_type, extension=extension)


def _clean_type(declared: str) -> str | None:
    kind = declared.split(";", 1)[0].strip().lower()
    if not _CONTENT_TYPE.fullmatch(kind) or kind in (
        "application/octet-stream",
        "binary/octet-stream",
    ):
        return None
    return kind


def _extension_of(path: str) -> str | None:
    suffix = PurePosixPath(path).suffix.lstrip(".").lower()
    return suffix if _EXTENSION.fullmatch(suffix) else None


def _type_of(extension: str | None) -> str | None:
    if extension is None:
        return None
    return _TYPES.get(extension) or mimetypes.types_map.get(f".{extension}")


def _extension_for(content_type: str) -> str | None:
    if content_type in _EXTENSIONS:
        return _EXTENSIONS[content_type]
    guessed = mimetypes.guess_extension(content_type)
    return guessed.lstrip(".") if guessed and _EXTENSION.fullmatch(guessed[1:]) else None
