"""The completion stream reader: events cut anywhere, CRLF/CR/LF, comments, `[DONE]`, usage, bounds."""

from __future__ import annotations

import itertools

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from experiments.openai_stream import (
    MAX_LINE,
    CompletionStream,
    completion_facts,
    stream_text,
)


def chat(content: str | None, finish: str | None = None, **extra: object) -> bytes:
    delta = {} if content is None else {"content": content}
    choice = {"index": 0, "delta": delta, "finish_reason": finish}
    doc: dict[str, object] = {"id": "c1", "object": "chat.completion.chunk", "choices": [choice], **extra}
    return b"data: " + orjson.dumps(doc) + b"\n\n"


BODY = (
    b": keep-alive\n\n"
    + chat(None)  # the role-only first chunk: no content
    + chat("Hello")
    + chat(" wor")
    + chat("ld", "stop")
    + b'data: {"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 7}}\n\n'
    + b"data: [DONE]\n\n"
)


class Ticks:
    """A clock that advances one second per reading."""

    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        self.t += 1.0
        return self.t


def read(chunks: list[bytes]) -> CompletionStream:
    tap = CompletionStream(Ticks(), keep_text=True)
    for c in chunks:
        tap.feed(c)
    tap.close()
    return tap


def test_a_whole_chat_stream() -> None:
    tap = read([BODY])
    assert (tap.content_events, tap.output_tokens, tap.finish_reason, tap.done) == (3, 7, "stop", True)
    assert tap.text() == "Hello world"
    assert tap.events == 6  # the comment block is not an event
    assert (tap.first_s, tap.last_s) == (1.0, 3.0)


@pytest.mark.parametrize("eol", [b"\r\n", b"\r"])
def test_crlf_and_cr_line_ends(eol: bytes) -> None:
    tap = read([BODY.replace(b"\n", eol)])
    assert (tap.content_events, tap.output_tokens, tap.text(), tap.done) == (3, 7, "Hello world", True)


def test_split_at_every_byte_boundary_pair() -> None:
    body = BODY.replace(b"\n", b"\r\n")
    for i, j in itertools.combinations(range(1, len(body)), 2):
        if (i + j) % 7:  # a sample of the pairs keeps it quick
            continue
        tap = read([body[:i], body[i:j], body[j:]])
        assert (tap.content_events, tap.output_tokens, tap.text()) == (3, 7, "Hello world"), (i, j)


@given(st.lists(st.integers(min_value=0, max_value=len(BODY)), max_size=12))
def test_any_cut_reads_the_same(cuts: list[int]) -> None:
    points = [0, *sorted(cuts), len(BODY)]
    tap = read([BODY[a:b] for a, b in itertools.pairwise(points)])
    assert (tap.content_events, tap.events, tap.finish_reason, tap.text()) == (3, 6, "stop", "Hello world")


def test_without_usage_the_content_events_are_the_tokens() -> None:
    tap = read([chat("a"), chat("b"), chat("c", "length"), b"data: [DONE]\n\n"])
    assert (tap.output_tokens, tap.finish_reason) == (3, "length")


def test_no_content_gives_no_first_token() -> None:
    tap = read([chat(None), chat(None, "stop"), b"data: [DONE]\n\n"])
    assert (tap.content_events, tap.first_s, tap.output_tokens, tap.finish_reason) == (0, None, 0, "stop")


def test_not_a_completion_stream() -> None:
    tap = read([b"id: 1\ndata: token-1\n\n", b"event: ping\ndata: {}\n\n"])
    assert (tap.events, tap.chunks, tap.output_tokens, tap.first_s) == (2, 0, None, None)


def test_completions_text_and_multiline_data() -> None:
    body = b'data: {"choices": [{"text": "ab",\ndata:  "finish_reason": null}]}\n\n'
    body += b'data:{"choices":[{"text":"c","finish_reason":"stop"}]}\n\n'
    tap = read([body])
    assert (tap.content_events, tap.text(), tap.finish_reason) == (2, "abc", "stop")


def test_a_line_over_the_bound_is_skipped_and_memory_stays_bounded() -> None:
    tap = CompletionStream(Ticks())
    tap.feed(b'data: {"choices": [{"delta": {"content": "')
    for _ in range(40):
        tap.feed(b"x" * 4096)
        assert len(tap._tail) <= MAX_LINE
    tap.feed(b'"}}]}\n\n' + chat("ok"))
    tap.close()
    assert (tap.skipped, tap.content_events, tap.events) == (1, 1, 2)


def test_an_event_without_its_blank_line_at_the_end_is_read() -> None:
    tap = read([chat("a") + chat("b")[:-2]])
    assert tap.content_events == 2


def test_whole_json_answers() -> None:
    body = orjson.dumps(
        {
            "choices": [{"message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}],
            "usage": {"completion_tokens": 2},
        }
    )
    assert completion_facts(body).output_tokens == 2
    assert (completion_facts(body).finish_reason, completion_facts(body).text) == ("stop", "hi")
    assert completion_facts(b'{"outputs": []}').output_tokens is None
    assert completion_facts(b"not json").finish_reason is None
    assert stream_text(BODY).text() == "Hello world"
