"""A transcript as the file that speech recognition stores: every ASR path writes this one
JSON shape (the built-in and local Whisper engines, an upstream, a provider)."""

from __future__ import annotations

import json
from collections.abc import Sequence

from hyperlocal.engines.base import Artifact, Segment

__all__ = ["segment_json", "transcript_artifact"]


def transcript_artifact(
    text: str,
    duration: float | None,
    segments: Sequence[Segment],
    *,
    language: str | None = None,
    model: str | None = None,
) -> Artifact:
    body: dict[str, object] = {
        "text": text,
        "duration": None if duration is None else round(duration, 3),
    }
    if language is not None:
        body["language"] = language
    if model is not None:
        body["model"] = model
    body["segments"] = [segment_json(s) for s in segments]
    data = json.dumps(body, ensure_ascii=False, indent=1).encode()
    return Artifact(data=data, content_type="application/json", extension="json")


def segment_json(segment: Segment) -> dict[str, object]:
    out: dict[str, object] = {"text": segment.text, "start": segment.start, "end": segment.end}
    if segment.words:
        out["words"] = [{"word": w.word, "start": w.start, "end": w.end} for w in segment.words]
    return out
