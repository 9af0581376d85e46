"""``hypereal-upstream``: forwards any model to a Hypereal-compatible server, the hosted
service or another hyperlocal, and re-hosts its outputs in our storage.

An operator adds or overrides a model with their catalogue file (``HYPERLOCAL_CATALOG``)::

    [[model]]
    id = "sora-2-i2v"
    category = "video"
    name = "Sora 2, from the hosted service"
    engine = "hypereal-upstream"
    timeout_s = 900
    price = { kind = "per_second", credits = 69, per_seconds = 5, field = "duration" }
    inputs.prompt = { type = "string", required = true }
    inputs.image = { type = "image", required = true }
    inputs.duration = { type = "integer", enum = [5, 10], default = 5 }
    [model.engine_options]
    base_url = "https://hypereal.example"   # the hosted service, or another hyperlocal
    api_key_env = "HYPEREAL_KEY"
    poll_interval = 3
    timeout = 840

``engine_options``:

- ``base_url`` (required): the upstream's root; ``/v1/...`` paths are joined to it, and a
  trailing ``/v1`` is accepted.
- ``api_key_env``: the environment variable holding the upstream key. The key never sits in
  the catalogue, and is never logged. Unset: no Authorization header is sent.
- ``upstream_model``: the upstream's id for the model (default: the same id).
- ``poll_interval``: seconds between polls of an upstream job (default 2).
- ``timeout``: seconds from submit to a finished upstream job (default 600); keep it below the
  entry's ``timeout_s`` so that the upstream job is canceled (where it can be) and the error
  says "upstream".
- ``retries``: extra submits after a 429, a 5xx without an error code, or a refused connection
  (default 3), with exponential backoff or the upstream's ``Retry-After``.

Only the entry's declared ``inputs`` are forwarded; media inputs go as ``data:`` URIs of the
bytes that were fetched and checked here. Images use ``/v1/images/generate`` or
``/v1/images/edit``, video ``/v1/videos/generate``, audio ``/v1/audio/generate`` and 3D
``/v1/3d/generate``; a 202 answer is followed by polling ``/v1/jobs/{id}`` (its ``progress``
is reported as ours). Upstream failures become :class:`~hyperlocal.errors.GenerationError`
with the upstream's text after ``upstream:`` (so our job fails and is refunded); timeouts
become :class:`~hyperlocal.errors.GenerationTimeoutError`.
"""

from __future__ import annotations

from hyperlocal.engines.upstream._engine import UpstreamEngine, create

__all__ = ["UpstreamEngine", "create"]
