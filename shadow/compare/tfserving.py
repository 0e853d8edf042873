"""TF Serving REST answers (KServe v1 sends the same) read as OIP outputs, for `oip-top1` and `oip-numeric`.

Usage: `if is_tf_answer(doc): outputs = tf_outputs(doc, "shadow")` — the OIP reader (shadow.compare.oip) does
this for any JSON answer that is not an OIP response.

Two forms (tensorflow.org/tfx/serving/api_rest):
- Row ("instances" requests): `{"predictions": [row, ...]}`. A row is a value or a (nested) list — one
  output named `predictions` of shape [rows, ...] — or an object of named values, the same names in every
  row — one output per name, each [rows, ...].
- Columnar ("inputs" requests): `{"outputs": value}` — one output named `outputs` — or
  `{"outputs": {"name": value, ...}}`, each value with the batch as its first dimension.
An OIP answer also has `outputs`, but as a list of objects: that is left to the OIP reader.

Each output's shape comes from its nesting and must be rectangular (a ragged list is not compared: read flat
it would line values up with the wrong rows). JSON carries no datatype, so one is inferred from the values:
all integers INT64, all strings BYTES, all booleans BOOL (labels, compared by value), anything else none
(scores: `oip-top1` takes each row's argmax unless the output has one value per row). A binary value
(`{"b64": "..."}`) is compared as its base64 text. Nothing here recurses: the levels are walked in turn.
"""

from __future__ import annotations

from typing import Any

from shadow.compare.answer import NotComparable

ROW_OUTPUT = "predictions"
COLUMN_OUTPUT = "outputs"
_INFERRED = {frozenset({int}): "INT64", frozenset({str}): "BYTES", frozenset({bool}): "BOOL"}


def is_tf_answer(doc: object) -> bool:
    """Whether a parsed JSON answer is in one of TF Serving's forms (not an OIP response)."""
    if not isinstance(doc, dict):
        return False
    if ROW_OUTPUT in doc:
        return True
    outputs = doc.get(COLUMN_OUTPUT)
    if isinstance(outputs, dict):
        return True
    return isinstance(outputs, list) and bool(outputs) and not _oip_output(outputs[0])


def tf_outputs(doc: dict[str, Any], who: str) -> list[dict[str, object]]:
    """The answer's outputs as OIP output objects (`name`, `shape`, `datatype`, flat `data`)."""
    columns: dict[str, object]
    if ROW_OUTPUT in doc:
        columns = _row_columns(doc[ROW_OUTPUT], who)
    elif isinstance(doc[COLUMN_OUTPUT], dict):
        columns = doc[COLUMN_OUTPUT]
    else:
        columns = {COLUMN_OUTPUT: doc[COLUMN_OUTPUT]}
    if not columns:
        raise NotComparable(f"{who} answer has no outputs")
    return [_output(str(name), value, who) for name, value in columns.items()]


def _row_columns(rows: object, who: str) -> dict[str, object]:
    if not isinstance(rows, list) or not rows:
        raise NotComparable(f"{who} answer's predictions is not a non-empty list")
    named = [row for row in rows if isinstance(row, dict) and not _binary(row)]
    if not named:
        return {ROW_OUTPUT: rows}
    if len(named) != len(rows):
        raise NotComparable(f"{who} answer's predictions mix named outputs and plain values")
    names = list(named[0])
    if any(row.keys() != named[0].keys() for row in named):
        raise NotComparable(f"{who} answer's predictions do not all have the same outputs")
    return {name: [row[name] for row in named] for name in names}


def _output(name: str, value: object, who: str) -> dict[str, object]:
    shape, values = rectangular(value, f"{who} output {name!r}")
    kinds = frozenset(map(type, values))
    return {"name": name, "shape": shape, "datatype": _INFERRED.get(kinds), "data": values}


def rectangular(value: object, where: str) -> tuple[list[int], list[Any]]:
    """The shape of nested lists and their values in row-major order; NotComparable if ragged."""
    shape: list[int] = []
    level: list[Any] = [value]
    while level and all(isinstance(item, list) for item in level):
        width = len(level[0])
        if any(len(item) != width for item in level):
            raise NotComparable(f"{where} is ragged: its lists at depth {len(shape)} differ in length")
        shape.append(width)
        level = [inner for item in level for inner in item]
    if any(isinstance(item, list) for item in level):
        raise NotComparable(f"{where} is ragged: values and lists at depth {len(shape)}")
    return shape, [item["b64"] if _binary(item) else item for item in level]


def _binary(value: object) -> bool:
    return isinstance(value, dict) and len(value) == 1 and isinstance(value.get("b64"), str)


def _oip_output(value: object) -> bool:
    return isinstance(value, dict) and not _binary(value)
