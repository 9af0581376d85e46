"""Adapters that run real model weights from ``HYPERLOCAL_MODELS_DIR``, on a GPU when there is one.

Nothing here ships weights or downloads them at run time: an operator fetches them once
(``hyperlocal models pull NAME``), then points a catalogue entry at the folder::

    [[model]]
    id = "sd-turbo"
    engine = "diffusers-image"
    engine_options = { weights = "sd-turbo", steps = 4, guidance = 0.0 }

=================  ==============================  =========================================
engine             module                          weights folder (``<models dir>/<weights>``)
=================  ==============================  =========================================
diffusers-image    ``image.DiffusersImageEngine``  a diffusers pipeline (``model_index.json``)
diffusers-video    ``video.DiffusersVideoEngine``  a diffusers video pipeline
whisper-local      ``whisper.WhisperLocalEngine``  a CTranslate2 Whisper (``model.bin``)
musicgen           ``music.MusicgenEngine``        a transformers MusicGen (``config.json``)
image-to-3d        ``mesh.ImageTo3DEngine``        Hunyuan3D-2 (``<subfolder>/config.yaml``)
=================  ==============================  =========================================

Every adapter loads its weights in a worker thread, on CUDA when torch sees it (else the
CPU), and runs one job at a time on them (``runtime.Resident``). The models of all adapters
share one shelf per process (``devices.DeviceManager``): each device's budget bounds them,
the least recently used idle model makes room, and idle ones are unloaded. Their packages (torch,
diffusers, transformers: the ``gpu`` extra) are imported only inside the load functions, so
the API starts without them; a missing package surfaces as ``EngineUnavailableError`` on the
first job, missing weights as a ``GenerationError`` that names the folder it looked in.
"""

from __future__ import annotations

__all__: list[str] = []
