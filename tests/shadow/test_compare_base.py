"""The Comparison record, its JSON form, and the registry of comparison kinds."""

from __future__ import annotations

from typing import get_args

import pytest

from experiments.model import CompareKind
from shadow.compare import Comparison, comparator
from shadow.compare.base import not_comparable
from shadow.compare.json_exact import JsonExact
from shadow.compare.none import NoComparison
from shadow.compare.oip_numeric import OipNumeric
from shadow.compare.oip_top1 import OipTop1
from shadow.compare.text import TextCompare
from tests.shadow.bodies import scores


def test_to_json_names_every_field_for_the_outcome_record() -> None:
    full = Comparison(
        agree=False, rows=4, rows_agree=3, max_abs_diff=0.5, max_rel_diff=0.25, exceed=True, detail="why"
    )
    assert full.to_json() == {
        "agree": False,
        "rows": 4,
        "rows_agree": 3,
        "max_abs_diff": 0.5,
        "max_rel_diff": 0.25,
        "exceed": True,
        "compare_error": "why",
    }


def test_to_json_leaves_out_none_fields_but_keeps_false_and_zero() -> None:
    assert Comparison(agree=False).to_json() == {"agree": False, "rows": 0, "rows_agree": 0}
    assert not_comparable("shadow answer is not JSON").to_json() == {
        "rows": 0,
        "rows_agree": 0,
        "compare_error": "shadow answer is not JSON",
    }


def test_registry_knows_every_kind_the_config_accepts() -> None:
    made = {kind: comparator(kind) for kind in get_args(CompareKind)}
    assert {kind: type(c) for kind, c in made.items()} == {
        "oip-top1": OipTop1,
        "oip-numeric": OipNumeric,
        "json-exact": JsonExact,
        "none": NoComparison,
        "text": TextCompare,
    }


def test_registry_passes_options() -> None:
    assert comparator("oip-numeric", atol=0.1, rtol=0, output="y") == OipNumeric(output="y", atol=0.1, rtol=0)
    assert comparator("json-exact", ignore_paths=["id"]) == JsonExact(ignore_paths=("id",))
    body = scores([[0.1, 0.9]])
    assert comparator("oip-top1")(body, body).agree is True


@pytest.mark.parametrize(
    ("kind", "options", "message"),
    [
        ("oip-top5", {}, "unknown comparison kind 'oip-top5'"),
        ("none", {"atol": 1.0}, "takes no option 'atol'"),
        ("oip-top1", {"atol": 1.0}, "takes no option 'atol'"),
        ("oip-top1", {"output": ""}, "output must be"),
        ("oip-numeric", {"output": 3}, "output must be"),
        ("oip-numeric", {"atol": -1.0}, "atol must be"),
        ("oip-numeric", {"rtol": float("nan")}, "rtol must be"),
        ("oip-numeric", {"rtol": True}, "rtol must be"),
        ("oip-numeric", {"atol": "0.1"}, "atol must be"),
        ("json-exact", {"ignore_paths": "id"}, "must be a list"),
        ("json-exact", {"ignore_paths": ["outputs..data"]}, "not a dotted path"),
        ("json-exact", {"ignore_paths": [3]}, "not a dotted path"),
    ],
)
def test_registry_refuses_bad_kinds_and_options(kind: str, options: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        comparator(kind, **options)
