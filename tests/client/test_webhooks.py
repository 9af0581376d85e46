"""``verify_webhook``: signatures made by the server's own ``sign``, and a real delivery."""

from __future__ import annotations

import base64
import json
import secrets
import time
from collections.abc import Callable

import pytest

from hyperlocal.client import Client, WebhookVerificationError, verify_webhook
from hyperlocal.core.webhooks import sign
from tests.client.conftest import Live
from tests.receiver import running_receiver

SECRET = "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()
PAYLOAD = json.dumps({"status": "completed", "jobId": "job_1", "outputUrl": "http://x/v.mp4"})


def _headers(
    payload: str = PAYLOAD, *, at: int | None = None, secret: str = SECRET
) -> dict[str, str]:
    timestamp = int(time.time()) if at is None else at
    return {
        "webhook-id": "msg_1",
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(secret, "msg_1", timestamp, payload),
    }


def test_genuine_delivery_returns_the_payload() -> None:
    assert verify_webhook(PAYLOAD.encode(), _headers(), SECRET)["jobId"] == "job_1"
    upper = {k.title(): v for k, v in _headers().items()}  # header names in any case
    assert verify_webhook(PAYLOAD, upper, SECRET)["status"] == "completed"


def test_rotated_secrets_any_matching_v1_signature_passes() -> None:
    headers = _headers()
    other = sign("whsec_" + base64.b64encode(b"x" * 24).decode(), "msg_1", 1, PAYLOAD)
    headers["webhook-signature"] = f"v2,abc {other} {headers['webhook-signature']}"
    assert verify_webhook(PAYLOAD.encode(), headers, SECRET)["jobId"] == "job_1"


OTHER_SECRET = "whsec_" + base64.b64encode(b"k" * 24).decode()
# Headers are made when the test runs, not when it is collected: timestamps must be fresh.
CASES: dict[str, tuple[str, Callable[[], dict[str, str]], str]] = {
    "tampered": (PAYLOAD.replace("completed", "failed"), _headers, "no matching signature"),
    "wrong-secret": (PAYLOAD, lambda: _headers(secret=OTHER_SECRET), "no matching signature"),
    "stale": (PAYLOAD, lambda: _headers(at=int(time.time()) - 301), "too old"),
    "future": (PAYLOAD, lambda: _headers(at=int(time.time()) + 301), "too new"),
    "bad-timestamp": (PAYLOAD, lambda: {**_headers(), "webhook-timestamp": "soon"}, "timestamp"),
    "missing": (PAYLOAD, lambda: {"webhook-id": "msg_1"}, "missing header"),
    "empty-signature": (
        PAYLOAD,
        lambda: {**_headers(), "webhook-signature": "v1,"},
        "no matching signature",
    ),
    "not-json": ("{nope", lambda: _headers("{nope"), "not JSON"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_refused(case: str) -> None:
    payload, headers, message = CASES[case]
    with pytest.raises(WebhookVerificationError, match=message):
        verify_webhook(payload.encode(), headers(), SECRET)


def test_tolerance_is_configurable() -> None:
    old = _headers(at=int(time.time()) - 3600)
    with pytest.raises(WebhookVerificationError):
        verify_webhook(PAYLOAD, old, SECRET)
    assert verify_webhook(PAYLOAD, old, SECRET, tolerance=7200)["jobId"] == "job_1"


def test_a_real_delivery_verifies_with_the_keys_secret(live: Live) -> None:
    issued = live.issue()
    with running_receiver() as receiver, Client(live.url, issued.key) as client:
        accepted = client.videos.generate(
            "test-slow-video", prompt="x", seconds=0.1, webhook_url=receiver.url("hook")
        )
        client.jobs.wait(accepted.job_id, timeout=20)
        deadline = time.monotonic() + 10
        while not receiver.on("hook") and time.monotonic() < deadline:
            time.sleep(0.05)
    hit = receiver.on("hook")[0]
    payload = verify_webhook(hit.body, hit.headers, issued.webhook_secret)
    assert payload["jobId"] == accepted.job_id and payload["status"] == "completed"
    with pytest.raises(WebhookVerificationError):
        verify_webhook(hit.body + b" ", hit.headers, issued.webhook_secret)
