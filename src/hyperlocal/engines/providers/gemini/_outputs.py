"""What ``generateContent`` answered, as outputs: its inline media of one kind (no interim
"thought" images), transcoded to the image format asked for, or why there were none."""

from __future__ import annotations

import asyncio

from google.genai import types

from hyperlocal.engines.base import MediaInput, MediaKind
from hyperlocal.engines.media.image_codec import FORMATS, decode, encode
from hyperlocal.engines.providers.base import FailureKind, ProviderError, ProviderOutput
from hyperlocal.errors import GenerationError

__all__ = ["blobs", "in_format", "output"]


def blobs(response: types.GenerateContentResponse, kind: str) -> list[types.Blob]:
    """The answer's inline media of ``kind`` (``image/``, ``audio/``), without the interim
    "thought" images that the Pro models send before their final one."""
    parts = [
        part
        for candidate in response.candidates or []
        for part in (candidate.content.parts if candidate.content else None) or []
        if not part.thought
    ]
    found = [part.inline_data for part in parts if part.inline_data and part.inline_data.data]
    wanted = [blob for blob in found if (blob.mime_type or "").startswith(kind)]
    if not wanted:
        raise ProviderError(FailureKind.FAILED, _why_empty(response, parts))
    return wanted


def _why_empty(response: types.GenerateContentResponse, parts: list[types.Part]) -> str:
    """What Google said instead: a blocked prompt, a finish reason, the model's own text."""
    feedback = response.prompt_feedback or types.GenerateContentResponsePromptFeedback()
    said = [f"prompt blocked: {feedback.block_reason}" if feedback.block_reason else ""]
    said.append(feedback.block_reason_message or "")
    for candidate in response.candidates or []:
        if candidate.finish_reason not in (None, types.FinishReason.STOP):
            said.append(f"finish reason {candidate.finish_reason}")
        said.append(candidate.finish_message or "")
    said.extend(part.text or "" for part in parts)
    detail = "; ".join(text.strip() for text in said if text.strip())
    return f"gemini: no media in the answer ({detail or 'nothing said'})"


def output(blob: types.Blob) -> ProviderOutput:
    return ProviderOutput(data=blob.data, content_type=blob.mime_type)


async def in_format(blob: types.Blob, wanted: str) -> ProviderOutput:
    """The image, transcoded when ``wanted`` (png or jpeg) is not what Gemini made."""
    fmt = "jpeg" if wanted == "jpg" else wanted
    if fmt not in FORMATS or blob.mime_type == FORMATS[fmt][1] or blob.data is None:
        return output(blob)
    made = MediaInput("output", MediaKind.IMAGE, blob.mime_type or "image/*", blob.data, "gemini")
    try:
        data = await asyncio.to_thread(_transcode, made, fmt)
    except GenerationError as exc:
        raise ProviderError(FailureKind.FAILED, f"gemini: {exc}") from exc
    return ProviderOutput(data=data, content_type=FORMATS[fmt][1])


def _transcode(image: MediaInput, fmt: str) -> bytes:
    return encode(decode(image, keep_alpha=fmt == "png"), fmt).data
