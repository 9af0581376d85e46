"""Media helpers used by more than one engine family (``builtin``, ``local``): no engines here.

- ``image_codec``, ``audio_codec``: uploaded media in, PNG/JPEG and MP3/WAV/Ogg out;
  ``mp4`` (with ``soundtrack``) and ``glb`` write video and 3D results.
- ``bounded``: untrusted audio and video read within a model's caps, headers first, then in
  chunks; the submit path checks inputs with it too.
- ``image_geometry`` and ``video_spec``: what a request's size, resolution and duration mean,
  so the built-in and local engines read them alike.
- ``alpha`` and ``segmentation``: classical computer vision (transparency, the subject on a plain
  backdrop), with no model weights; ``mesh_views`` decodes the input pictures of 3D engines.
- ``progress``: progress from a worker thread, forwarded on the event loop.

A module used by one family only stays in that family's package.
"""

from __future__ import annotations

__all__: list[str] = []
