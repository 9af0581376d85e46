"""What a prediction says and made: :class:`Snapshot` (a prediction as we use it), its tqdm
progress, and its outputs (URLs or ``data:`` URIs) or transcript as a result."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from hyperlocal.engines.providers.base import (
    FailureKind,
    ProviderError,
    ProviderOutput,
    ProviderResult,
    Watch,
)

__all__ = ["Snapshot", "report", "result"]

# tqdm lines in ``logs``: the SDK's own ``Prediction.Progress`` pattern.
_PROGRESS = re.compile(r"^\s*(\d+)%\s*\|.+?\|\s*(\d+)/(\d+)")
# Replicate's words for a run that its infrastructure lost rather than the model failed [G].
_INTERRUPTED = ("Prediction interrupted", "(code: PA)")


@dataclass(frozen=True, slots=True)
class Snapshot:
    """A prediction as we use it, whether the SDK parsed it or not."""

    id: str
    status: str
    output: Any
    logs: str
    error: str | None

    @classmethod
    def parse(cls, body: Mapping[str, Any]) -> Snapshot:
        error = body.get("error")
        return cls(
            str(body["id"]),
            str(body["status"]),
            body.get("output"),
            str(body.get("logs") or ""),
            None if error is None else str(error),
        )


async def report(snapshot: Snapshot, watch: Watch, shown: float | None) -> float | None:
    """The last tqdm line's fraction, told to ``watch`` when it moved."""
    lines = (_PROGRESS.match(line) for line in reversed(snapshot.logs.splitlines()))
    match = next((found for found in lines if found is not None), None)
    fraction = None if match is None else min(int(match.group(1)) / 100.0, 1.0)
    if fraction is None or fraction == shown:
        return shown
    await watch.progress(fraction=fraction)
    return fraction


def result(snapshot: Snapshot) -> ProviderResult:
    if snapshot.status == "failed":
        error = snapshot.error or "the prediction failed"
        interrupted = any(word in error for word in _INTERRUPTED)
        kind = FailureKind.UNAVAILABLE if interrupted else FailureKind.FAILED
        raise ProviderError(kind, error, request_id=snapshot.id)
    if snapshot.status != "succeeded":
        message = f"replicate: the prediction was {snapshot.status}"
        raise ProviderError(FailureKind.FAILED, message, request_id=snapshot.id)
    urls = list(_urls(snapshot.output))
    text = _text(snapshot.output)
    if not urls and text is None:
        message = "replicate: the prediction succeeded without an output"
        raise ProviderError(FailureKind.FAILED, message, request_id=snapshot.id)
    return ProviderResult(
        outputs=[ProviderOutput(url=url) for url in urls],
        request_id=snapshot.id,
        text=text,
    )


def _is_url(value: object) -> bool:
    return isinstance(value, str) and value.startswith(("https://", "http://", "data:"))


def _urls(output: Any) -> Iterator[str]:
    """URL strings (or data URIs) in an output: one, a list of them, or an object's values."""
    if _is_url(output):
        yield output
    elif isinstance(output, list):
        for item in output:
            yield from _urls(item)
    elif isinstance(output, dict):
        for item in output.values():
            yield from _urls(item)


def _text(output: Any) -> str | None:
    """A text output (speech recognition): a string that is no URL, or the ``transcription``
    or ``text`` of an object (openai/whisper's shape)."""
    if isinstance(output, str) and not _is_url(output):
        return output
    if isinstance(output, dict):
        for key in ("transcription", "text"):
            if isinstance(output.get(key), str):
                return str(output[key])
    return None
