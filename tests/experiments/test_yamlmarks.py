"""YAML to plain data with the line and column of every path."""

from __future__ import annotations

from experiments.yamlmarks import Mark, describe, load_marked

TEXT = """\
a:
  b: [1, two, {c: null}]
  d: 2026-11-01
  e: yes
"""


def test_data_and_marks() -> None:
    doc = load_marked(TEXT)
    assert doc.parsed
    assert doc.findings == []
    assert doc.data == {"a": {"b": [1, "two", {"c": None}], "d": "2026-11-01", "e": True}}
    assert doc.mark_of(()) == Mark(1, 1)
    assert doc.mark_of(("a", "b")) == Mark(2, 6)
    assert doc.mark_of(("a", "b"), key=True) == Mark(2, 3)
    assert doc.mark_of(("a", "b", 1)) == Mark(2, 10)
    assert doc.mark_of(("a", "b", 2, "c")) == Mark(2, 19)
    assert doc.mark_of(("a", "b", 2, "missing")) == Mark(2, 15)  # nearest parent
    assert doc.mark_of(("a", "d")) == Mark(3, 6)


def test_duplicate_keys_are_findings_and_the_last_wins() -> None:
    doc = load_marked("a: 1\nb: 2\na: 3\na: 4\n")
    assert doc.data == {"a": 4, "b": 2}
    assert [(f.path, f.mark) for f in doc.findings] == [(("a",), Mark(3, 1)), (("a",), Mark(4, 1))]
    assert doc.findings[0].message == "duplicate key 'a' (first defined at line 1, column 1)"
    assert doc.mark_of(("a",)) == Mark(4, 4)


def test_merge_keys_are_not_duplicates() -> None:
    doc = load_marked("base: &b {x: 1, y: 2}\nnew:\n  <<: *b\n  y: 3\n")
    assert doc.findings == []
    assert doc.data == {"base": {"x": 1, "y": 2}, "new": {"x": 1, "y": 3}}
    assert doc.mark_of(("new", "y")) == Mark(4, 6)


def test_syntax_errors_and_bad_characters_are_findings() -> None:
    doc = load_marked("a: [1, 2\nb: 3\n")
    assert not doc.parsed
    [finding] = doc.findings
    assert finding.message.startswith("YAML syntax error:")
    assert finding.mark == Mark(2, 2)
    [bad_char] = load_marked("a: 1\nb: \x07\n").findings
    assert bad_char.mark == Mark(2, 4)
    [two_docs] = load_marked("a: 1\n---\nb: 2\n").findings
    assert two_docs.mark == Mark(2, 1)


def test_odd_input_never_raises() -> None:
    assert load_marked("").findings[0].message.startswith("the file is empty")
    assert "too deep" in load_marked("[" * 600 + "]" * 600).findings[0].message  # composer or converter
    assert load_marked("[" * 100 + "]" * 100).findings[0].message == "nested too deep (more than 64 levels)"
    assert load_marked("a: !!int x\n").findings[0].message.startswith("bad int value 'x'")
    assert load_marked("? [1]\n: x\n").findings[0].message == "mapping keys must be plain strings"
    bomb = "a: &a [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]\n" + "".join(
        f"{c}: &{c} [*{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}]\n"
        for p, c in zip("abcdef", "bcdefg", strict=True)
    )
    assert any("too large" in f.message for f in load_marked(bomb).findings)


def test_describe() -> None:
    assert [describe(v) for v in ("x", 1, 1.5, None, True, {}, [], object())] == [
        "'x'",
        "1",
        "1.5",
        "null",
        "true",
        "a mapping",
        "a list",
        "a object",
    ]
