"""Built-in CPU engines: their models ship in registry packages or they need none, so nothing
downloads at run time.

One subpackage per modality: ``image`` (the ``preview`` renderer and classical edits), ``video``
(``motion-video``), ``audio`` (speech, voice matching, ASR, music) and ``mesh`` (3D). Each
registers its ``create`` factories through the ``hyperlocal.engines`` entry-point group.
"""

from __future__ import annotations

__all__: list[str] = []
