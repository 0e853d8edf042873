"""The `text` comparator: completion texts from streamed or whole answers, exact match and token overlap."""

from __future__ import annotations

import dataclasses
import gzip

import orjson
import pytest

from analysis.shadow_judge import ShadowJudge
from experiments.model import ShadowSpec
from experiments.outcome import OutcomeRecord
from shadow.compare import Answer, comparator
from shadow.compare.text import token_overlap
from tests.analysis.test_shadow_judge import entry, experiment


def streamed(*pieces: str) -> bytes:
    chunks = [{"choices": [{"index": 0, "delta": {"role": "assistant"}, "finish_reason": None}]}]
    chunks += [{"choices": [{"index": 0, "delta": {"content": p}, "finish_reason": None}]} for p in pieces]
    body = b"".join(b"data: " + orjson.dumps(c) + b"\r\n\r\n" for c in chunks)
    return b": hello\n\n" + body + b"data: [DONE]\n\n"


def whole(text: str, chat: bool = True) -> bytes:
    choice = {"message": {"role": "assistant", "content": text}} if chat else {"text": text}
    return orjson.dumps({"id": "x", "choices": [{"index": 0, **choice, "finish_reason": "stop"}]})


def test_a_stream_and_a_whole_answer_with_the_same_text_agree() -> None:
    c = comparator("text")(streamed("The cat", " sat."), whole("The cat sat."))
    assert c.to_json() == {"agree": True, "rows": 1, "rows_agree": 1, "overlap": 1.0}
    assert comparator("text")(whole("a b", chat=False), whole("a b")).agree


def test_different_texts_disagree_with_their_token_overlap() -> None:
    c = comparator("text")(streamed("The cat sat on the mat."), streamed("the cat, sat on a hat"))
    assert (c.agree, c.rows_agree) == (False, 0)
    # tokens: the cat sat on the mat / the cat sat on a hat: common the, cat, sat, on = 4 of 6 + 6
    assert c.overlap == pytest.approx(8 / 12, abs=1e-6)
    assert token_overlap("", "") == 1.0
    assert token_overlap("a", "") == 0.0


def test_encoded_answers_are_decoded_first() -> None:
    primary = Answer(gzip.compress(streamed("same")), {"Content-Encoding": "gzip"})
    assert comparator("text")(primary, whole("same")).agree


@pytest.mark.parametrize(
    ("body", "why"),
    [
        (b'{"outputs": []}', "primary answer is not an OpenAI-compatible completion"),
        (b"data: token-1\n\n", "primary answer is an event stream without completion chunks"),
    ],
)
def test_other_answers_are_not_comparable(body: bytes, why: str) -> None:
    c = comparator("text")(body, whole("x"))
    assert c.agree is None
    assert c.detail is not None
    assert c.detail.startswith(why)


def test_text_takes_no_options() -> None:
    with pytest.raises(ValueError, match="takes no option 'atol'"):
        comparator("text", atol=1.0)


def test_the_verdict_reports_the_mean_overlap_beside_the_exact_match_rate() -> None:
    exp = dataclasses.replace(experiment(), shadow=ShadowSpec(compare="text", agreement_min=0.5))
    judge = ShadowJudge(exp)
    recs = [
        OutcomeRecord("r", 0.0, "exp", "v1", 0.9, 200, None, 11.0, 10.0, None, [entry(agree=a, overlap=o)])
        for a, o in [(True, 1.0), (False, 0.5), (False, 0.0), (True, 1.0)]
    ]
    judge.observe(recs)
    v = judge.verdicts()["int8"]
    assert v["agreement"]["estimate"] == 0.5
    assert v["overlap"] == {"mean": 0.625, "n": 4}
    assert v["by_primary"]["v1"]["overlap"] == {"mean": 0.625, "n": 4}
