"""Which calls are inference (outcomes) and which are the protocols' health and metadata reads."""

from __future__ import annotations

from dataclasses import replace

import pytest

from experiments.model import CanaryStrategy, Experiment, OutcomeRule, UnitKey, Variant
from experiments.protocol_paths import is_status_call, outcome_wanted
from proxy.control.router import prefix_matches

EXP = Experiment(
    name="e",
    source="t",
    path_prefix="/v2/models/digits",
    variants=(Variant("stable", "stable", "http://h:1"), Variant("candidate", "candidate", "http://h:2")),
    unit=UnitKey("request"),
    salt="s",
    strategy=CanaryStrategy((10.0,)),
)


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/v2", True),
        ("GET", "/v2/health/ready", True),
        ("HEAD", "/v2/health/live", True),
        ("GET", "/v2/models/digits", True),
        ("GET", "/v2/models/digits/ready", True),
        ("GET", "/v2/models/digits/versions/2", True),
        ("GET", "/v2/models/digits/versions/2/ready", True),
        ("GET", "/v2/repository/index", True),
        ("GET", "/v1/models/digits", True),
        ("GET", "/v1/models/digits/versions/3/metadata", True),
        ("GET", "/v1/models", True),
        ("POST", "/v2/models/digits/infer", False),
        ("POST", "/v2/models/digits/versions/2/infer", False),
        ("POST", "/v1/models/digits:predict", False),
        ("POST", "/v2/repository/index", False),  # only reads are status calls
        ("GET", "/v2/models/digits/infer", False),
        ("GET", "/v2/sse", False),
        ("GET", "/v2/models/digits/ready/extra", False),
    ],
)
def test_status_calls(method: str, path: str, status: bool) -> None:
    assert is_status_call(method, path) is status


def test_outcomes_by_default_and_as_declared() -> None:
    assert outcome_wanted(EXP, "POST", "/v2/models/digits/infer")
    assert not outcome_wanted(EXP, "GET", "/v2/models/digits/ready")
    declared = replace(EXP, outcomes=OutcomeRule(frozenset({"POST"}), ("/infer",)))
    assert outcome_wanted(declared, "POST", "/v2/models/digits/versions/1/infer")
    assert not outcome_wanted(declared, "POST", "/v2/models/digits/explain")
    assert not outcome_wanted(declared, "GET", "/v2/models/digits/infer")
    errors_only = replace(EXP, outcomes=OutcomeRule(error_statuses=frozenset({404})))
    assert not outcome_wanted(errors_only, "GET", "/v2/models/digits/ready")  # the default still applies
    assert outcome_wanted(errors_only, "POST", "/v2/models/digits/infer")


def test_verbs_after_a_colon_stay_under_their_prefix() -> None:
    assert prefix_matches("/v1/models/digits", "/v1/models/digits:predict")
    assert prefix_matches("/v1/models/digits", "/v1/models/digits/versions/2:explain")
    assert not prefix_matches("/v1/models/digits", "/v1/models/digits2:predict")


def test_matching_by_host_and_headers() -> None:
    from proxy.control.router import Router
    from tests.support.inbound import request_headers

    plain = EXP
    seldon = replace(EXP, name="seldon", headers=(("seldon-model", "iris"),))
    hosted = replace(EXP, name="hosted", host="wine.example")
    router = Router([plain, seldon, hosted])
    path = "/v2/models/digits/infer"

    def matched(headers: dict[str, str] | None = None) -> str:
        live = router.match("POST", path, None if headers is None else request_headers(headers))
        assert live is not None
        return live.experiment.name

    assert matched({"seldon-model": "iris"}) == "seldon"
    assert matched({"host": "Wine.Example:80"}) == "hosted"
    assert matched({"host": "[::1]:80"}) == "e"
    assert matched() == "e"
