"""An upstream's finished answer as our GenerationResult."""

from __future__ import annotations

import json
from collections.abc import Sequence

from hyperlocal.engines.base import Artifact, GenerationResult, Segment, Word
from hyperlocal.engines.upstream._wire import UpstreamReply, UpstreamSegment
from hyperlocal.errors import GenerationError

__all__ = ["result_of"]


def result_of(reply: UpstreamReply, artifacts: Sequence[Artifact]) -> GenerationResult:
    """``artifacts`` are the downloaded outputs. A transcript-only answer (the hosted ASR sends
    no outputUrl) is kept as a JSON file, as our own ASR engine stores it."""
    if not artifacts and reply.text is not None:
        artifacts = [_transcript(reply)]
    if not artifacts:
        raise GenerationError("upstream: the answer carried no output")
    return GenerationResult(
        artifacts=list(artifacts),
        duration=reply.duration,
        text=reply.text,
        segments=[_segment(s) for s in reply.segments],
    )


def _segment(segment: UpstreamSegment) -> Segment:
    words = tuple(Word(w.word, w.start, w.end) for w in segment.words)
    return Segment(segment.text, segment.start, segment.end, words)


def _transcript(reply: UpstreamReply) -> Artifact:
    body = {
        "text": reply.text,
        "duration": reply.duration,
        "segments": [s.model_dump() for s in reply.segments],
    }
    data = json.dumps(body, ensure_ascii=False, indent=1).encode()
    return Artifact(data=data, content_type="application/json", extension="json")
