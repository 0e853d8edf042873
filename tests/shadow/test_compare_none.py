"""The `none` comparison kind."""

from __future__ import annotations

from shadow.compare import Comparison
from shadow.compare.none import NoComparison
from tests.shadow.bodies import scores


def test_none_compares_nothing_and_reports_no_error() -> None:
    for primary, shadow in [(b"anything", b"\xff not even json"), (scores([[1.0]]), scores([[2.0]]))]:
        result = NoComparison()(primary, shadow)
        assert result == Comparison(agree=None, rows=0, rows_agree=0)
        assert result.to_json() == {"rows": 0, "rows_agree": 0}
