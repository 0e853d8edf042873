"""Properties every comparator keeps, whatever the answers."""

from __future__ import annotations

import numpy as np
import orjson
from hypothesis import given
from hypothesis import strategies as st

from shadow.compare import Comparison, comparator
from shadow.compare.json_exact import JsonExact
from shadow.compare.oip_numeric import OipNumeric
from shadow.compare.oip_top1 import OipTop1
from tests.shadow.bodies import Rows, finite, json_values, oip, output, score_rows, scores

KINDS = ["oip-top1", "oip-numeric", "json-exact", "none"]


@given(rows=score_rows(), nested=st.booleans())
def test_an_oip_answer_agrees_with_itself(rows: Rows, nested: bool) -> None:
    body = scores(rows, nested=nested)
    labels = len(rows[0]) == 1  # one value per row: a label, compared by value, no score differences
    for compare in (OipTop1(), OipNumeric(atol=0.0, rtol=0.0)):
        result = compare(body, body)
        assert (result.agree, result.rows, result.rows_agree) == (True, len(rows), len(rows))
        no_diff = None if labels and isinstance(compare, OipTop1) else 0.0
        assert (result.max_abs_diff, result.max_rel_diff, result.detail) == (no_diff, no_diff, None)
    assert JsonExact()(body, body).agree is True


@given(value=json_values)
def test_a_json_answer_agrees_with_itself(value: object) -> None:
    body = orjson.dumps(value)
    assert JsonExact()(body, body) == Comparison(agree=True, rows=1, rows_agree=1)


@given(data=st.data(), rows=score_rows())
def test_top1_agreement_is_symmetric(data: st.DataObject, rows: Rows) -> None:
    other = [[data.draw(finite | st.sampled_from(row)) for _ in row] for row in rows]  # ties are likely
    a, b = scores(rows), scores(other)
    forward, backward = OipTop1()(a, b), OipTop1()(b, a)
    assert (forward.agree, forward.rows_agree) == (backward.agree, backward.rows_agree)
    if len(rows[0]) == 1:  # one value per row is a label: compared by value
        expected = np.array(rows)[:, 0] == np.array(other)[:, 0]
    else:
        expected = np.argmax(np.array(rows), axis=1) == np.argmax(np.array(other), axis=1)
    assert forward.rows_agree == int(expected.sum())


@given(a=json_values, b=json_values)
def test_json_exact_agreement_is_symmetric(a: object, b: object) -> None:
    first, second = orjson.dumps(a), orjson.dumps(b)
    assert JsonExact()(first, second).agree is JsonExact()(second, first).agree


@given(
    primary=score_rows(max_rows=3, max_classes=3),
    noise=st.lists(st.floats(-1e-3, 1e-3), min_size=9, max_size=9),
    atol=st.sampled_from([0.0, 1e-6, 1e-3]),
    rtol=st.sampled_from([0.0, 1e-3, 0.1]),
)
def test_numeric_exceed_is_numpy_isclose(primary: Rows, noise: list[float], atol: float, rtol: float) -> None:
    shadow = [[value + noise[3 * i + j] for j, value in enumerate(row)] for i, row in enumerate(primary)]
    result = OipNumeric(atol=atol, rtol=rtol)(scores(primary), scores(shadow))
    close = np.isclose(np.array(shadow), np.array(primary), rtol=rtol, atol=atol)
    assert result.exceed is not bool(close.all())
    assert result.rows_agree == int(close.all(axis=1).sum())


oip_shaped = st.builds(
    lambda name, shape, data: orjson.dumps({"outputs": [{"name": name, "shape": shape, "data": data}]}),
    st.sampled_from(["probabilities", "y"]),
    json_values,
    json_values,
)
garbage = st.binary(max_size=200) | json_values.map(orjson.dumps) | oip_shaped


@given(primary=garbage | score_rows().map(scores), shadow=garbage, kind=st.sampled_from(KINDS))
def test_garbage_never_raises(primary: bytes, shadow: bytes, kind: str) -> None:
    compare = comparator(kind)
    for result in (compare(primary, shadow), compare(shadow, primary)):
        assert isinstance(result, Comparison)
        orjson.dumps(result.to_json())


@given(rows=score_rows(), cut=st.integers(0, 400))
def test_truncated_answers_are_not_comparable(rows: Rows, cut: int) -> None:
    body = oip(output("probabilities", rows))
    truncated = body[: min(cut, len(body) - 1)]
    for kind in ("oip-top1", "oip-numeric"):
        result = comparator(kind)(body, truncated)
        assert result.agree is None
        assert result.detail == "shadow answer is not JSON"
