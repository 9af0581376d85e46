"""``HYPERLOCAL_GC_FREEZE``: a started app sets what it holds aside from the garbage collector,
so a full collection no longer walks it, and gives it back when it stops."""

from __future__ import annotations

import gc
import time

from asgi_lifespan import LifespanManager

from hyperlocal.app import create_app
from tests.conftest import SettingsFactory
from tests.support import TEST_ENGINES


async def test_started_app_is_frozen_then_thawed(make_settings: SettingsFactory) -> None:
    gc.unfreeze()
    app = create_app(make_settings(gc_freeze=True), engines=TEST_ENGINES)
    async with LifespanManager(app):
        frozen = gc.get_freeze_count()
        assert frozen > 10_000  # modules, the app and its services
        started = time.perf_counter()
        gc.collect()
        full = time.perf_counter() - started
    assert gc.get_freeze_count() == 0
    started = time.perf_counter()
    gc.collect()
    unfrozen_full = time.perf_counter() - started
    assert full < unfrozen_full  # the frozen objects were not walked


async def test_tests_leave_it_off(make_settings: SettingsFactory) -> None:
    app = create_app(make_settings(), engines=TEST_ENGINES)
    async with LifespanManager(app):
        assert gc.get_freeze_count() == 0
