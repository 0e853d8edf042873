"""Structured logging for the model server: one JSON object per line on stderr.

Usage: log_event("listening", service="modelserver", address="127.0.0.1:8000", model="digits")
"""

from __future__ import annotations

import sys

import orjson


def log_event(event: str, **fields: object) -> None:
    """Write `{"event": event, **fields}` as one line to stderr and flush (tests and supervisors tail it)."""
    line = orjson.dumps({"event": event, **fields}, default=str)
    sys.stderr.write(line.decode() + "\n")
    sys.stderr.flush()
