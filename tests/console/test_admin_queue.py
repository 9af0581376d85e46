"""The admin's Queue & costs page in a real Chromium: queue and latency by model (refreshed while
it is open), credits against provider cost, the providers, and each model's route now.

Each step saves a screenshot under tests/console/screenshots/.
"""

from __future__ import annotations

import httpx
import pytest

pytest.importorskip("playwright.sync_api", reason="the browser tests need `pip install playwright`")

from playwright.sync_api import Page, expect

from tests.console.conftest import Console, screenshot, sign_in

IMAGE_MODEL = "gemini-3-1-flash-t2i"  # 4 credits, made by the built-in preview engine
HELD = {"model": "test-slow-video", "input": {"prompt": "waves", "seconds": 20}}


def _images(console: Console, n: int) -> None:
    headers = {"Authorization": f"Bearer {console.user_key}"}
    for i in range(n):
        body = {"model": IMAGE_MODEL, "prompt": f"image {i}"}
        answer = httpx.post(f"{console.base}/v1/images/generate", json=body, headers=headers)
        assert answer.status_code == 200, answer.text


def test_admin_sees_queue_and_costs_by_model(page: Page, console: Console) -> None:
    _images(console, 2)
    sign_in(page, console, console.admin_key)
    page.get_by_role("link", name="Queue & costs").click()
    expect(page.get_by_role("heading", name="Queue & costs", exact=True)).to_be_visible()

    queue = page.get_by_test_id("queue-table")
    image = queue.locator(f"tr[data-model={IMAGE_MODEL}]")
    expect(image.locator("[data-col=finished]")).to_have_text("2")
    expect(image.locator("[data-col=queued]")).to_have_text("0")
    cost = page.get_by_test_id("cost-table").locator(f"tr[data-model={IMAGE_MODEL}]")
    expect(cost.locator("[data-col=credits]")).to_have_text("8")
    expect(cost.locator("[data-col=charged]")).to_have_text("$0.08")  # 100 credits = $1
    expect(cost.locator("[data-col=margin]")).to_have_text("$0.08")  # no provider was paid
    fal = page.get_by_test_id("providers-table").locator("tr[data-provider=fal]")
    expect(fal).to_contain_text("not configured")
    expect(fal.locator("[data-state]")).to_have_attribute("data-state", "closed")
    screenshot(page, "26-admin-queue")

    # A job submitted while the page is open shows up running, with no reload.
    headers = {"Authorization": f"Bearer {console.user_key}", "Prefer": "respond-async"}
    held = httpx.post(f"{console.base}/v1/videos/generate", json=HELD, headers=headers)
    assert held.status_code == 202, held.text
    try:
        video = queue.locator("tr[data-model=test-slow-video]")
        expect(video.locator("[data-col=running]")).to_have_text("1", timeout=20_000)
        screenshot(page, "27-admin-queue-running")
    finally:
        cancel = f"{console.base}/v1/jobs/{held.json()['jobId']}/cancel"
        httpx.post(cancel, headers=headers)
    expect(video.locator("[data-col=finished]")).to_have_text("1", timeout=20_000)  # canceled
    expect(video.locator("[data-col=running]")).to_have_text("0")


def test_admin_models_show_the_route_now(page: Page, console: Console) -> None:
    sign_in(page, console, console.admin_key)
    page.get_by_role("link", name="Catalogue notes").click()
    row = page.get_by_test_id("notes-table").locator(f"tr[data-model={IMAGE_MODEL}]")
    expect(row.get_by_test_id("active-route")).to_contain_text("engine:preview-image")
    expect(row.get_by_test_id("active-route")).to_contain_text("fal:fal-ai/nano-banana-2")
    screenshot(page, "28-admin-model-routes")


def test_the_page_is_the_admin_keys_only(page: Page, console: Console) -> None:
    sign_in(page, console, console.user_key)
    expect(page.get_by_role("link", name="Queue & costs")).to_have_count(0)
    page.goto(f"{console.url}#/admin/queue")
    expect(page.get_by_role("heading", name="Page not found")).to_be_visible()
