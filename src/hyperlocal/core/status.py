"""Job states, internal and as the wire shows them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from enum import StrEnum

from hyperlocal.engines.base import Category

__all__ = ["MOVES", "WIRE_TYPES", "JobStatus", "MoveError", "check_move"]


class JobStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELED = "canceled"

    @property
    def terminal(self) -> bool:
        return self in (JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELED)

    @property
    def wire(self) -> str:
        """The hosted API shows three states; queued and running are both ``processing``."""
        if self in (JobStatus.QUEUED, JobStatus.RUNNING):
            return "processing"
        return "completed" if self is JobStatus.COMPLETED else "failed"


WIRE_TYPES: Mapping[Category, str] = {
    Category.IMAGE: "image",
    Category.IMAGE_EDIT: "image",
    Category.VIDEO: "video",
    Category.AUDIO: "audio",
    Category.THREE_D: "3d",
    Category.CHAT: "chat",
}


# The state diagram (drawn in ``core.lifecycle``) as a table: every transition checks its move.
MOVES: Mapping[JobStatus, frozenset[JobStatus]] = {
    JobStatus.QUEUED: frozenset({JobStatus.RUNNING, JobStatus.CANCELED, JobStatus.FAILED}),
    JobStatus.RUNNING: frozenset(
        {JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELED, JobStatus.QUEUED}
    ),
    JobStatus.COMPLETED: frozenset(),
    JobStatus.FAILED: frozenset(),
    JobStatus.CANCELED: frozenset(),
}


class MoveError(Exception):
    """A transition that the state diagram does not have: a bug, never a client's fault."""


def check_move(sources: Sequence[JobStatus], target: JobStatus) -> list[str]:
    """The sources' values, if each may move to ``target``; else ``MoveError``."""
    for source in sources:
        if target not in MOVES[source]:
            raise MoveError(f"{source} -> {target} is not a move of the job state machine")
    return [s.value for s in sources]
