"""What an OpenAI-compatible completion answer says about its tokens: when they came, how many, why it ended.

Usage (streamed, `text/event-stream`):
    tap = CompletionStream(clock=time.monotonic)
    for chunk in body: tap.feed(chunk)        # cut anywhere; cheap: no copy of the chunk but a line's tail
    tap.close()
    tap.first_s, tap.last_s, tap.content_events, tap.output_tokens, tap.finish_reason, tap.text()
Usage (whole JSON answer): `completion_facts(body)` → `CompletionFacts(output_tokens, finish_reason, text)`

An event is a block of lines ended by a blank line (CRLF, LF or CR, split across chunks anywhere); `:`
comment lines are skipped; the `data:` lines of an event are joined by newlines. A data event is either
`[DONE]` or a JSON chunk whose `choices` carry `delta.content` (chat), `text` (completions) or
`delta.reasoning_content`: an event with a non-empty one is a *content event* (a token, or a few). `usage`
(with `stream_options.include_usage`, in the last chunk) gives `completion_tokens`; the last non-null
`finish_reason` is kept. Memory is bounded: a line longer than `MAX_LINE` bytes, or an event whose data
passes `MAX_EVENT`, is skipped (counted in `skipped`), and text is kept only when asked (`keep_text`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

MAX_LINE = 64 * 1024
"""Longest line kept across chunks; a longer one is skipped with its event."""
MAX_EVENT = 256 * 1024
"""Most data bytes of one event."""
MAX_JSON_BODY = 1024 * 1024
"""A whole (non-streamed) answer is read for its facts only up to this size."""
DONE = b"[DONE]"
_CONTENT_KEYS = ("content", "reasoning_content")


@dataclass(frozen=True, slots=True)
class CompletionFacts:
    """What a whole (non-streamed) completion answer says."""

    output_tokens: int | None = None
    finish_reason: str | None = None
    text: str | None = None


class CompletionStream:
    """An incremental reader of an OpenAI-compatible event stream (see the module doc)."""

    __slots__ = (
        "_after_cr",
        "_clock",
        "_data",
        "_data_size",
        "_in_block",
        "_open",
        "_skip",
        "_tail",
        "_text",
        "chunks",
        "content_events",
        "done",
        "events",
        "finish_reason",
        "first_s",
        "last_s",
        "skipped",
        "usage_tokens",
    )

    def __init__(self, clock: Callable[[], float] | None = None, keep_text: bool = False) -> None:
        self._clock = clock
        self._tail = b""  # the current line's start, when it began in an earlier chunk
        self._after_cr = False  # the last byte was CR: a LF right after it ends nothing new
        self._open = False  # a line has begun and its end is still to come
        self._skip = False  # the current event is over its bounds: skipped to its blank line
        self._in_block = False  # a non-comment line was seen since the last blank line
        self._data: list[bytes] = []
        self._data_size = 0
        self._text: list[str] | None = [] if keep_text else None
        self.events = 0
        """Events (blocks with a field line), as `proxy.dataplane.stream_tap.SseCounter` counts them."""
        self.chunks = 0
        """Data events that were completion chunks (JSON with `choices`)."""
        self.content_events = 0
        self.first_s: float | None = None
        """Clock reading when the first content event was read (None: none was)."""
        self.last_s: float | None = None
        self.usage_tokens: int | None = None
        self.finish_reason: str | None = None
        self.done = False
        """`data: [DONE]` was read."""
        self.skipped = 0
        """Events skipped: over the bounds, or data that is not JSON."""

    @property
    def output_tokens(self) -> int | None:
        """`usage.completion_tokens` when sent, else the content events (None: no completion chunk seen)."""
        if self.usage_tokens is not None:
            return self.usage_tokens
        return self.content_events if self.chunks else None

    def text(self) -> str:
        """The completion text assembled so far (empty unless `keep_text`)."""
        return "".join(self._text or ())

    def feed(self, chunk: bytes) -> None:
        """Take the next piece of the body."""
        if self._after_cr and chunk[:1] == b"\n":
            chunk = chunk[1:]
        if not chunk:
            return
        self._after_cr = chunk[-1:] == b"\r"
        lines = chunk.splitlines(keepends=True)
        last = lines[-1]
        ends = last[-1:] in (b"\n", b"\r")
        if not ends:
            lines.pop()
        for line in lines:
            self._line(line.rstrip(b"\r\n"))
        if not ends:
            self._partial(last)

    def close(self) -> None:
        """The body ended: an event left without its blank line is read as if it had one."""
        if self._open:
            self._line(b"")
        self._line(b"")

    def _partial(self, piece: bytes) -> None:
        """The start of a line whose end is in a later chunk."""
        self._open = True
        if self._skip:
            return
        if len(self._tail) + len(piece) > MAX_LINE:
            self._tail, self._skip, self._in_block = b"", True, True
            return
        self._tail += piece

    def _line(self, text: bytes) -> None:
        if self._open:  # the end of a line begun earlier: never a blank line
            self._open = False
            text, self._tail = self._tail + text, b""
        elif not text:
            self._dispatch()
            return
        if self._skip or not text or text[:1] == b":":
            return
        self._in_block = True
        if text.startswith(b"data") and (len(text) == 4 or text[4:5] == b":"):
            value = text[6:] if text[5:6] == b" " else text[5:]
            self._data_size += len(value) + 1
            if self._data_size > MAX_EVENT:
                self._skip = True
                self._data = []
                return
            self._data.append(value)

    def _dispatch(self) -> None:
        skipped, self._skip = self._skip, False
        if self._in_block:
            self.events += 1
        self._in_block = False
        data, self._data, self._data_size = self._data, [], 0
        if skipped:
            self.skipped += 1
            return
        if not data:
            return
        payload = data[0] if len(data) == 1 else b"\n".join(data)
        if payload.strip() == DONE:
            self.done = True
            return
        try:
            doc = orjson.loads(payload)
        except orjson.JSONDecodeError:
            self.skipped += 1
            return
        if isinstance(doc, dict):
            self._chunk(doc)

    def _chunk(self, doc: dict[str, Any]) -> None:
        tokens = _completion_tokens(doc)
        if tokens is not None:
            self.usage_tokens = tokens
        choices = doc.get("choices")
        if not isinstance(choices, list):
            return
        self.chunks += 1
        content = False
        for choice in choices:
            if not isinstance(choice, dict):
                continue
            piece = _piece(choice)
            if piece:
                content = True
                if self._text is not None:
                    self._text.append(piece)
            reason = choice.get("finish_reason")
            if isinstance(reason, str):
                self.finish_reason = reason
        if content:
            self.content_events += 1
            now = self._clock() if self._clock is not None else 0.0
            if self.first_s is None:
                self.first_s = now
            self.last_s = now


def _piece(choice: dict[str, Any]) -> str | None:
    """The text a streamed choice adds: `delta.content` (or reasoning), else `text` (completions)."""
    delta = choice.get("delta")
    if isinstance(delta, dict):
        for key in _CONTENT_KEYS:
            value = delta.get(key)
            if isinstance(value, str) and value:
                return value
        return None
    text = choice.get("text")
    return text if isinstance(text, str) else None


def _completion_tokens(doc: dict[str, Any]) -> int | None:
    usage = doc.get("usage")
    if isinstance(usage, dict):
        tokens = usage.get("completion_tokens")
        if isinstance(tokens, int) and not isinstance(tokens, bool) and tokens >= 0:
            return tokens
    return None


def completion_facts(body: bytes) -> CompletionFacts:
    """Tokens, finish reason and text of a whole JSON completion answer (empty facts if it is not one)."""
    if not body or len(body) > MAX_JSON_BODY or body[:1] != b"{":
        return CompletionFacts()
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        return CompletionFacts()
    if not isinstance(doc, dict) or not isinstance(doc.get("choices"), list):
        return CompletionFacts()
    reason, parts = None, []
    for choice in doc["choices"]:
        if not isinstance(choice, dict):
            continue
        message = choice.get("message")
        text = message.get("content") if isinstance(message, dict) else choice.get("text")
        if isinstance(text, str):
            parts.append(text)
        if isinstance(choice.get("finish_reason"), str):
            reason = choice["finish_reason"]
    return CompletionFacts(_completion_tokens(doc), reason, "".join(parts))


def stream_text(body: bytes) -> CompletionStream:
    """A whole event-stream body read at once, its text kept (the `text` comparator)."""
    tap = CompletionStream(keep_text=True)
    tap.feed(body)
    tap.close()
    return tap
