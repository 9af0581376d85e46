"""The installed provider adapters, and which of them the operator gave a key.

Adapters register under the ``hyperlocal.providers`` entry-point group (pyproject.toml), as
engines do. A provider's key comes from its own variable (``FAL_KEY``,
``REPLICATE_API_TOKEN``, ``OPENAI_API_KEY``, ``GEMINI_API_KEY``, ``BFL_API_KEY``), and its
base URL from ``HYPERLOCAL_<NAME>_BASE_URL``; these are typed settings. A provider that a
third-party package adds reads ``<NAME>_API_KEY`` and ``HYPERLOCAL_<NAME>_BASE_URL`` from the
environment instead. An adapter is created on first use, so its SDK loads only then.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from hyperlocal import __version__
from hyperlocal.engines.providers.base import Provider, ProviderContext
from hyperlocal.engines.providers.health import cap_of
from hyperlocal.engines.registry import discover
from hyperlocal.errors import EngineUnavailableError
from hyperlocal.settings import Settings

__all__ = ["PROVIDER_GROUP", "ProviderConfig", "ProviderRegistry", "configs_of"]

PROVIDER_GROUP = "hyperlocal.providers"
_TIMEOUT = httpx.Timeout(120.0, connect=10.0)


@dataclass(frozen=True, slots=True)
class ProviderConfig:
    name: str
    key_env: str
    key: str | None
    base_url: str | None

    @property
    def configured(self) -> bool:
        return bool(self.key) and bool(self.base_url)

    def masked_key(self) -> str:
        """The key as ``hyperlocal settings`` shows it: its last four characters at most."""
        if not self.key:
            return "(not set)"
        return "****" + self.key[-4:] if len(self.key) >= 16 else "****"


# name -> (the settings field of its key, the variable it is read from, its base URL field)
_KNOWN = {
    "fal": ("fal_key", "FAL_KEY", "fal_base_url"),
    "replicate": ("replicate_api_token", "REPLICATE_API_TOKEN", "replicate_base_url"),
    "openai": ("openai_api_key", "OPENAI_API_KEY", "openai_base_url"),
    "gemini": ("gemini_api_key", "GEMINI_API_KEY", "gemini_base_url"),
    "bfl": ("bfl_api_key", "BFL_API_KEY", "bfl_base_url"),
}


def _config(settings: Settings, name: str) -> ProviderConfig:
    known = _KNOWN.get(name)
    if known is None:
        upper = name.upper().replace("-", "_")
        env = f"{upper}_API_KEY"
        base = os.environ.get(f"HYPERLOCAL_{upper}_BASE_URL")
        return ProviderConfig(name, env, os.environ.get(env) or None, base)
    key_field, env, base_field = known
    secret = getattr(settings, key_field)
    key = secret.get_secret_value() if secret is not None else None
    return ProviderConfig(name, env, key or None, getattr(settings, base_field))


def configs_of(settings: Settings, names: list[str]) -> list[ProviderConfig]:
    return [_config(settings, name) for name in names]


class ProviderRegistry:
    """Creates each configured provider once, on first use, and closes them at shutdown."""

    def __init__(
        self,
        settings: Settings,
        factories: Mapping[str, Callable[[ProviderContext], Any]] | None = None,
    ) -> None:
        self._settings = settings
        found: Mapping[str, Callable[[Any], Any]] = (
            factories if factories is not None else discover(PROVIDER_GROUP)
        )
        self._factories: dict[str, Callable[[ProviderContext], Provider]] = dict(found)
        self._configs = {name: _config(settings, name) for name in self._factories}
        self._providers: dict[str, Provider] = {}
        self._clients: list[httpx.AsyncClient] = []
        self._lock = asyncio.Lock()

    def names(self) -> list[str]:
        return sorted(self._factories)

    def configs(self) -> list[ProviderConfig]:
        return [self._configs[name] for name in self.names()]

    def configured(self, name: str) -> bool:
        config = self._configs.get(name)
        return config is not None and config.configured

    async def get(self, name: str) -> Provider:
        provider = self._providers.get(name)
        if provider is not None:
            return provider
        if not self.configured(name):
            raise EngineUnavailableError(f"provider:{name}")
        async with self._lock:
            if name not in self._providers:  # an SDK's import takes a second or two: not on
                self._providers[name] = await asyncio.to_thread(self._create, name)  # the loop
        return self._providers[name]

    def _create(self, name: str) -> Provider:
        config = self._configs[name]
        settings = self._settings
        secret = settings.replicate_webhook_secret if name == "replicate" else None
        client = httpx.AsyncClient(
            trust_env=False,
            timeout=_TIMEOUT,
            limits=_limits(cap_of(settings.provider_concurrency, name)),
            headers={"User-Agent": f"hyperlocal/{__version__}"},
        )
        self._clients.append(client)
        context = ProviderContext(
            name=name,
            key=str(config.key),
            base_url=str(config.base_url),
            http=client,
            webhook_secret=secret.get_secret_value() if secret is not None else None,
            jwks_url=settings.fal_jwks_url if name == "fal" else None,
            poll_interval=settings.provider_poll_interval,
            stream_status=settings.provider_status_stream,
        )
        return self._factories[name](context)

    async def aclose(self) -> None:
        providers, self._providers = list(self._providers.values()), {}
        for provider in providers:
            await provider.aclose()
        clients, self._clients = self._clients, []
        for client in clients:
            await client.aclose()


def _limits(cap: int) -> httpx.Limits:
    """Connections for ``cap`` jobs in flight: each may hold one open for its status stream
    while it submits, polls or cancels on another, so the pool never makes a job wait."""
    return httpx.Limits(max_connections=2 * cap + 8, max_keepalive_connections=cap + 8)
