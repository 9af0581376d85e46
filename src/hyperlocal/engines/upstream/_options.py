"""One catalogue entry's upstream, read from its ``engine_options``."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

import httpx
from pydantic import SecretStr

from hyperlocal.engines.base import InputValue
from hyperlocal.errors import GenerationError

__all__ = ["DEFAULT_POLL_INTERVAL", "DEFAULT_RETRIES", "DEFAULT_TIMEOUT", "UpstreamOptions"]

DEFAULT_POLL_INTERVAL = 2.0
DEFAULT_TIMEOUT = 600.0
DEFAULT_RETRIES = 3


@dataclass(frozen=True, slots=True)
class UpstreamOptions:
    """Where and how to reach the upstream. ``repr`` never shows the key (it is a SecretStr)."""

    base_url: httpx.URL  # the server root: "/v1/..." paths are joined to it
    model: str
    key: SecretStr | None
    key_env: str | None
    poll_interval: float
    timeout: float
    retries: int

    @classmethod
    def parse(cls, model: str, options: Mapping[str, InputValue]) -> UpstreamOptions:
        """Read ``options``; a missing ``base_url`` or unset key variable fails the job."""
        key_env = _text(options.get("api_key_env"))
        return cls(
            base_url=_root(model, options.get("base_url")),
            model=_text(options.get("upstream_model")) or model,
            key=_key(key_env),
            key_env=key_env,
            poll_interval=_positive(options, "poll_interval", DEFAULT_POLL_INTERVAL),
            timeout=_positive(options, "timeout", DEFAULT_TIMEOUT),
            retries=int(_positive(options, "retries", DEFAULT_RETRIES, minimum=0)),
        )

    def url(self, path: str) -> httpx.URL:
        return self.base_url.copy_with(path=self.base_url.path.rstrip("/") + path)

    def headers(self, idempotency_key: str | None = None) -> dict[str, str]:
        headers = {"Accept": "application/json"}
        if self.key is not None:
            headers["Authorization"] = f"Bearer {self.key.get_secret_value()}"
        if idempotency_key:
            headers["Idempotency-Key"] = idempotency_key
        return headers


def _text(value: InputValue) -> str | None:
    return str(value) if value not in (None, "") else None


def _root(model: str, value: InputValue) -> httpx.URL:
    """The base URL without a trailing ``/v1``: operators paste either spelling."""
    text = _text(value)
    if text is None:
        raise GenerationError(f"Model '{model}' has no engine_options.base_url")
    url = httpx.URL(text.rstrip("/"))
    if url.scheme not in ("http", "https") or not url.host:
        raise GenerationError(f"Model '{model}': engine_options.base_url must be http(s)")
    path = url.path.rstrip("/")
    return url.copy_with(path=path.removesuffix("/v1") or "/")


def _key(key_env: str | None) -> SecretStr | None:
    if key_env is None:
        return None
    key = os.environ.get(key_env, "").strip()
    if not key:
        raise GenerationError(f"upstream: the key variable {key_env} is not set")
    return SecretStr(key)


def _positive(
    options: Mapping[str, InputValue], name: str, default: float, minimum: float = 1e-3
) -> float:
    value = options.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise GenerationError(f"engine_options.{name} must be a number")
    try:
        number = float(value)
    except ValueError as exc:
        raise GenerationError(f"engine_options.{name} must be a number") from exc
    if number < minimum:
        raise GenerationError(f"engine_options.{name} must be at least {minimum:g}")
    return number
