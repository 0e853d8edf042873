"""Structured logs: one JSON object per line on stderr.

Usage: setup_logging("info"); event("listening", service="outrider", address="127.0.0.1:8080")
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Any

import orjson


class JsonFormatter(logging.Formatter):
    """Formats a record as `{"ts", "level", "logger", "event"/"msg", ...extra}`."""

    def format(self, record: logging.LogRecord) -> str:
        """One JSON line."""
        item: dict[str, Any] = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            item.update(fields)
        else:
            item["msg"] = record.getMessage()
        if record.exc_info:
            item["exc"] = self.formatException(record.exc_info)
        # Dataclasses go to `str` too: orjson crashes the process on compiled ones (docs/dataplane.md)
        return orjson.dumps(item, default=str, option=orjson.OPT_PASSTHROUGH_DATACLASS).decode()


class ClientErrorThrottle(logging.Filter):
    """aiohttp logs every malformed request at ERROR with a traceback: a client could fill the disk with them.
    Let one line through per `every_s` seconds, without the traceback, saying how many were suppressed."""

    def __init__(self, every_s: float = 10.0) -> None:
        super().__init__()
        self.every_s = every_s
        self.last = -float("inf")
        self.suppressed = 0

    def filter(self, record: logging.LogRecord) -> bool:
        """True for the first record of each window (rewritten as a short warning)."""
        now = time.monotonic()
        if now - self.last < self.every_s:
            self.suppressed += 1
            return False
        self.last = now
        exc = record.exc_info[1] if record.exc_info else None
        record.levelno, record.levelname = logging.WARNING, "WARNING"
        record.msg, record.args, record.exc_info, record.exc_text = (
            "client error: %s (%d more suppressed in the last window)",
            (f"{type(exc).__name__}: {exc}" if exc else record.getMessage(), self.suppressed),
            None,
            None,
        )
        self.suppressed = 0
        return True


def setup_logging(level: str = "info") -> None:
    """Send every log record to stderr as JSON lines."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    logging.getLogger("aiohttp.server").addFilter(ClientErrorThrottle())


def event(name: str, *, level: int = logging.INFO, **fields: Any) -> None:
    """Log a named event with fields (e.g. the `listening` line that tests and scripts wait for)."""
    logging.getLogger("outrider").log(
        level, name, extra={"fields": {"event": name, "t": time.time(), **fields}}
    )
