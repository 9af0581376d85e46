"""Fixtures of the provider adapters' tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    """The client an adapter is given, as the router gives it: no proxy from the environment."""
    async with httpx.AsyncClient(trust_env=False) as client:
        yield client
