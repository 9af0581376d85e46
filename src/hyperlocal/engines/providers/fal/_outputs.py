"""What a fal app made: its files, found under the keys of :data:`OUTPUT_KEYS` in the app's
output JSON, and a speech-recognition transcript with its timed chunks."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote_to_bytes

from hyperlocal.engines.base import Category, Segment
from hyperlocal.engines.providers._common import number_or_none
from hyperlocal.engines.providers.base import (
    FailureKind,
    ProviderError,
    ProviderOutput,
    ProviderResult,
)

__all__ = ["OUTPUT_KEYS", "result_of"]

# Where each category's files sit in an app's output, in order of preference: the first key
# present wins, so an app that returns a GLB both as ``model_glb`` and in ``model_urls`` gives
# one mesh. A key holds one fal File ``{url, content_type?, ...}`` or a list of them; "a.b" is
# key "b" inside "a". Speech recognition (``fal-ai/wizper``) answers ``text`` and ``chunks``.
OUTPUT_KEYS: Mapping[Category, tuple[str, ...]] = {
    Category.IMAGE: ("images", "image"),
    Category.IMAGE_EDIT: ("images", "image"),
    Category.VIDEO: ("video",),
    Category.AUDIO: ("audio", "audio_file"),
    Category.THREE_D: ("model_glb", "pbr_model", "model_mesh", "model_urls.glb"),
}


def result_of(category: Category, output: Mapping[str, Any], request_id: str) -> ProviderResult:
    """The result in an app's output JSON: its files (``OUTPUT_KEYS``) and any transcript."""
    files = _files_of(category, output)
    text = output.get("text") if isinstance(output.get("text"), str) else None
    if not files and text is None:
        keys = ", ".join(sorted(output)) or "none"
        raise ProviderError(
            FailureKind.FAILED,
            f"fal: no output in the result (keys: {keys})",
            request_id=request_id,
        )
    return ProviderResult(
        outputs=[_output(file) for file in files],
        request_id=request_id,
        text=text,
        segments=_segments(output.get("chunks")),
        duration=number_or_none(files[0].get("duration")) if files else None,
    )


def _files_of(category: Category, output: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    for key in OUTPUT_KEYS.get(category, ()):
        found: Any = output
        for part in key.split("."):
            found = found.get(part) if isinstance(found, Mapping) else None
        files = [f for f in (found if isinstance(found, list) else [found]) if _is_file(f)]
        if files:
            return files
    return []


def _is_file(value: Any) -> bool:
    return isinstance(value, Mapping) and isinstance(value.get("url"), str)


def _output(file: Mapping[str, Any]) -> ProviderOutput:
    """A File as an output: its URL for the router to fetch, or the bytes of a ``data:`` URI
    (what ``sync_mode`` answers)."""
    url: str = file["url"]
    content_type = file.get("content_type") if isinstance(file.get("content_type"), str) else None
    if not url.startswith("data:"):
        return ProviderOutput(url=url, content_type=content_type)
    header, _, payload = url[5:].partition(",")
    media_type = header.split(";")[0] or content_type
    try:
        data = (
            base64.b64decode(payload, validate=True)
            if header.endswith(";base64")
            else unquote_to_bytes(payload)
        )
    except binascii.Error as exc:
        raise ProviderError(FailureKind.FAILED, "fal: an output data URI is malformed") from exc
    return ProviderOutput(data=data, content_type=media_type)


def _segments(chunks: Any) -> list[Segment]:
    """Whisper-style ``chunks: [{text, timestamp: [start, end]}]``; a last ``end`` may be null."""
    segments: list[Segment] = []
    for chunk in chunks if isinstance(chunks, list) else []:
        stamp = chunk.get("timestamp") if isinstance(chunk, Mapping) else None
        if not isinstance(stamp, list | tuple) or len(stamp) != 2:
            continue
        start = number_or_none(stamp[0])
        if start is None:
            continue
        end = number_or_none(stamp[1])
        segments.append(Segment(str(chunk.get("text", "")).strip(), start, end or start))
    return segments
