"""Feedback tokens: only whoever received an answer can post the reward for it, once.

Responses of experiments with a `reward_mean` goal carry `x-outrider-feedback-token`; `POST
/outrider/v1/feedback` must return it (proxy.feedback). The token is `TAG.MAC`, both base64url without
padding (22 + 1 + 43 = 66 characters):

    MAC = HMAC-SHA256(secret, "outrider-feedback-v1 record\\0" ‖ f(request id) ‖ f(experiment) ‖ f(unit)
                              [‖ f(subject)])
    TAG = T ‖ HMAC-SHA256(secret, "outrider-feedback-v2 request\\0" ‖ T ‖ f(request id) [‖ f(subject)])[:12]

where T is the issue time (whole Unix seconds, 4 bytes, big-endian), f(s) is the UTF-8 bytes of `s`
preceded by their length (4 bytes, big-endian), `unit` is the unit hash the outcome record stores ("" when
there is none) and `subject` — present only when JWT auth is on — is the verified `sub` claim ("" when the
token has none). MAC binds the token to the outcome record; TAG proves a token was issued for a request id,
and when, without that record: an unknown id with a forged token is refused (403) exactly like a known one,
so nobody without a token learns which ids exist, and a genuine token whose outcome can no longer be found
(the Redis store's request-id index expired) is known to be too late (422) rather than unknown (404).
Tokens of earlier versions (TAG = the first 16 bytes of HMAC-SHA256(secret, "outrider-feedback-v1
request\\0" ‖ f(request id) [‖ f(subject)]), no time) are still accepted; they vouch for no issue time.

The secret: the content of `--feedback-secret-file` (surrounding whitespace removed, ≥ 32 bytes), else
`DATA_DIR/feedback.secret`, made on first start (32 random bytes written as 64 hex characters, mode 0600,
created atomically) and reused afterwards, so tokens survive restarts.
Usage: tokens = FeedbackTokens(data_dir_secret(path)); token = tokens.issue(rid, experiment, unit, subject)
       issued = tokens.issued_at(token, rid, subject)   # None: not issued for rid; 0: an old token, no time
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import os
import secrets
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from experiments.model import Experiment
from proxy.telemetry.logs import event

HEADER = "x-outrider-feedback-token"
SECRET_FILE = "feedback.secret"
MIN_SECRET_BYTES = 32
TAG_BYTES = 16
REWARD_METRIC = "reward_mean"
_RECORD = b"outrider-feedback-v1 record\x00"
_REQUEST = b"outrider-feedback-v2 request\x00"
_REQUEST_V1 = b"outrider-feedback-v1 request\x00"
TIME_BYTES = 4


def _fields(*values: str) -> bytes:
    out = bytearray()
    for value in values:
        raw = value.encode("utf-8", "surrogatepass")
        out += len(raw).to_bytes(4, "big")
        out += raw
    return bytes(out)


def _b64(digest: bytes) -> str:
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def _bytes(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass")


def subject_of(principal: Mapping[str, Any] | None) -> str | None:
    """What a token binds besides the request: the verified `sub` when auth is on ("" if none), else None."""
    if principal is None:
        return None
    sub = principal.get("sub")
    return "" if sub is None else str(sub)


def reward_range(experiment: Experiment) -> tuple[float, float] | None:
    """The declared range of the experiment's `reward_mean` goal; None when it has no such goal."""
    analysis = experiment.analysis
    if analysis is None:
        return None
    for goal in analysis.goals:
        if goal.metric == REWARD_METRIC:
            return goal.range
    return None


class FeedbackTokens:
    """Issues and checks feedback tokens with one secret (pre-keyed HMACs: a copy per token)."""

    def __init__(self, secret: bytes, clock: Callable[[], float] = time.time) -> None:
        if len(secret) < MIN_SECRET_BYTES:
            raise ValueError(f"the feedback secret must be at least {MIN_SECRET_BYTES} bytes")
        self._record = hmac.new(secret, _RECORD, hashlib.sha256)
        self._request = hmac.new(secret, _REQUEST, hashlib.sha256)
        self._request_v1 = hmac.new(secret, _REQUEST_V1, hashlib.sha256)
        self.clock = clock
        """Wall clock of the issue times."""

    def _tag(self, request_id: str, subject: str | None, stamp: bytes) -> str:
        h = self._request.copy()
        h.update(stamp)
        h.update(_fields(request_id) if subject is None else _fields(request_id, subject))
        return _b64(stamp + h.digest()[: TAG_BYTES - TIME_BYTES])

    def _tag_v1(self, request_id: str, subject: str | None) -> str:
        h = self._request_v1.copy()
        h.update(_fields(request_id) if subject is None else _fields(request_id, subject))
        return _b64(h.digest()[:TAG_BYTES])

    def _mac(self, request_id: str, experiment: str, unit: str | None, subject: str | None) -> str:
        values = (request_id, experiment, unit or "")
        h = self._record.copy()
        h.update(_fields(*values) if subject is None else _fields(*values, subject))
        return _b64(h.digest())

    def issue(
        self, request_id: str, experiment: str, unit: str | None, subject: str | None, at: int | None = None
    ) -> str:
        """The token for one outcome record (what `x-outrider-feedback-token` carries), issued now (or `at`,
        Unix seconds)."""
        when = int(self.clock()) if at is None else at
        stamp = max(0, min(when, 2**32 - 1)).to_bytes(TIME_BYTES, "big")
        return f"{self._tag(request_id, subject, stamp)}.{self._mac(request_id, experiment, unit, subject)}"

    def issued_at(self, token: str, request_id: str, subject: str | None) -> int | None:
        """When `token` was issued for this request id (and subject), in Unix seconds, checked without its
        outcome record; 0 for a token of an earlier version (no time in it); None if not issued for it."""
        tag = token.partition(".")[0]
        try:
            stamp = base64.urlsafe_b64decode(tag + "==")[:TIME_BYTES] if len(tag) == 22 else b""
        except ValueError:
            return None
        if len(stamp) == TIME_BYTES and hmac.compare_digest(
            _bytes(tag), _bytes(self._tag(request_id, subject, stamp))
        ):
            return int.from_bytes(stamp, "big")
        return 0 if hmac.compare_digest(_bytes(tag), _bytes(self._tag_v1(request_id, subject))) else None

    def issued_for(self, token: str, request_id: str, subject: str | None) -> bool:
        """Whether `token` was issued for this request id (and subject), without its outcome record."""
        return self.issued_at(token, request_id, subject) is not None

    def matches(
        self, token: str, request_id: str, experiment: str, unit: str | None, subject: str | None
    ) -> bool:
        """Whether `token` is the one issued for this outcome record (and subject)."""
        if self.issued_at(token, request_id, subject) is None:
            return False
        expected = self._mac(request_id, experiment, unit, subject)
        return hmac.compare_digest(_bytes(token.partition(".")[2]), _bytes(expected))


def read_secret(path: Path) -> bytes:
    """The secret in `path` (surrounding whitespace removed); ValueError if shorter than 32 bytes."""
    secret = path.read_bytes().strip()
    if len(secret) < MIN_SECRET_BYTES:
        raise ValueError(f"{path}: a feedback secret must be at least {MIN_SECRET_BYTES} bytes")
    if path.stat().st_mode & 0o077:
        event("feedback secret readable by others", level=logging.WARNING, path=str(path))
    return secret


def data_dir_secret(data_dir: Path) -> bytes:
    """`DATA_DIR/feedback.secret`, created on first use (mode 0600, atomically: concurrent starts agree).

    Blocking file I/O: call it at start-up, before serving (or in a thread).
    """
    path = data_dir / SECRET_FILE
    try:
        return read_secret(path)
    except FileNotFoundError:
        pass
    data_dir.mkdir(parents=True, exist_ok=True)
    tmp = data_dir / f".{SECRET_FILE}.{os.getpid()}.{secrets.token_hex(4)}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.fchmod(fd, 0o600)  # whatever the umask
        os.write(fd, secrets.token_hex(32).encode("ascii") + b"\n")
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.link(tmp, path)  # appears whole or not at all; never replaces a secret another start just made
    except FileExistsError:
        pass
    finally:
        tmp.unlink()
    dir_fd = os.open(data_dir, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    event("feedback secret created", path=str(path))
    return read_secret(path)
