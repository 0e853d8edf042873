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
        return orjson.dumps(item, default=str).decode()


def setup_logging(level: str = "info") -> None:
    """Send every log record to stderr as JSON lines."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)


def event(name: str, *, level: int = logging.INFO, **fields: Any) -> None:
    """Log a named event with fields (e.g. the `listening` line that tests and scripts wait for)."""
    logging.getLogger("outrider").log(
        level, name, extra={"fields": {"event": name, "t": time.time(), **fields}}
    )
