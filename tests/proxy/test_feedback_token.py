"""Feedback tokens in isolation: what they bind, the secret file (0600, atomic, reused), the post parser and
the setting's three spellings. The same behaviour over real sockets: tests/integration/test_feedback.py."""

from __future__ import annotations

import base64
import hashlib
import hmac
import math
import os
import re
import stat
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from proxy.cli.command import build_parser
from proxy.dataplane.errors import BadRequest
from proxy.feedback import parse
from proxy.feedback.token import FeedbackTokens, data_dir_secret, read_secret, subject_of
from proxy.settings.build import feedback_secret
from proxy.settings.load import resolve

KEY = b"k" * 32
RID, EXP, UNIT = "req-1", "split", "0123456789abcdef"


def test_a_token_binds_request_experiment_unit_and_subject() -> None:
    tokens = FeedbackTokens(KEY)
    token = tokens.issue(RID, EXP, UNIT, None, at=1_765_000_000)
    assert re.fullmatch(r"[A-Za-z0-9_-]{22}\.[A-Za-z0-9_-]{43}", token)
    assert token == tokens.issue(RID, EXP, UNIT, None, at=1_765_000_000)  # deterministic: survives restarts
    assert tokens.matches(token, RID, EXP, UNIT, None)
    assert tokens.issued_for(token, RID, None)
    for other in (
        (RID + "x", EXP, UNIT, None),
        (RID, "other", UNIT, None),
        (RID, EXP, "fedcba9876543210", None),
        (RID, EXP, None, None),
        (RID, EXP, UNIT, ""),  # auth on, a token without `sub`, is not auth off
        (RID, EXP, UNIT, "alice"),
    ):
        assert not tokens.matches(token, *other), other
    assert not tokens.issued_for(token, RID + "x", None)
    assert not tokens.issued_for(token, RID, "alice")
    assert tokens.issue(RID, EXP, None, None) == tokens.issue(RID, EXP, "", None)  # no unit = ""
    assert not FeedbackTokens(b"o" * 32).matches(token, RID, EXP, UNIT, None)


def test_a_token_vouches_for_its_issue_time_which_cannot_be_changed() -> None:
    tokens = FeedbackTokens(KEY, clock=lambda: 1_765_000_123.9)
    token = tokens.issue(RID, EXP, UNIT, None)
    assert tokens.issued_at(token, RID, None) == 1_765_000_123
    assert tokens.issued_at(token, RID, "alice") is None
    assert tokens.issued_at(token, RID + "x", None) is None
    tag, _, mac = token.partition(".")
    stamp = bytearray(base64.urlsafe_b64decode(tag + "=="))
    stamp[3] ^= 1  # another second, same MAC bytes: refused
    forged = base64.urlsafe_b64encode(bytes(stamp)).rstrip(b"=").decode() + "." + mac
    assert tokens.issued_at(forged, RID, None) is None
    assert not tokens.matches(forged, RID, EXP, UNIT, None)
    assert tokens.issue(RID, EXP, UNIT, None, at=1) != token  # the time is in the TAG, the MAC is the same
    assert tokens.issue(RID, EXP, UNIT, None, at=1).partition(".")[2] == mac


def test_tokens_of_the_earlier_format_are_still_accepted_without_a_time() -> None:
    def v1_tag(rid: str) -> str:
        digest = hmac.new(
            KEY,
            b"outrider-feedback-v1 request\x00" + len(rid).to_bytes(4, "big") + rid.encode(),
            hashlib.sha256,
        ).digest()[:16]
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()

    tokens = FeedbackTokens(KEY)
    old = v1_tag(RID) + "." + tokens.issue(RID, EXP, UNIT, None).partition(".")[2]  # what 2026-12-07 issued
    assert tokens.issued_at(old, RID, None) == 0  # genuine, no time: an unknown id stays 404
    assert tokens.matches(old, RID, EXP, UNIT, None)
    assert tokens.issued_at(old, RID + "x", None) is None


def test_fields_cannot_slide_into_each_other() -> None:
    tokens = FeedbackTokens(KEY)
    assert tokens.issue("ab", "c", "", None) != tokens.issue("a", "bc", "", None)
    assert tokens.issue("a", "b", "", "c") != tokens.issue("a", "b", "c", None)


def test_subject_binds_per_subject() -> None:
    tokens = FeedbackTokens(KEY)
    alice = tokens.issue(RID, EXP, UNIT, "alice")
    assert tokens.matches(alice, RID, EXP, UNIT, "alice")
    assert tokens.issued_for(alice, RID, "alice")
    assert not tokens.matches(alice, RID, EXP, UNIT, "bob")
    assert not tokens.issued_for(alice, RID, "bob")
    assert subject_of(None) is None
    assert subject_of({"sub": "alice"}) == "alice"
    assert subject_of({"iss": "x"}) == ""


@pytest.mark.parametrize(
    "token", ["", ".", "x", "é" * 66, "é" * 22 + ".x", "\ud800", "a.b.c", "A" * 22 + ".b"]
)
def test_garbage_tokens_are_refused_without_raising(token: str) -> None:
    tokens = FeedbackTokens(KEY)
    assert not tokens.issued_for(token, RID, None)
    assert not tokens.matches(token, RID, EXP, UNIT, None)


def test_short_keys_are_refused() -> None:
    with pytest.raises(ValueError, match="at least 32 bytes"):
        FeedbackTokens(b"short")


@pytest.fixture
def open_umask() -> Iterator[None]:
    old = os.umask(0)
    yield
    os.umask(old)


@pytest.mark.usefixtures("open_umask")
def test_the_data_dir_secret_is_made_once_with_0600(tmp_path: Path) -> None:
    data_dir = tmp_path / "not" / "yet"
    secret = data_dir_secret(data_dir)
    path = data_dir / "feedback.secret"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600  # even with umask 0
    assert re.fullmatch(rb"[0-9a-f]{64}", secret)
    assert path.read_bytes() == secret + b"\n"
    assert data_dir_secret(data_dir) == secret
    assert os.listdir(data_dir) == ["feedback.secret"]


def test_concurrent_first_starts_agree_on_one_secret(tmp_path: Path) -> None:
    with ThreadPoolExecutor(8) as pool:
        secrets = set(pool.map(lambda _: data_dir_secret(tmp_path), range(16)))
    assert len(secrets) == 1
    assert os.listdir(tmp_path) == ["feedback.secret"]


def test_secret_files_are_stripped_and_must_be_long_enough(tmp_path: Path) -> None:
    path = tmp_path / "key"
    path.write_bytes(b"  " + KEY + b"\n")
    assert read_secret(path) == KEY
    assert feedback_secret(str(path)) == KEY
    assert feedback_secret(None) is None
    path.write_bytes(b"x" * 31 + b"\n")
    with pytest.raises(ValueError, match="at least 32 bytes"):
        read_secret(path)
    with pytest.raises(SystemExit) as info:
        feedback_secret(str(path))
    assert info.value.code == 2
    with pytest.raises(SystemExit):
        feedback_secret(str(tmp_path / "missing"))


def test_the_setting_has_a_file_key_a_flag_and_a_variable(tmp_path: Path) -> None:
    def flags(*argv: str) -> dict[str, object]:
        return vars(build_parser().parse_args(["run", *argv]))

    settings = tmp_path / "outrider.yaml"
    settings.write_text("feedback: {secretFile: /from/file}\n")
    assert resolve(None, flags(), {}).settings.feedback.secret_file is None
    assert resolve(str(settings), flags(), {}).settings.feedback.secret_file == "/from/file"
    env = {"OUTRIDER_FEEDBACK_SECRET_FILE": "/from/env"}
    assert resolve(str(settings), flags(), env).settings.feedback.secret_file == "/from/env"
    flag = flags("--feedback-secret-file", "/from/flag")
    assert resolve(str(settings), flag, env).settings.feedback.secret_file == "/from/flag"


def test_parse_keeps_bad_rewards_for_the_range_check() -> None:
    for raw in (b"NaN", b"Infinity", b"-Infinity", b"1e400", b"-1e400", b"1" + b"0" * 400):
        post = parse(b'{"request_id": "r", "reward": %s, "token": "t"}' % raw)
        assert not math.isfinite(post.reward), raw
    post = parse(b'{"request_id": "r", "reward": 1e200, "token": "t"}')
    assert (post.request_id, post.reward, post.token) == ("r", 1e200, "t")
    assert parse(b'{"request_id": "r", "reward": 1, "token": 5}').token is None
    assert parse(b'{"request_id": "r", "reward": 1}').token is None
    for bad in (b"{", b"[]", b'{"request_id": "r"}', b'{"request_id": "r", "reward": true}', b"[" * 50_000):
        with pytest.raises(BadRequest):
            parse(bad)
