"""The `text` comparison kind: the completion texts of two OpenAI-compatible answers, streamed or not.

Usage: `TextCompare()(primary, shadow)` → `Comparison(agree=exact, rows=1, rows_agree=exact, overlap=F1)`

Each answer's text is assembled first (Content-Encoding undone): from a `text/event-stream` body (starts with
`data:`, `event:`, `id:` or a `:` comment) the content of every chunk in order (experiments.openai_stream),
from a JSON body the `choices[].message.content` (chat) or `choices[].text` (completions), choices joined in
order. `agree` is exact equality of the two texts (the verdict's agreement is then the exact-match rate).
`overlap` is the token-overlap F1 of the normalised texts: lower case, punctuation as spaces, split on
whitespace, |common tokens (as multisets)| · 2 / (|primary| + |shadow|); 1.0 when both are empty.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

from experiments.openai_stream import completion_facts, stream_text
from shadow.compare.answer import Answer, NotComparable, as_answer, decoded
from shadow.compare.base import Comparison, not_comparable

_PUNCTUATION = re.compile(r"[^\w\s]+")
_STREAM_STARTS = (b"data:", b"event:", b"id:", b":", b"retry:")


def completion_text(answer: Answer, who: str) -> str:
    """The completion text of an answer (NotComparable if it is not a completion)."""
    body = decoded(answer, who)
    if body.lstrip().startswith(_STREAM_STARTS):
        tap = stream_text(body)
        if not tap.chunks:
            raise NotComparable(f"{who} answer is an event stream without completion chunks")
        return tap.text()
    text = completion_facts(body).text
    if text is None:
        raise NotComparable(f"{who} answer is not an OpenAI-compatible completion (no choices)")
    return text


def normalised_tokens(text: str) -> list[str]:
    """Lower case, punctuation as spaces, split on whitespace."""
    return _PUNCTUATION.sub(" ", text.lower()).split()


def token_overlap(a: str, b: str) -> float:
    """F1 of the two texts' normalised tokens (multisets); 1.0 when both have none."""
    ta, tb = Counter(normalised_tokens(a)), Counter(normalised_tokens(b))
    total = sum(ta.values()) + sum(tb.values())
    if total == 0:
        return 1.0
    return 2.0 * sum((ta & tb).values()) / total


@dataclass(frozen=True, slots=True)
class TextCompare:
    """Exact match and token overlap of two completion texts (no options)."""

    def __call__(self, primary: Answer | bytes, shadow: Answer | bytes) -> Comparison:
        """Compare the assembled texts."""
        try:
            p = completion_text(as_answer(primary), "primary")
            s = completion_text(as_answer(shadow), "shadow")
        except NotComparable as why:
            return not_comparable(str(why))
        same = p == s
        return Comparison(agree=same, rows=1, rows_agree=int(same), overlap=round(token_overlap(p, s), 6))
