"""A real server on loopback and a real headless Chromium driven by Playwright.

The browser is Debian's ``chromium`` (``/usr/bin/chromium``), never one that Playwright
downloads. Each test gets its own server, keys and browser profile; the browser closes before
the server does, so no live event stream holds the server's shutdown.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
from collections.abc import AsyncGenerator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from hyperlocal import runtime
from hyperlocal.app import create_app
from hyperlocal.core import keys
from hyperlocal.core.keys import KeySpec
from hyperlocal.engines.base import EngineContext
from hyperlocal.engines.chat.base import ChatDelta, ChatRequest
from hyperlocal.engines.chat.preview import PreviewChatEngine
from hyperlocal.runtime import open_database
from hyperlocal.settings import Settings
from tests.conftest import SettingsFactory
from tests.support import TEST_CATALOG, TEST_ENGINES, free_port, serve_in_thread

if TYPE_CHECKING:
    from playwright.sync_api import Page

CHROMIUM = Path(os.environ.get("HYPERLOCAL_TEST_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = Path(__file__).parent / "screenshots"
USER_CREDITS = 1000
UPLOAD_CAP = 2 * 2**20


@dataclass(frozen=True)
class Console:
    base: str
    user_key: str
    admin_key: str

    @property
    def url(self) -> str:
        return f"{self.base}/console"


async def _issue_keys(settings: Settings) -> tuple[str, str]:
    # The server's own database object belongs to its event loop, in another thread: keys
    # are made beforehand, through a database opened on this loop.
    db = await open_database(settings)
    try:
        user = await keys.create_key(db, KeySpec("design-team", USER_CREDITS, 10_000, 15))
        admin = await keys.create_key(db, KeySpec("ops-admin", 0, 10_000, 15, True))
        return user.key, admin.key
    finally:
        await db.aclose()


# The chat stand-in streams a fixed reply word by word: the chat page without a language model.
# The slow one takes seconds over a long reply, so that a test can stop it halfway.
PREVIEW_CHAT = """
[[model]]
id = "test-preview-chat"
category = "chat"
name = "Preview chat"
engine = "preview-chat"
price = { kind = "per_message", credits = 2, chars_per_credit = 2000 }

[[model]]
id = "test-slow-chat"
category = "chat"
name = "Slow chat"
engine = "test-slow-chat"
price = { kind = "per_message", credits = 3, chars_per_credit = 2000 }
"""


class SlowChatEngine(PreviewChatEngine):
    """A long reply, a word every 50 ms."""

    def reply(self, request: ChatRequest) -> str:
        return " ".join(["slowly"] * 400)

    async def stream(self, request: ChatRequest) -> AsyncGenerator[ChatDelta, None]:
        async for delta in super().stream(request):
            yield delta
            await asyncio.sleep(0.05)


def _slow_chat(_context: EngineContext) -> SlowChatEngine:
    return SlowChatEngine()


@pytest.fixture
def console(
    make_settings: SettingsFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Console]:
    # Chat engines come from entry points only; the slow stand-in joins them for these tests.
    found = runtime.discover_chat_factories
    monkeypatch.setattr(
        runtime, "discover_chat_factories", lambda: {**found(), "test-slow-chat": _slow_chat}
    )
    catalog = tmp_path / "console-catalog.toml"
    catalog.write_text(TEST_CATALOG.read_text("utf-8") + PREVIEW_CHAT, "utf-8")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    # Output URLs must reach this very server, so the public URL is its loopback address. A
    # small cap on input files lets a test show a refused upload without moving 20 MB.
    settings = make_settings(public_url=base, catalog=catalog, fetch_max_bytes=UPLOAD_CAP)
    user, admin = asyncio.run(_issue_keys(settings))
    with serve_in_thread(create_app(settings, engines=TEST_ENGINES), port):
        yield Console(base, user, admin)


@pytest.fixture
def chromium() -> Path:
    """Debian's Chromium; without it the browser tests skip (scripts/system-deps installs it)."""
    if not CHROMIUM.is_file() or shutil.which(str(CHROMIUM)) is None:
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install -y chromium)")
    return CHROMIUM


@pytest.fixture
def page(chromium: Path, console: Console, tmp_path: Path) -> Iterator[Page]:
    """A fresh browser profile on a desktop-sized window; failing page scripts fail the test."""
    sync_api = pytest.importorskip("playwright.sync_api")
    errors: list[str] = []
    with sync_api.sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            tmp_path / "chromium-profile",
            executable_path=str(chromium),
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 1440, "height": 900},
            locale="en-US",
            timezone_id="UTC",
        )
        context.set_default_timeout(15_000)
        tab = context.pages[0] if context.pages else context.new_page()
        tab.on("pageerror", lambda exc: errors.append(str(exc)))
        try:
            yield tab
        finally:
            context.close()
    assert not errors, f"uncaught errors in the page: {errors}"


def screenshot(page: Page, name: str) -> Path:
    """Saves what the page looks like now under tests/console/screenshots/ (git-ignored)."""
    SCREENSHOTS.mkdir(exist_ok=True)
    path = SCREENSHOTS / f"{re.sub(r'[^a-z0-9-]+', '-', name.lower())}.png"
    page.screenshot(path=str(path), animations="disabled")
    return path


def sign_in(page: Page, console: Console, key: str) -> None:
    page.goto(console.url)
    page.fill("input[name=api-key]", key)
    page.click("button[type=submit]")
    page.wait_for_selector(".sidebar")
