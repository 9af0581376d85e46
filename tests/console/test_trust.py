"""Issue 20, as a new user meets the console at 1280 px and at 390x844: honest states and
prices, work that survives navigation, ids and timings that agree, failures that say so, and a
layout that fits. Each step saves a screenshot under tests/console/screenshots/."""

from __future__ import annotations

import re

import httpx
import pytest

pytest.importorskip("playwright.sync_api", reason="the browser tests need `pip install playwright`")

from playwright.sync_api import Page, Route, expect

from tests.console.conftest import UPLOAD_CAP, USER_CREDITS, Console, screenshot, sign_in

DESKTOP = {"width": 1280, "height": 800}
MOBILE = {"width": 390, "height": 844}


def _too_wide(page: Page, selector: str = "html") -> int:
    """How many pixels ``selector``'s content sticks out sideways (0 when it fits)."""
    return int(
        page.evaluate(
            "s => { const e = document.querySelector(s); return e.scrollWidth - e.clientWidth }",
            selector,
        )
    )


def _sign_in_again(page: Page, console: Console, key: str) -> None:
    """Signs out (the key lives in the tab's session storage) and in with ``key``, at any size."""
    page.goto(console.url)
    page.evaluate("sessionStorage.clear()")
    page.reload()
    page.fill("input[name=api-key]", key)
    page.click("button[type=submit]")
    page.wait_for_selector("[data-testid=key-name]", state="attached")


def _headers(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def test_cancelled_reads_canceled_and_work_survives_navigation(
    page: Page, console: Console
) -> None:
    page.set_viewport_size(DESKTOP)
    sign_in(page, console, console.user_key)
    page.get_by_role("link", name="Video", exact=True).click()
    page.select_option("#model", "test-slow-video")
    page.fill("textarea[name=prompt]", "a long shot of the sea")
    page.fill("input[name=seconds]", "30")
    page.get_by_role("button", name="Generate").click()
    result = page.locator(".result-card")
    job_id = page.get_by_test_id("job-link").inner_text()
    result.get_by_role("button", name="Cancel").click()
    expect(result.locator("[data-state=canceled]")).to_have_text("Canceled")
    expect(result.locator("[data-state=canceled]")).to_have_class(re.compile("badge-neutral"))
    expect(page.get_by_test_id("canceled-note")).to_contain_text("10 credits")
    expect(page.get_by_test_id("canceled-note")).to_contain_text("refunded")
    expect(result).not_to_contain_text("failed")
    expect(page.get_by_test_id("credits")).to_have_text(f"{USER_CREDITS:,} credits")
    screenshot(page, "30-video-canceled")

    page.get_by_role("link", name="Jobs").click()
    row = page.locator(f"tr[data-job={job_id}]")
    expect(row.locator("[data-state=canceled]")).to_have_text("Canceled")
    expect(row).not_to_contain_text("Failed")

    page.get_by_role("link", name="Video", exact=True).click()  # the form and result are kept
    expect(page.locator("#model")).to_have_value("test-slow-video")
    expect(page.locator("textarea[name=prompt]")).to_have_value("a long shot of the sea")
    expect(page.get_by_test_id("job-link")).to_have_text(job_id)

    page.get_by_role("link", name="Chat", exact=True).click()
    page.get_by_label("Model").select_option("test-preview-chat")
    page.get_by_placeholder("Send a message").fill("Hello console")
    page.keyboard.press("Enter")
    expect(page.locator(".bubble.assistant .bubble-meta")).to_have_text("2 credits")
    page.get_by_role("link", name="Jobs").click()
    page.get_by_role("link", name="Chat", exact=True).click()  # the conversation is kept
    expect(page.locator(".bubble.user")).to_have_text(re.compile("Hello console"))
    expect(page.locator(".bubble.assistant .bubble-meta")).to_have_text("2 credits")


def test_prices_are_quoted_by_the_server_and_notes_stay_internal(
    page: Page, console: Console
) -> None:
    page.set_viewport_size(DESKTOP)
    sign_in(page, console, console.user_key)
    page.goto(f"{console.url}#/playground/video?model=seedance-2-0-fast-i2v")
    estimate = page.get_by_test_id("estimate")
    expect(estimate).to_have_text("70 credits")  # the default 720p, as the submit charges it
    option = page.locator("#model option[value=seedance-2-0-fast-i2v]")
    expect(option).to_have_text("Seedance 2.0 Fast (image to video) — 70 credits")
    page.get_by_role("radio", name="480p").click()
    expect(estimate).to_have_text("28 credits")
    page.fill("input[name=duration]", "10")
    expect(estimate).to_have_text("56 credits")
    page.fill("input[name=duration]", "60")
    expect(page.locator(".cost-problem")).to_have_text("duration: must be between 5 and 10")
    assert _too_wide(page, ".model-select-display") == 0  # the long name is not cut off
    screenshot(page, "31-video-quoted-price")

    page.goto(f"{console.url}#/playground/image?model=flux-1-schnell")
    page.get_by_text("More options").click()
    main = page.locator("main")
    expect(page.locator("[data-field=prompt]")).to_be_visible()
    for internal in ("inferred", "guess", "ignored", "source image"):
        expect(main).not_to_contain_text(internal)
    expect(page.locator("[data-field=mode], [data-field=image]")).to_have_count(0)
    page.goto(f"{console.url}#/models")
    expect(page.locator(".model-card").first).to_be_visible()
    expect(main).not_to_contain_text("inferred")

    page.goto(f"{console.url}#/playground/audio?model=audio-tts")
    expect(page.locator("select[name=voice] option")).to_have_text(["Default", "en_US-joe-medium"])

    page.goto(f"{console.url}#/playground/image?model=gemini-3-1-flash-t2i")
    page.fill("textarea[name=prompt]", "   ")
    expect(page.locator("[data-field=prompt] .field-count")).to_have_text("3 / 2,500")
    page.get_by_role("button", name="Generate").click()
    expect(page.locator("[data-field=prompt] .field-error")).to_contain_text("spaces alone")
    expect(page.get_by_text("Your image will appear here")).to_be_visible()  # nothing was sent
    screenshot(page, "32-blank-prompt")


def test_ids_and_timings_agree_and_failed_checks_say_so(page: Page, console: Console) -> None:
    page.set_viewport_size(DESKTOP)
    sign_in(page, console, console.user_key)
    page.fill("textarea[name=prompt]", "a red door")
    page.get_by_role("button", name="Generate").click()
    expect(page.get_by_test_id("result-image")).to_be_visible()
    job_id = page.get_by_test_id("job-link").inner_text()
    took = page.get_by_test_id("took").inner_text().strip()
    result_id = page.get_by_test_id("result-id").inner_text()
    page.goto(f"{console.url}#/jobs/{result_id}")  # the res_ id finds the job too
    expect(page.get_by_role("heading", name=job_id)).to_be_visible()
    expect(page.locator("dd[data-testid=job-took]")).to_have_text(took)
    expect(page.get_by_test_id("job-prompt")).to_have_text("a red door")
    page.get_by_role("link", name="All jobs").click()
    expect(page.locator(f"tr[data-job={job_id}] [data-testid=job-took]")).to_have_text(took)

    submitted = httpx.post(
        f"{console.base}/v1/videos/generate",
        json={"model": "test-slow-video", "input": {"prompt": "x", "seconds": 30}},
        headers=_headers(console.user_key),
    )
    slow = submitted.json()["jobId"]
    reads: list[str] = []

    def broken(route: Route) -> None:
        reads.append(route.request.url)
        if len(reads) == 1 and not route.request.url.endswith("/events"):
            route.continue_()  # the page's first read works; every status check after fails
        else:
            route.fulfill(status=500, json={"error": "the database is down"})

    page.route(re.compile(rf"/v1/jobs/{slow}(/events)?$"), broken)
    page.goto(f"{console.url}#/jobs/{slow}")
    alert = page.get_by_role("alert").filter(has_text="Could not check this job's status")
    expect(alert).to_contain_text("the database is down")
    screenshot(page, "33-job-status-check-failed")
    page.unroute_all()
    alert.get_by_role("button", name="Retry").click()
    expect(alert).to_have_count(0)
    httpx.post(f"{console.base}/v1/jobs/{slow}/cancel", headers=_headers(console.user_key))
    expect(page.get_by_test_id("job-status")).to_have_text("canceled")

    def one_bad_job(route: Route) -> None:
        listed = route.fetch().json()
        bad = {**listed["data"][0], "jobId": "job_unreadable", "createdAt": "yesterday"}
        route.fulfill(json={**listed, "data": [bad, *listed["data"]]})

    page.route(re.compile(r"/v1/jobs\?limit="), one_bad_job)
    page.get_by_role("link", name="All jobs").click()
    expect(page.get_by_test_id("unreadable-job")).to_contain_text("job_unreadable")
    expect(page.locator(f"tr[data-job={job_id}]")).to_be_visible()
    screenshot(page, "34-jobs-one-bad-job")


def test_layout_fits_at_1280_and_390(page: Page, console: Console) -> None:
    page.set_viewport_size(DESKTOP)
    sign_in(page, console, console.admin_key)
    page.get_by_role("link", name="API keys").click()
    keys = page.get_by_test_id("keys-table")
    expect(keys).to_contain_text("design-team")
    assert _too_wide(page, ".table-wrap") == 0  # no sideways scrolling
    expect(
        keys.locator("tr", has_text="ops-admin").get_by_role("button", name="Revoke")
    ).to_have_count(0)
    expect(
        keys.locator("tr", has_text="design-team").get_by_role("button", name="Revoke")
    ).to_be_in_viewport()
    screenshot(page, "35-admin-keys-1280")
    page.get_by_role("link", name="Catalogue notes").click()
    expect(
        page.get_by_test_id("notes-table").locator("tr[data-model=flux-1-schnell]")
    ).to_contain_text("guess")

    page.set_viewport_size(MOBILE)
    _sign_in_again(page, console, console.user_key)
    page.fill("textarea[name=prompt]", "a small boat")
    page.get_by_role("button", name="Generate").click()
    expect(page.get_by_test_id("result-image")).to_be_in_viewport()  # scrolled to the result
    screenshot(page, "36-mobile-image-result")
    job_id = page.get_by_test_id("job-link").inner_text()

    page.goto(f"{console.url}#/jobs")
    row = page.locator(f"tr[data-job={job_id}]")
    expect(row.locator(".job-cell-more")).to_contain_text("gemini-3-1-flash-t2i")
    assert _too_wide(page) == 0, "the jobs page is wider than the phone"
    screenshot(page, "37-mobile-jobs")
    row.click()
    expect(page.get_by_test_id("job-prompt")).to_be_visible()
    assert _too_wide(page) == 0, "the job page is wider than the phone"
    screenshot(page, "38-mobile-job")

    page.goto(f"{console.url}#/chat")
    composer = page.get_by_placeholder("Send a message")
    placeholder_fits = "e => { e.value = ''; return e.scrollHeight <= e.clientHeight }"
    assert composer.evaluate(placeholder_fits), "the chat placeholder is clipped"
    screenshot(page, "39-mobile-chat")


def test_small_things(page: Page, console: Console) -> None:
    page.set_viewport_size(DESKTOP)
    asked: list[str] = []
    page.on("request", lambda request: asked.append(request.url))
    sign_in(page, console, console.user_key)
    expect(page.get_by_test_id("key-name")).to_have_text("design-team")
    assert not [u for u in asked if "/admin/" in u], "a user's sign-in asked the admin API"

    # A stopped reply says so, keeps its credits, and its job is not "Completed".
    page.get_by_role("link", name="Chat", exact=True).click()
    page.get_by_label("Model").select_option("test-slow-chat")
    page.get_by_placeholder("Send a message").fill("Tell me a long story")
    page.keyboard.press("Enter")
    expect(page.locator(".bubble.assistant .bubble-text")).to_contain_text("slowly slowly")
    page.get_by_role("button", name="Stop").click()
    reply = page.locator(".bubble.assistant")
    expect(reply.locator(".bubble-stopped")).to_have_text("stopped")
    expect(reply.locator(".bubble-meta")).to_contain_text("3 credits")
    screenshot(page, "40-chat-stopped")
    page.get_by_role("link", name="Jobs").click()
    chat_row = page.locator("tr[data-job^=chatcmpl-]")
    expect(chat_row.locator("[data-state=stopped]")).to_have_text("Stopped")

    # A running job with no progress yet shows no "0%".
    page.goto(f"{console.url}#/playground/video?model=test-slow-video")
    page.fill("textarea[name=prompt]", "slow")
    page.fill("input[name=seconds]", "30")
    page.get_by_role("button", name="Generate").click()
    expect(page.get_by_test_id("working")).to_contain_text("Generating video…")
    expect(page.get_by_test_id("working")).not_to_contain_text("0%")
    page.locator(".result-card").get_by_role("button", name="Cancel").click()

    # A typed URL is left to the server; a file too big for the server is refused here.
    page.goto(f"{console.url}#/playground/image_edit")
    page.fill("#field-images", "http://127.0.0.1:9/cat.png")
    page.get_by_role("button", name="Add").click()
    expect(page.locator(".thumb .media-remote")).to_have_count(1)
    assert not [u for u in asked if u.startswith("http://127.0.0.1:9/")], "the browser loaded it"
    big = {"name": "huge.png", "mimeType": "image/png", "buffer": b"\0" * (UPLOAD_CAP + 2**20)}
    page.locator("[data-field=images] input[type=file]").set_input_files(big)
    refused = page.locator("[data-field=images] .field-error")
    expect(refused).to_contain_text("huge.png is 3.0 MB; this server takes files up to 2.0 MB")
    screenshot(page, "41-upload-refused")

    # A key without credits is told so, and how to get some, before it can press Generate.
    empty = httpx.post(
        f"{console.base}/admin/keys",
        json={"name": "empty-pockets", "credits": 0},
        headers=_headers(console.admin_key),
    ).json()["key"]
    _sign_in_again(page, console, empty)
    page.fill("textarea[name=prompt]", "anything")
    expect(page.get_by_test_id("no-credits")).to_contain_text("operator")
    expect(page.get_by_role("button", name="Generate")).to_be_disabled()
    screenshot(page, "42-no-credits")
