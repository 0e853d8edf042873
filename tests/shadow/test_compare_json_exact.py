"""The `json-exact` comparison kind: golden cases."""

from __future__ import annotations

import uuid

import orjson
import pytest

from shadow.compare.json_exact import JsonExact
from tests.shadow.bodies import binary, gzipped, oip, output

exact = JsonExact()


def test_key_order_and_whitespace_do_not_matter() -> None:
    result = exact(b'{"a": 1, "b": [1.5, "x", null]}', b'{"b":[1.5,"x",null],"a":1}')
    assert (result.agree, result.rows, result.rows_agree, result.detail) == (True, 1, 1, None)
    assert result.to_json() == {"agree": True, "rows": 1, "rows_agree": 1}


@pytest.mark.parametrize(
    ("primary", "shadow", "agree"),
    [
        (b"0.1", b"0.1", True),
        (b"0.1", b"0.10000000000000002", False),  # the next double: floats are compared exactly
        (b"1", b"1.0", True),  # the same number, as in RFC 8785
        (b"0", b"-0.0", True),
        (b"true", b"1", False),
        (b"false", b"0", False),
        (b"null", b"false", False),
        (b'"1"', b"1", False),
        (b"[1, 2]", b"[2, 1]", False),
        (b"[1, 2]", b"[1, 2, 3]", False),
        (b'{"a": 1}', b'{"a": 1, "b": null}', False),
        (b'{"a": []}', b'{"a": {}}', False),
    ],
)
def test_values(primary: bytes, shadow: bytes, agree: bool) -> None:
    assert exact(primary, shadow).agree is agree
    assert exact(shadow, primary).agree is agree


def test_ignore_paths_remove_fields_from_both_answers() -> None:
    primary = orjson.loads(oip(output("y", [[0.1, 0.9]]), model="iris-v1"))
    shadow = orjson.loads(oip(output("y", [[0.2, 0.8]]), model="iris-v2")) | {"id": "req-2"}
    primary["model_version"] = "1"
    p, s = orjson.dumps(primary), orjson.dumps(shadow)
    assert exact(p, s).agree is False
    assert JsonExact(ignore_paths=["id", "model_name", "model_version"])(p, s).agree is False
    ignoring = JsonExact(ignore_paths=["id", "model_name", "model_version", "outputs.0.data"])
    assert ignoring(p, s).agree is True
    assert ignoring(s, p).agree is True


def test_ignored_list_items_keep_the_other_indices_in_place() -> None:
    ignoring = JsonExact(ignore_paths=["a.0", "a.2"])
    assert ignoring(b'{"a": [1, 2, 3, 4]}', b'{"a": [9, 2, 9, 4]}').agree is True
    assert ignoring(b'{"a": [1, 2, 3, 4]}', b'{"a": [9, 2, 9, 5]}').agree is False


def test_ignore_paths_that_lead_nowhere_change_nothing() -> None:
    ignoring = JsonExact(ignore_paths=["x.y.z", "a.7", "a.b", "a.²", "0", "s.0"])
    body = b'{"a": [1, 2], "s": "text"}'
    assert ignoring(body, body).agree is True
    assert ignoring(body, b'{"a": [1, 3], "s": "text"}').agree is False
    assert ignoring(b"[1, 2]", b"[1, 2]").agree is True  # "0" on a list: the item is ignored
    assert ignoring(b"[1, 2]", b"[7, 2]").agree is True


def test_answers_that_are_not_json_are_compared_as_bytes() -> None:
    same = exact(b"<html>ok</html>", b"<html>ok</html>")
    assert (same.agree, same.rows, same.rows_agree) == (True, 1, 1)
    assert same.detail == "primary answer is not JSON: bytes compared"
    differ = exact(b'{"a": 1}', b"<html>502</html>")
    assert (differ.agree, differ.rows_agree, differ.detail) == (
        False,
        0,
        "shadow answer is not JSON: bytes compared",
    )
    assert differ.to_json()["compare_error"] == "shadow answer is not JSON: bytes compared"


def test_deep_nesting_does_not_recurse() -> None:
    deep = b"[" * 1000 + b"1" + b"]" * 1000
    assert exact(deep, deep).agree is True
    assert exact(deep, deep.replace(b"1", b"2")).agree is False


def answer_of_model(version: str, data: list[float]) -> bytes:
    """An OIP answer as a real server sends it: a random `id` per response, the model's version."""
    doc = {"model_name": "iris", "model_version": version, "id": str(uuid.uuid4()), "outputs": [
        {"name": "y", "shape": [1, len(data)], "datatype": "FP32", "data": data}
    ]}  # fmt: skip
    return orjson.dumps(doc)


def test_identical_models_agree_despite_random_ids_and_versions() -> None:
    answers = [(answer_of_model("1", [0.1, 0.9]), answer_of_model("2", [0.1, 0.9])) for _ in range(610)]
    assert sum(bool(exact(p, s).agree) for p, s in answers) == 610
    assert exact(answer_of_model("1", [0.1, 0.9]), answer_of_model("2", [0.2, 0.8])).agree is False


def test_ids_are_compared_when_asked() -> None:
    primary, shadow = answer_of_model("1", [0.5]), answer_of_model("1", [0.5])
    assert JsonExact(ignore_ids=False)(primary, shadow).agree is False
    assert JsonExact(ignore_ids=False)(primary, primary).agree is True
    assert JsonExact(ignore_ids=False, ignore_paths=["id"])(primary, shadow).agree is True
    with pytest.raises(ValueError, match="ignore_ids must be true or false"):
        JsonExact(ignore_ids=1)  # type: ignore[arg-type]


def test_ignore_paths_add_to_the_ignored_ids() -> None:
    primary = orjson.loads(answer_of_model("1", [0.5])) | {"parameters": {"took_ms": 3}}
    shadow = orjson.loads(answer_of_model("2", [0.5])) | {"parameters": {"took_ms": 5}}
    p, s = orjson.dumps(primary), orjson.dumps(shadow)
    assert exact(p, s).agree is False
    assert JsonExact(ignore_paths=["parameters.took_ms"])(p, s).agree is True
    nested = orjson.dumps({"outputs": [{"id": "a"}]}), orjson.dumps({"outputs": [{"id": "b"}]})
    assert exact(*nested).agree is False  # only the top-level id is ignored


def test_gzip_and_binary_answers_are_compared_after_decoding() -> None:
    primary = binary(output("y", [[0.1, 0.9]]), id="p-1", model_version="1")
    shadow = gzipped(binary(output("y", [[0.1, 0.9]]), id="s-7", model_version="2"))
    assert exact(primary, shadow).agree is True
    other = gzipped(binary(output("y", [[0.1, 0.8]]), id="s-8"))
    assert exact(primary, other).agree is False  # the binary data differs
    assert exact(primary, oip(output("y", [[0.1, 0.9]]))).agree is False  # binary vs JSON data
