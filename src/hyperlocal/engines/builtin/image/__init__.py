"""Built-in image engines: the honest ``preview`` renderer and classical edits."""

from hyperlocal.engines.builtin.image.preview import PreviewImageEngine, create

__all__ = ["PreviewImageEngine", "create"]
