"""`proxy.dataplane.paths.normalise`: decoding once, dot-segments, slashes, and what is refused."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from proxy.dataplane.errors import BadPath
from proxy.dataplane.paths import decode_once, normalise, remove_dot_segments


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("/v2/models/m/infer", "/v2/models/m/infer"),
        ("/v2/models/m/infer?x=1", "/v2/models/m/infer?x=1"),
        ("/v2/models/x/../m/infer", "/v2/models/m/infer"),
        ("/v2/models/x/./infer", "/v2/models/x/infer"),
        ("/v2/models/x/%2e%2e/m/infer", "/v2/models/m/infer"),
        ("/v2/models/x/%2E%2e/m", "/v2/models/m"),
        ("/v2/models/x/.%2E/m", "/v2/models/m"),
        ("/v2/models%2Fm%2finfer", "/v2/models/m/infer"),
        ("/v2/models/%6D/infer", "/v2/models/m/infer"),  # unreserved letters
        ("/v2/%7e%2D%5f%30", "/v2/~-_0"),
        ("/v2//models///m/infer", "/v2/models/m/infer"),
        ("//v2/models/m", "/v2/models/m"),
        ("/v2/models/m/", "/v2/models/m/"),
        ("/v2/models/m/.", "/v2/models/m/"),
        ("/v2/models/m/x/..", "/v2/models/m/"),
        ("/", "/"),
        ("/.", "/"),
        ("/v2/%252e%252e/m", "/v2/%252e%252e/m"),  # decoded once: a literal '%2e', never a dot
        ("/v2/a%20b/caf%c3%a9", "/v2/a%20b/caf%C3%A9"),  # other escapes kept, hex upper-cased
        ("/v2/a%3Fb?q=%2e%2e/../x", "/v2/a%3Fb?q=%2e%2e/../x"),  # '?' stays encoded; the query untouched
        ("/v2/a;b/./c", "/v2/a;b/c"),
    ],
)
def test_normalised_paths(raw: str, expected: str) -> None:
    assert normalise(raw) == expected


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        ("/..", "climbs above the root"),
        ("/v2/../../admin", "climbs above the root"),
        ("/v2/%2e%2e/%2e%2e/admin", "climbs above the root"),
        ("/v2/models/m/..;/admin", "still contains '..'"),
        ("/v2/models/m/.../x", "still contains '..'"),
        ("/v2/models/m/..%5cadmin", "still contains '..'"),
        ("/v2/models/m%00/infer", "encoded NUL"),
        ("/v2/models/m%0d%0aX-Injected:%201", "encoded CR"),
        ("/v2/models/m%0A", "encoded LF"),
        ("/v2/models/%zz", "not followed by two hex digits"),
        ("/v2/models/m%2", "not followed by two hex digits"),
        ("/v2/models/m%", "not followed by two hex digits"),
        ("v2/models/m", "does not start with '/'"),
        ("", "does not start with '/'"),
    ],
)
def test_refused_paths(raw: str, why: str) -> None:
    with pytest.raises(BadPath, match=why) as caught:
        normalise(raw)
    assert caught.value.status == 400
    assert caught.value.code == "bad_path"


def test_a_long_path_is_cut_in_the_detail() -> None:
    with pytest.raises(BadPath) as caught:
        normalise("/" + "a" * 5000 + "/%00")
    assert len(caught.value.detail) < 300


def test_dot_segments_follow_rfc_3986_examples() -> None:
    # RFC 3986 §5.2.4's own examples, made absolute.
    assert remove_dot_segments("/a/b/c/./../../g") == "/a/g"
    assert remove_dot_segments("/mid/content=5/../6") == "/mid/6"
    assert remove_dot_segments("/a//../b") == "/a/b"  # the empty segment is the one removed


def test_decode_once_keeps_other_escapes() -> None:
    assert decode_once("/a%2fb%25%41") == "/a/b%25A"


SEGMENT = st.text(alphabet="ab.%/2eEfF5c", max_size=12)


@given(st.lists(SEGMENT, max_size=6))
def test_normalised_paths_are_fixed_points_and_clean(parts: list[str]) -> None:
    raw = "/" + "/".join(parts)
    try:
        once = normalise(raw)
    except BadPath:
        return
    assert normalise(once) == once
    assert "//" not in once
    segments = once.split("/")
    assert "." not in segments
    assert ".." not in once


@given(st.lists(st.text(alphabet="ab./%2:;~-", max_size=10), max_size=6))
def test_the_shortcut_for_clean_paths_agrees_with_the_full_normalisation(parts: list[str]) -> None:
    # normalise returns a path with no escape, no '//', no '/.' and no '..' as it is, without a pass
    raw = "/" + "/".join(parts)
    try:
        full = remove_dot_segments(re.sub("/{2,}", "/", decode_once(raw)))
    except BadPath:
        return
    if "%" not in raw and "//" not in raw and "/." not in raw and ".." not in raw:
        assert full == raw
        assert normalise(raw + "?q=/../x") == raw + "?q=/../x"
