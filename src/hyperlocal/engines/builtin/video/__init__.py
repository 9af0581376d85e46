"""The built-in ``motion-video`` engine: honest CPU motion from the request's own media."""

from __future__ import annotations

from hyperlocal.engines.base import EngineContext
from hyperlocal.engines.builtin.video.engine import MotionVideoEngine

__all__ = ["MotionVideoEngine", "create"]


def create(context: EngineContext) -> MotionVideoEngine:
    """The registry factory for the ``motion-video`` engine."""
    return MotionVideoEngine(context)
