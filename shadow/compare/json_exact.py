"""The `json-exact` comparison kind: are the two answers the same JSON document, apart from ignored paths?

Usage: `JsonExact(ignore_paths=["outputs.0.parameters"])(primary, shadow)`; `JsonExact(ignore_ids=False)` also
compares the top-level `id` and `model_version`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import orjson

from shadow.compare.answer import Answer, NotComparable, as_answer, decoded, split_binary
from shadow.compare.base import Comparison, not_comparable

_MISSING = object()
ID_FIELDS = ("id", "model_version")
"""Top-level fields ignored by default: an OIP answer's `id` is per response (often random), and
`model_version` differs between versions by design."""


@dataclass(frozen=True, slots=True)
class JsonExact:
    """Compares two answers as JSON values: key order and whitespace do not matter, numbers must be equal.

    Numbers are compared exactly (no tolerance), as numbers: 1 and 1.0 are equal (as in RFC 8785), but
    true is not 1. The whole answer is one row. The top-level `id` and `model_version` are ignored unless
    `ignore_ids` is False; `ignore_paths` adds to them. A Content-Encoding (gzip, deflate) is undone first;
    with the OIP binary tensor extension the JSON part is compared as JSON and the binary data after it byte
    for byte. An answer that is not JSON is compared byte for byte, and `detail` says so.
    """

    ignore_paths: Sequence[str] = ()
    """Dotted paths removed from both answers before comparing, e.g. `outputs.0.parameters`."""
    ignore_ids: bool = True
    """Remove the top-level `id` and `model_version` too (False: compare them)."""

    def __post_init__(self) -> None:
        paths: object = self.ignore_paths
        if isinstance(paths, str) or not isinstance(paths, Sequence):
            raise ValueError(f"ignore_paths must be a list of dotted paths, not {paths!r}")
        for path in paths:
            if not isinstance(path, str) or "" in path.split("."):
                raise ValueError(f"ignore_paths: {path!r} is not a dotted path like 'outputs.0.data'")
        if not isinstance(self.ignore_ids, bool):
            raise ValueError(f"ignore_ids must be true or false, not {self.ignore_ids!r}")
        # A list from config becomes a tuple, so that the comparator stays immutable and hashable.
        object.__setattr__(self, "ignore_paths", tuple(paths))

    def __call__(self, primary: Answer | bytes, shadow: Answer | bytes) -> Comparison:
        """Compare the two answers as JSON, or as bytes if either is not JSON."""
        try:
            primary_body, primary_json, primary_data = _parts(as_answer(primary), "primary")
            shadow_body, shadow_json, shadow_data = _parts(as_answer(shadow), "shadow")
        except NotComparable as why:
            return not_comparable(str(why))
        primary_doc, shadow_doc = _load(primary_json), _load(shadow_json)
        if primary_doc is _MISSING or shadow_doc is _MISSING:
            same = primary_body == shadow_body
            who = "primary" if primary_doc is _MISSING else "shadow"
            detail = f"{who} answer is not JSON: bytes compared"
            return Comparison(agree=same, rows=1, rows_agree=int(same), detail=detail)
        for path in (*ID_FIELDS, *self.ignore_paths) if self.ignore_ids else self.ignore_paths:
            keys = path.split(".")
            _remove(primary_doc, keys)
            _remove(shadow_doc, keys)
        same = primary_data == shadow_data and _same(primary_doc, shadow_doc)
        return Comparison(agree=same, rows=1, rows_agree=int(same))


def _parts(answer: Answer, who: str) -> tuple[bytes, bytes, bytes]:
    """The decoded body, its JSON part and its binary tensor data (empty without the binary extension)."""
    body = decoded(answer, who)
    json_part, data = split_binary(answer, body, who)
    return body, json_part, b"" if data is None else bytes(data)


def _load(body: bytes) -> object:
    try:
        doc: object = orjson.loads(body)
    except orjson.JSONDecodeError:
        return _MISSING
    return doc


def _remove(doc: object, keys: list[str]) -> None:
    """Remove the value at `keys` from `doc`; a list item becomes null, so later indices keep their place."""
    node = doc
    for key in keys[:-1]:
        node = _child(node, key)
    last = keys[-1]
    if isinstance(node, dict):
        node.pop(last, None)
    elif isinstance(node, list) and _child(node, last) is not _MISSING:
        node[int(last)] = None


def _child(node: object, key: str) -> object:
    if isinstance(node, dict):
        return node.get(key, _MISSING)
    if isinstance(node, list) and key.isascii() and key.isdigit() and int(key) < len(node):
        return node[int(key)]
    return _MISSING


def _same(a: object, b: object) -> bool:
    # A loop over pairs instead of recursion: orjson parses nesting up to 1024 deep, Python recurses less.
    pending = [(a, b)]
    while pending:
        x, y = pending.pop()
        if isinstance(x, dict) and isinstance(y, dict):
            if x.keys() != y.keys():
                return False
            pending.extend((x[key], y[key]) for key in x)
        elif isinstance(x, list) and isinstance(y, list):
            if len(x) != len(y):
                return False
            pending.extend(zip(x, y, strict=True))
        elif isinstance(x, bool) or isinstance(y, bool):
            if x is not y:
                return False
        elif type(x) in (int, float) and type(y) in (int, float):
            if x != y:
                return False
        elif type(x) is not type(y) or x != y:
            return False
    return True
