"""An upstream's finished answer as our GenerationResult."""

from __future__ import annotations

from collections.abc import Sequence

from hyperlocal.engines.base import Artifact, GenerationResult, Segment, Word
from hyperlocal.engines.media.transcript import transcript_artifact
from hyperlocal.engines.upstream._wire import UpstreamReply, UpstreamSegment
from hyperlocal.errors import GenerationError

__all__ = ["result_of"]


def result_of(reply: UpstreamReply, artifacts: Sequence[Artifact]) -> GenerationResult:
    """``artifacts`` are the downloaded outputs. A transcript-only answer (the hosted ASR sends
    no outputUrl) is kept as a JSON file, as our own ASR engine stores it."""
    segments = [_segment(s) for s in reply.segments]
    if not artifacts and reply.text is not None:
        artifacts = [transcript_artifact(reply.text, reply.duration, segments)]
    if not artifacts:
        raise GenerationError("upstream: the answer carried no output")
    return GenerationResult(
        artifacts=list(artifacts),
        duration=reply.duration,
        text=reply.text,
        segments=segments,
    )


def _segment(segment: UpstreamSegment) -> Segment:
    words = tuple(Word(w.word, w.start, w.end) for w in segment.words)
    return Segment(segment.text, segment.start, segment.end, words)
