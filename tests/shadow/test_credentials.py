"""Credential headers and `spec.shadow.forwardHeaders`: what counts as a credential, what is kept, and how the
experiment file declares (and is refused to declare) the headers shadows may receive."""

from __future__ import annotations

import pytest
from multidict import CIMultiDict

from experiments.config import ConfigError, load_experiment_text
from shadow.credentials import is_credential, strip_credentials

CREDENTIALS = [
    "Authorization",
    "Proxy-Authorization",
    "Cookie",
    "X-Api-Key",
    "api-key",
    "ApiKey",
    "X-Auth-Token",
    "X-Access-Token",
    "X-Amz-Security-Token",
    "X-Goog-Api-Key",
    "X-CSRF-Token",
    "X-Session-Id",
    "X-Client-Secret",
    "X-Authenticated-Userid",
    "X-Auth-Request-Email",
    "X-Ms-Client-Principal",
    "Signature",
    "X-Hub-Signature-256",
    "DPoP",
    "x_api_key",
]
NOT_CREDENTIALS = [
    "Content-Type",
    "Content-Encoding",
    "Accept",
    "X-Request-Id",
    "X-Forwarded-For",
    "X-User-Id",
    "Traceparent",
    "Inference-Header-Content-Length",
    "X-Outrider-Shadow",
    "User-Agent",
]


@pytest.mark.parametrize("name", CREDENTIALS)
def test_credentials_are_recognised(name: str) -> None:
    assert is_credential(name)


@pytest.mark.parametrize("name", NOT_CREDENTIALS)
def test_inputs_are_not_credentials(name: str) -> None:
    assert not is_credential(name)


def test_strip_keeps_what_is_declared_and_every_value_of_the_rest() -> None:
    headers = CIMultiDict(
        [("Authorization", "Bearer a"), ("Cookie", "a=1"), ("cookie", "b=2"), ("Content-Type", "x")]
    )
    removed = strip_credentials(headers, frozenset({"authorization"}))
    assert removed == ["cookie"]
    assert list(headers.items()) == [("Authorization", "Bearer a"), ("Content-Type", "x")]


FILE = """\
apiVersion: outrider.dev/v1alpha1
kind: Experiment
metadata: {name: shadowed}
spec:
  match: {pathPrefix: /v2/models/digits}
  variants:
    - {name: stable, role: stable, upstream: http://127.0.0.1:9001}
    - {name: int8, role: shadow, upstream: http://127.0.0.1:9004}
  assignment: {unit: header:x-user-id, salt: s1}
  strategy:
    blueGreen: {}
  shadow:
    forwardHeaders: HEADERS
"""


def test_forward_headers_become_lower_case_names() -> None:
    exp = load_experiment_text(FILE.replace("HEADERS", "[Authorization, X-Tenant-Token]"), "f.yaml")
    assert exp.shadow is not None
    assert exp.shadow.forward_headers == frozenset({"authorization", "x-tenant-token"})


def test_by_default_no_credential_is_forwarded() -> None:
    exp = load_experiment_text(FILE.replace("    forwardHeaders: HEADERS\n", "    sample: 1.0\n"), "f.yaml")
    assert exp.shadow is not None
    assert exp.shadow.forward_headers == frozenset()


@pytest.mark.parametrize(
    ("headers", "problem"),
    [
        (
            "[Authorization, authorization]",
            "f.yaml:13:37: spec.shadow.forwardHeaders.1: 'authorization' appears twice",
        ),
        (
            "[Bad Header]",
            "f.yaml:13:22: spec.shadow.forwardHeaders.0: 'Bad Header' must be an HTTP header name",
        ),
        (
            "[Proxy-Authorization]",
            "f.yaml:13:22: spec.shadow.forwardHeaders.0: 'Proxy-Authorization' never reaches a shadow as the"
            " client sent it",
        ),
        (
            "[Host]",
            "f.yaml:13:22: spec.shadow.forwardHeaders.0: 'Host' never reaches a shadow as the client sent it",
        ),
        (
            "[X-Outrider-Shadow]",
            "f.yaml:13:22: spec.shadow.forwardHeaders.0: 'X-Outrider-Shadow' never reaches a shadow as the"
            " client sent it",
        ),
        ("Authorization", "f.yaml:13:21: spec.shadow.forwardHeaders: expected a list, got 'Authorization'"),
    ],
)
def test_bad_forward_headers_are_refused_where_they_are(headers: str, problem: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_experiment_text(FILE.replace("HEADERS", headers), "f.yaml")
    assert [str(p) for p in caught.value.problems] == [problem]
