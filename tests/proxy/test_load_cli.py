"""`outrider load` refuses what it must not do before sending anything (its traffic is tested by the README's
by-hand test, tests/docs/test_readme_by_hand.py)."""

from __future__ import annotations

import pytest

from proxy.cli import main


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["http://10.1.2.3:8080/v2/models/digits/infer"], "is not this host"),
        (["http://127.0.0.1:9/x", "--users", "0"], "--users must be ≥ 1"),
        (["http://127.0.0.1:9/x", "--seconds", "0"], "--seconds must be > 0"),
        (["http://127.0.0.1:9/x", "--test-set", "/nonexistent/test_set.json"], "cannot read the test set"),
    ],
)
def test_load_refuses_before_sending(args: list[str], says: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["load", *args]) == 2
    assert says in capsys.readouterr().err
