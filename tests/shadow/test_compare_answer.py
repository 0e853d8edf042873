"""Answers as they come over the wire: binary tensor data, gzip and deflate bodies, and every malformed
framing refused with a reason (`compare_error`), never an exception."""

from __future__ import annotations

import gzip
import time
import tracemalloc
import zlib

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shadow.compare import Answer, Comparison, comparator
from shadow.compare.answer import answer_headers, decoded
from shadow.compare.oip import NotComparable, output_pair
from shadow.compare.oip_numeric import OipNumeric
from shadow.compare.oip_top1 import OipTop1
from tests.shadow.bodies import binary, gzipped, labels, oip, output, raw_data, scores

ROWS = [[0.125, 0.625, 0.25], [0.5, 0.375, 0.125]]
"""Scores that FP16 and FP32 hold exactly, so binary and JSON answers are equal value for value."""
numeric, top1 = OipNumeric(atol=0.0, rtol=0.0), OipTop1()


def test_binary_scores_read_as_their_json_twins() -> None:
    as_json = scores(ROWS)
    as_binary = binary(output("probabilities", ROWS))
    pairs: list[tuple[Answer | bytes, Answer | bytes]] = [
        (as_binary, as_binary),
        (as_json, as_binary),
        (as_binary, as_json),
    ]
    for a, b in pairs:
        first, second = output_pair(a, b, None)
        assert first.tolist() == second.tolist() == ROWS
        assert numeric(a, b).agree is True
        assert top1(a, b) == top1(as_json, as_json)


def test_binary_values_that_differ_are_found() -> None:
    shifted = [[0.125, 0.625, 0.25], [0.25, 0.625, 0.125]]
    result = OipNumeric(atol=1e-6, rtol=0.0)(binary(output("probabilities", ROWS)), scores(shifted))
    assert (result.agree, result.rows, result.rows_agree, result.exceed) == (False, 2, 1, True)
    assert result.max_abs_diff == 0.25
    assert (
        top1(binary(output("probabilities", ROWS)), binary(output("probabilities", shifted))).rows_agree == 1
    )


@pytest.mark.parametrize("datatype", ["FP16", "FP64", "INT32", "UINT8"])
def test_binary_datatypes_are_read_little_endian(datatype: str) -> None:
    values = [[1.0, 2.0], [3.0, 4.0]]
    answer = binary(output("y", values, datatype=datatype))
    a, _ = output_pair(answer, answer, None)
    assert a.tolist() == values


def test_outputs_take_their_binary_data_in_order_and_json_outputs_none() -> None:
    probabilities = output("probabilities", ROWS)
    predict = labels("predict", [1, 0])
    mixed = binary(
        probabilities, output("unused", [[9.0]]), predict, binary_names=["probabilities", "predict"]
    )
    assert orjson.loads(mixed.body[: int(mixed.headers["inference-header-content-length"])])["outputs"][
        1
    ] == (output("unused", [[9.0]]))
    assert OipTop1(output="predict")(mixed, oip(predict)) == Comparison(agree=True, rows=2, rows_agree=2)
    assert OipTop1(output="probabilities")(mixed, scores(ROWS)).agree is True
    assert OipNumeric(output="unused")(mixed, oip(output("unused", [[9.5]]))).agree is False


def test_gzip_and_deflate_bodies_are_read() -> None:
    plain = scores(ROWS)
    for coding in ("gzip", "deflate"):
        assert numeric(gzipped(plain, coding), plain).agree is True
        assert top1(plain, gzipped(binary(output("probabilities", ROWS)), coding)).agree is True
    raw_deflate = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    bare = raw_deflate.compress(plain) + raw_deflate.flush()
    assert numeric(Answer(bare, {"Content-Encoding": "deflate"}), plain).agree is True
    two_members = gzip.compress(plain[:10]) + gzip.compress(plain[10:])
    assert numeric(Answer(two_members, {"content-encoding": "GZIP"}), plain).agree is True
    assert numeric(Answer(plain, {"Content-Encoding": "identity"}), plain).agree is True


def test_a_gzip_bomb_is_refused_within_the_cap() -> None:
    cap = 1024 * 1024
    packer = zlib.compressobj(9, zlib.DEFLATED, zlib.MAX_WBITS | 16)
    zeros = b"\0" * cap
    bomb = b"".join(packer.compress(zeros) for _ in range(64)) + packer.flush()  # 64 MiB in about 64 KiB
    assert len(bomb) < cap // 8
    answer = Answer(bomb, {"Content-Encoding": "gzip"}, cap)
    tracemalloc.start()
    started = time.perf_counter()
    try:
        result = numeric(answer, answer)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert result == Comparison(
        agree=None,
        detail=f"primary answer's gzip body decompresses to more than {cap} bytes (spec.shadow.maxBodyBytes)",
    )
    assert peak < 3 * cap  # one decompressed cap at a time, never the 64 MiB
    assert time.perf_counter() - started < 1.0
    assert comparator("json-exact")(answer, answer).detail == result.detail


def test_an_answer_just_at_the_cap_is_read() -> None:
    body = scores(ROWS)
    assert numeric(Answer(gzip.compress(body), {"Content-Encoding": "gzip"}, len(body)), body).agree is True
    over = numeric(Answer(gzip.compress(body), {"Content-Encoding": "gzip"}, len(body) - 1), body)
    assert over.agree is None


GOOD = binary(output("probabilities", ROWS))
HEAD = int(GOOD.headers["inference-header-content-length"])
Y = oip(output("y", [[1.0, 2.0]]))


def framed(json_part: bytes, tail: bytes, length: str | None = None) -> Answer:
    header = str(len(json_part)) if length is None else length
    return Answer(json_part + tail, {"Inference-Header-Content-Length": header})


def described(size: object, datatype: str = "FP32", shape: list[int] | None = None) -> bytes:
    out = {
        "name": "y",
        "shape": shape or [1, 2],
        "datatype": datatype,
        "parameters": {"binary_data_size": size},
    }
    return orjson.dumps({"outputs": [out]})


@pytest.mark.parametrize(
    ("shadow", "why"),
    [
        (
            framed(GOOD.body[:HEAD], GOOD.body[HEAD:], "12x"),
            "Inference-Header-Content-Length is not a byte count",
        ),
        (
            framed(GOOD.body[:HEAD], GOOD.body[HEAD:], "-3"),
            "Inference-Header-Content-Length is not a byte count",
        ),
        (framed(GOOD.body, b"", str(len(GOOD.body) + 1)), "is past the end of its"),
        (framed(described(8), raw_data([1.0], "FP32")), "binary_data_size 8 runs past the end"),
        (framed(described(4), raw_data([1.0, 2.0], "FP32")), "4 bytes of binary data that no output"),
        (framed(described(-1), b""), "invalid binary_data_size: -1"),
        (framed(described("8"), b"12345678"), "invalid binary_data_size: 8"),
        (framed(described(True), b"1"), "invalid binary_data_size: True"),
        (Answer(described(8)), "has binary data but the answer has no Inference-Header"),
        (framed(described(4), raw_data([1.0], "FP32")), "has 4 bytes of binary data for shape [1,2] of FP32"),
        (framed(described(8, "BF16"), b"\0" * 8), "binary data of unknown datatype 'BF16'"),
        (framed(described(8, "BYTES"), b"\0" * 8), "not numeric: BYTES binary data"),
        (framed(orjson.dumps({"outputs": [{"name": "y", "shape": [1, 2]}]}), b""), "has neither data nor"),
        (framed(b"not json", b"\0"), "shadow answer is not JSON"),
        (Answer(b"\x1f\x8b\x08garbage", {"Content-Encoding": "gzip"}), "gzip body is corrupt"),
        (Answer(gzip.compress(scores(ROWS))[:-12], {"Content-Encoding": "gzip"}), "gzip body is truncated"),
        (Answer(b"", {"Content-Encoding": "gzip"}), "gzip body is truncated"),
        (Answer(gzip.compress(scores(ROWS)) + b"\0\0", {"Content-Encoding": "gzip"}), "gzip body is corrupt"),
        (
            Answer(zlib.compress(scores(ROWS)) + b"xx", {"Content-Encoding": "deflate"}),
            "2 bytes after its end",
        ),
        (Answer(scores(ROWS), {"Content-Encoding": "br"}), "Content-Encoding 'br': only gzip and deflate"),
        (Answer(scores(ROWS), {"Content-Encoding": "gzip, gzip, gzip"}), "3 content codings stacked"),
    ],
)
def test_malformed_answers_are_refused_with_a_reason(shadow: Answer, why: str) -> None:
    # The primary has the output the shadow's JSON names, so only the shadow's framing is at fault.
    primary = Y if b'"name":"y"' in decoded_or_body(shadow) else GOOD
    with pytest.raises(NotComparable) as caught:
        output_pair(primary, shadow, None)
    assert why in str(caught.value)
    for compare in (numeric, top1):
        result = compare(primary, shadow)
        assert result.agree is None
        assert result.detail is not None


def decoded_or_body(answer: Answer) -> bytes:
    try:
        return decoded(answer, "shadow")
    except NotComparable:
        return answer.body


def test_malformed_bytes_elements_are_refused() -> None:
    shape = [2, 1]
    cases = [
        raw_data(["a"], "BYTES"),  # one element for two
        raw_data(["a", "b"], "BYTES") + b"\0",  # a byte left over
        raw_data(["a"], "BYTES") + b"\5\0\0\0ab",  # the second element's length runs past the end
    ]
    for tail in cases:
        result = top1(
            oip(labels("y", ["a", "b"], "BYTES")), framed(described(len(tail), "BYTES", shape), tail)
        )
        assert result.agree is None
        assert (
            result.detail
            == "shadow output's BYTES binary data does not hold exactly 2 length-prefixed elements"
        )


def test_only_the_headers_comparators_read_are_kept() -> None:
    headers = {
        "Content-Type": "application/json",
        "Content-Encoding": "gzip",
        "INFERENCE-HEADER-CONTENT-LENGTH": "7",
    }
    assert answer_headers(headers) == {"content-encoding": "gzip", "inference-header-content-length": "7"}
    assert Answer.of(b"x", headers, 10) == Answer(b"x", answer_headers(headers), 10)
    assert Answer(b"", {"Content-Encoding": "gzip"}).encoded is True
    assert Answer(b"", {"Content-Encoding": "identity"}).encoded is False
    assert decoded(Answer(b"plain"), "primary") == b"plain"


@settings(max_examples=300, deadline=None)
@given(
    json_part=st.sampled_from([described(8), described(4), GOOD.body[:HEAD], b"{}", b"[]"]),
    tail=st.binary(max_size=40),
    length=st.none() | st.text(max_size=4),
    coding=st.sampled_from([None, "gzip", "deflate", "br", "gzip, deflate"]),
)
def test_no_framing_makes_a_comparator_raise(
    json_part: bytes, tail: bytes, length: str | None, coding: str | None
) -> None:
    headers = {} if length is None else {"Inference-Header-Content-Length": length}
    if coding is not None:
        headers["Content-Encoding"] = coding
    answer = Answer(json_part + tail, headers)
    for compare in (numeric, top1, comparator("json-exact")):
        assert isinstance(compare(answer, GOOD), Comparison)
        assert isinstance(compare(GOOD, answer), Comparison)
