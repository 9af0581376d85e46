"""Job states, internal and as the wire shows them."""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum

from hyperlocal.engines.base import Category

__all__ = ["WIRE_TYPES", "JobStatus"]


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
