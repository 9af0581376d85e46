"""Moved to :mod:`hyperlocal.engines.vision.segmentation`; this name stays only for callers
outside the mesh package that still import it (``engines/local/mesh.py``). Delete it once they
import from ``vision`` instead.
"""

from hyperlocal.engines.vision.segmentation import Segmentation, segment

__all__ = ["Segmentation", "segment"]
