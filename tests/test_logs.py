"""Log redaction and format, as units."""

from __future__ import annotations

import base64
import json
import logging
import secrets

from hyperlocal.logs import JsonFormatter, RedactingFilter, redact


def test_redacts_keys_secrets_and_bearer_tokens() -> None:
    for _ in range(50):  # base64 secrets contain + / = at random places
        secret = "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()
        key = "ck_" + secrets.token_urlsafe(32)
        text = redact(f"params=('{secret}', {key!r}) Authorization: Bearer {key}")
        assert secret[6:] not in text and key[3:] not in text
        assert "whsec_[redacted]" in text


def test_json_lines_carry_extras_and_stay_redacted() -> None:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "got %s", ("ck_abcdefghijkl",), None)
    record.job_id = "job_1"
    RedactingFilter().filter(record)
    line = json.loads(JsonFormatter().format(record))
    assert line["msg"] == "got ck_[redacted]" and line["job_id"] == "job_1"
    assert line["level"] == "info"
