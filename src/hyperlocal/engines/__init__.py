"""Engines turn a validated request into media. See ``base.Engine`` for the contract.

Packages are named after what serves the model:

- ``builtin/``: the CPU engines that ship with hyperlocal and download nothing (``image``,
  ``video``, ``audio``, ``mesh``);
- ``local/``: adapters that run model weights an operator pulled into ``HYPERLOCAL_MODELS_DIR``;
- ``upstream/``: forwarding to a Hypereal-compatible server;
- ``chat/``: the chat engines, with their own Protocol and registry.

``media/`` holds what more than one of those families uses: codecs, request sizes, segmentation
and progress from a worker thread. ``base.py`` is the contract and ``registry.py`` finds
engines by name through entry points.
"""
