"""The console end to end: a real Chromium against a real server, as a user and as the admin.

Each step saves a screenshot under tests/console/screenshots/.
"""

from __future__ import annotations

import time

import httpx
import pytest

pytest.importorskip("playwright.sync_api", reason="the browser tests need `pip install playwright`")

from playwright.sync_api import Page, expect

from tests.console.conftest import USER_CREDITS, Console, screenshot, sign_in
from tests.receiver import running_receiver


def test_sign_in_shows_the_wire_error_then_the_account(page: Page, console: Console) -> None:
    page.goto(console.url)
    screenshot(page, "01-login")
    page.fill("input[name=api-key]", "ck_not-a-key")
    page.click("button[type=submit]")
    expect(page.locator(".wire-error")).to_have_text(
        "Unauthorized. Please log in or provide a valid API key."
    )
    screenshot(page, "02-login-error")

    page.fill("input[name=api-key]", console.user_key)
    page.click("button[type=submit]")
    expect(page.get_by_test_id("key-name")).to_have_text("design-team")
    expect(page.get_by_test_id("credits")).to_have_text(f"{USER_CREDITS:,} credits")
    expect(page.get_by_role("link", name="API keys")).to_have_count(0)  # not the admin

    page.reload()  # the key is kept for this tab
    expect(page.get_by_test_id("key-name")).to_have_text("design-team")


def test_generate_an_image_and_see_it(page: Page, console: Console) -> None:
    sign_in(page, console, console.user_key)
    expect(page.get_by_role("heading", name="Image playground")).to_be_visible()
    screenshot(page, "03-image-playground")
    page.select_option("#model", "gemini-3-1-flash-t2i")
    expect(page.get_by_test_id("estimate")).to_have_text("4 credits")
    page.fill("textarea[name=prompt]", "a lighthouse at dusk")
    page.get_by_role("radio", name="jpeg").click()
    page.get_by_role("button", name="Generate").click()

    image = page.get_by_test_id("result-image")
    expect(image).to_be_visible()
    page.wait_for_function("document.querySelector('[data-testid=result-image]').naturalWidth > 0")
    assert (image.get_attribute("src") or "").endswith(".jpg")
    expect(page.get_by_test_id("credits")).to_have_text(f"{USER_CREDITS - 4:,} credits")
    screenshot(page, "04-image-result")


def test_a_failed_generation_shows_the_wire_error(page: Page, console: Console) -> None:
    sign_in(page, console, console.user_key)
    page.select_option("#model", "test-fail-t2i")
    page.fill("textarea[name=prompt]", "anything")
    page.get_by_role("button", name="Generate").click()
    expect(page.locator(".wire-error")).to_have_text("the model ran out of memory")
    expect(page.locator(".alert-code")).to_have_text("E1001")
    expect(page.get_by_test_id("credits")).to_have_text(f"{USER_CREDITS:,} credits")  # refunded
    screenshot(page, "05-image-error")


def test_a_video_job_goes_live_from_processing_to_completed(page: Page, console: Console) -> None:
    sign_in(page, console, console.user_key)
    page.get_by_role("link", name="Video", exact=True).click()
    page.select_option("#model", "test-slow-video")
    page.fill("textarea[name=prompt]", "waves on rocks")
    page.fill("input[name=seconds]", "4")
    page.fill("input[name=duration]", "10")
    expect(page.get_by_test_id("estimate")).to_have_text("20 credits")
    page.get_by_role("button", name="Generate").click()

    job_id = page.get_by_test_id("job-link").inner_text()
    expect(page.get_by_test_id("working")).to_be_visible()
    page.wait_for_function(  # a progress event arrived over the stream
        "document.querySelector('[role=progressbar]')?.getAttribute('aria-valuenow') > 0"
    )
    screenshot(page, "06-video-processing")

    page.get_by_role("link", name="Jobs").click()
    row = page.locator(f"tr[data-job={job_id}]")
    expect(row).to_have_attribute("data-status", "processing")
    screenshot(page, "07-jobs-processing")
    # No reload and well inside the list's 20 s refresh: the row follows the job's events.
    expect(row).to_have_attribute("data-status", "completed", timeout=15_000)
    expect(row).to_contain_text("Completed")
    screenshot(page, "08-jobs-completed")

    row.click()
    expect(page.get_by_test_id("job-status")).to_have_text("completed")
    expect(page.get_by_text("No deliveries")).to_be_visible()
    page.wait_for_function("document.querySelector('.output-image')?.naturalWidth > 0")
    screenshot(page, "09-job-detail")

    page.get_by_role("link", name="Credits & ledger").click()
    ledger = page.get_by_test_id("ledger-table")
    expect(ledger.locator("tbody tr").first).to_contain_text(job_id)
    expect(ledger.locator("tbody tr").first).to_contain_text("-20")
    expect(page.get_by_test_id("balance")).to_have_text(f"{USER_CREDITS - 20:,}")
    screenshot(page, "10-credits-ledger")


def test_admin_creates_a_key_that_is_shown_once(page: Page, console: Console) -> None:
    sign_in(page, console, console.admin_key)
    page.get_by_role("link", name="API keys").click()
    keys = page.get_by_test_id("keys-table")
    expect(keys).to_contain_text("design-team")
    screenshot(page, "11-admin-keys")

    page.get_by_role("button", name="Create key").first.click()
    page.fill("input[name=name]", "marketing-site")
    page.fill("input[name=credits]", "250")
    screenshot(page, "12-admin-create-key")
    page.locator(".modal-footer").get_by_role("button", name="Create key").click()

    new_key = page.get_by_test_id("new-key").inner_text()
    secret = page.get_by_test_id("new-webhook-secret").inner_text()
    assert new_key.startswith("ck_")
    assert secret.startswith("whsec_")
    screenshot(page, "13-admin-key-created")
    account = httpx.get(
        f"{console.base}/v1/account", headers={"Authorization": f"Bearer {new_key}"}
    )
    assert account.json()["keyName"] == "marketing-site"
    assert account.json()["credits"] == 250

    page.get_by_role("button", name="I have saved it").click()
    row = keys.locator("tr", has_text="marketing-site")
    expect(row).to_contain_text("250")
    assert new_key not in page.content()  # shown once, then gone

    row.get_by_role("button", name="Grant").click()
    page.fill("input[name=credits]", "1000")
    page.locator(".modal-footer").get_by_role("button", name="Grant credits").click()
    expect(row).to_contain_text("1,250")

    row.get_by_role("button", name="Revoke").click()
    page.get_by_role("button", name="Revoke key").click()
    expect(row).to_have_count(0)  # revoked keys are hidden by default
    revoked = httpx.get(
        f"{console.base}/v1/account", headers={"Authorization": f"Bearer {new_key}"}
    )
    assert revoked.status_code == 401


def test_admin_sees_usage_per_key(page: Page, console: Console) -> None:
    headers = {"Authorization": f"Bearer {console.user_key}"}
    for prompt in ("one", "two"):
        answer = httpx.post(
            f"{console.base}/v1/images/generate",
            json={"prompt": prompt},
            headers=headers,
            timeout=30,
        )
        assert answer.status_code == 200, answer.text
    sign_in(page, console, console.admin_key)
    page.get_by_role("link", name="Usage").click()
    chart = page.get_by_test_id("usage-chart")
    expect(chart.locator("svg rect[fill]")).to_have_count(1)  # one bar: this hour, one key
    usage = page.locator("table tr", has_text="design-team")
    expect(usage).to_contain_text("8")
    screenshot(page, "14-admin-usage")


def test_a_3d_result_renders_in_the_viewer(page: Page, console: Console) -> None:
    sign_in(page, console, console.user_key)
    page.get_by_role("link", name="3D", exact=True).click()
    page.select_option("#model", "meshy6-text-to-3d")
    page.fill("textarea[name=prompt]", "a small wooden chair")
    page.get_by_role("button", name="Generate").click()
    viewer = page.locator(".viewer3d")
    expect(viewer).to_have_attribute("data-state", "ready", timeout=30_000)  # GLB parsed
    expect(viewer.locator("canvas")).to_be_visible()
    screenshot(page, "15-3d-result")


PAGES = [
    ("playground/image_edit", "Image edit playground", "16-image-edit"),
    ("playground/audio", "Audio playground", "17-audio"),
    ("playground/3d", "3D playground", "18-3d"),
    ("chat", "Chat", "19-chat"),
    ("models", "Models", "20-models"),
    ("jobs", "Jobs", "21-jobs-empty"),
]


def test_every_page_renders(page: Page, console: Console) -> None:
    sign_in(page, console, console.user_key)
    for route, title, name in PAGES:
        page.goto(f"{console.url}#/{route}")
        expect(page.get_by_role("heading", name=title, exact=True)).to_be_visible()
        expect(page.locator(".loading")).to_have_count(0)
        screenshot(page, name)
    page.goto(f"{console.url}#/no-such-page")
    expect(page.get_by_role("heading", name="Page not found")).to_be_visible()

    page.get_by_role("button", name="Toggle dark mode").click()
    page.goto(f"{console.url}#/billing")
    expect(page.get_by_test_id("ledger-table")).to_be_visible()
    assert page.evaluate("document.documentElement.dataset.theme") == "dark"
    screenshot(page, "22-dark-billing")

    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(f"{console.url}#/playground/video")
    expect(page.locator(".sidebar")).not_to_be_in_viewport()
    page.get_by_role("button", name="Open navigation").click()
    expect(page.locator(".sidebar")).to_be_in_viewport()
    screenshot(page, "23-mobile-nav")


def test_chat_streams_a_reply(page: Page, console: Console) -> None:
    sign_in(page, console, console.user_key)
    page.get_by_role("link", name="Chat", exact=True).click()
    page.get_by_label("Model").select_option("test-preview-chat")
    page.get_by_placeholder("Send a message").fill("Hello console")
    page.keyboard.press("Enter")
    reply = page.locator(".bubble.assistant")
    expect(reply.locator(".bubble-meta")).to_have_text("2 credits")  # the last chunk's creditsUsed
    expect(reply.locator(".bubble-text")).to_contain_text('Your last message was: "Hello console"')
    expect(page.get_by_test_id("credits")).to_have_text(f"{USER_CREDITS - 2:,} credits")
    screenshot(page, "24-chat")


def test_webhook_deliveries_are_listed_per_job(page: Page, console: Console) -> None:
    with running_receiver() as receiver:
        sign_in(page, console, console.user_key)
        page.goto(f"{console.url}#/playground/video?model=test-slow-video")
        page.fill("textarea[name=prompt]", "a webhook please")
        page.fill("input[name=seconds]", "0.2")
        page.get_by_text("More options").click()
        page.fill("input[name=webhook_url]", receiver.url("hook"))
        page.get_by_role("button", name="Generate").click()
        expect(page.locator(".result").get_by_text("Completed")).to_be_visible()
        deadline = time.monotonic() + 15
        while not receiver.on("hook"):
            assert time.monotonic() < deadline, "the webhook never arrived"
            time.sleep(0.05)

        page.get_by_test_id("job-link").click()
        deliveries = page.locator("section", has_text="Webhook deliveries")
        expect(deliveries.locator("tbody tr")).to_have_count(1)
        expect(deliveries.locator("tbody tr")).to_contain_text("200")
        expect(deliveries.locator("tbody tr")).to_contain_text(receiver.url("hook"))
        deliveries.scroll_into_view_if_needed()
        screenshot(page, "25-job-webhook-deliveries")


def test_a_link_to_a_model_never_shows_the_last_models_form(page: Page, console: Console) -> None:
    """Text typed into the playground right after following a model link must not land in a
    form about to be replaced: the linked model's form is the first one shown."""
    sign_in(page, console, console.user_key)
    page.goto(f"{console.url}#/playground/image?model=flux-1-schnell")  # now the kept one
    expect(page.locator("#model")).to_have_value("flux-1-schnell")
    page.goto(f"{console.url}#/models")
    expect(page.locator(".model-card").first).to_be_visible()
    page.evaluate(
        """() => {
            window.shownModels = [];
            new MutationObserver(() => {
                const select = document.querySelector("#model");
                if (select) window.shownModels.push(select.value);
            }).observe(document.body, {childList: true, subtree: true, attributes: true});
        }"""
    )
    page.goto(f"{console.url}#/playground/image?model=gemini-3-1-flash-t2i")
    expect(page.locator("#model")).to_have_value("gemini-3-1-flash-t2i")
    shown = page.evaluate("() => window.shownModels")
    assert shown and set(shown) == {"gemini-3-1-flash-t2i"}, shown


def test_text_typed_as_the_playground_first_shows_is_counted(page: Page, console: Console) -> None:
    """A keystroke that lands after the form first shows, before the page has subscribed to
    its kept values, still reaches the page (its counter, and what Generate sends)."""
    sign_in(page, console, console.user_key)
    page.goto(f"{console.url}#/playground/audio?model=audio-tts")
    expect(page.locator("select[name=voice] option")).to_have_text(["Default", "en_US-joe-medium"])
    page.evaluate(
        """async () => {
            location.hash = "#/playground/image?model=gemini-3-1-flash-t2i";
            let box = null;
            for (let i = 0; i < 1000 && !box; i++) {
                await new Promise((resolve) => setTimeout(resolve, 0));
                box = document.querySelector("textarea[name=prompt]");
            }
            box.value = "   ";
            box.dispatchEvent(new Event("input", {bubbles: true}));
        }"""
    )
    expect(page.locator("[data-field=prompt] .field-count")).to_have_text("3 / 2,500")
