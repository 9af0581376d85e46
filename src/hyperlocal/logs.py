"""Logging: rich on a terminal, JSON lines otherwise. Keys and secrets never reach a log."""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from typing import Any

__all__ = ["JsonFormatter", "RedactingFilter", "configure_logging", "redact"]

# Anything shaped like a key or secret we issue, plus bearer headers from any source.
_SECRET = re.compile(r"(ck_|whsec_)[A-Za-z0-9_\-+/=]{8,}|(?i:bearer)\s+[A-Za-z0-9._\-+/=]+")
# Libraries that log SQL (sqlalchemy.engine from INFO) and its parameters, and so row values
# such as webhook secrets: they stay at WARNING whatever the root level.
_PARAMETER_LOGGERS = ("aiosqlite", "asyncpg", "sqlalchemy.engine")
_STANDARD = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "taskName"}


def redact(text: str) -> str:
    return _SECRET.sub(lambda m: (m.group(1) or "Bearer ") + "[redacted]", text)


class RedactingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = redact(record.getMessage())
        record.args = None
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "ts": round(time.time(), 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        payload.update({k: v for k, v in record.__dict__.items() if k not in _STANDARD})
        if record.exc_info:
            payload["exc"] = self.formatException(record.exc_info)
        return redact(json.dumps(payload, default=str))


def configure_logging(level: str = "INFO", json_lines: bool | None = None) -> None:
    use_json = not sys.stderr.isatty() if json_lines is None else json_lines
    handler: logging.Handler
    if use_json:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(JsonFormatter())
    else:
        from rich.logging import RichHandler

        handler = RichHandler(rich_tracebacks=True, show_path=False)
    handler.addFilter(RedactingFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.getLogger("alembic").setLevel(logging.WARNING)  # "running migration" on every open
    for name in _PARAMETER_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
