"""The `outrider status` table from a fixed /experiments document (golden), including the last look's
evidence lines; admin URLs without a scheme."""

from __future__ import annotations

from typing import Any

from proxy.cli.control import base_url, status_table

LOOKED: dict[str, Any] = {
    "name": "digits",
    "phase": "rolled_back",
    "step": 1,
    "weights": {"stable": 100.0},
    "strategy": {"kind": "canary", "steps": [10, 50]},
    "requests": {"stable": {"total": 900, "errors": 2}, "candidate": {"total": 120, "errors": 40}},
    "state": {"history": [{"decision": "ADVANCE"}, {"decision": "ROLLBACK", "reason": "ROLLBACK: ..."}]},
    "analysis": {
        "kind": "ROLLBACK",
        "records": 1000,
        "snapshot": {
            "metrics": [
                {
                    "name": "error_rate",
                    "estimate": 3.5,
                    "ci_low": 2.25,
                    "ci_high": None,
                    "log_e_harm": 333.2,
                    "log_e_noninf": -1.0,
                },
                {
                    "name": "latency_gmean",
                    "estimate": 1.01,
                    "ci_low": 0.98,
                    "ci_high": 1.04,
                    "log_e_harm": None,
                    "log_e_noninf": 2.0,
                },
            ]
        },
    },
    "thresholds": {"alpha": 0.05, "harm": 40.0, "pass": 20.0},
}
FRESH: dict[str, Any] = {
    "name": "ab",
    "phase": "progressing",
    "step": 0,
    "weights": {"a": 50.0, "b": 50.0},
    "strategy": {"kind": "abTest", "weights": {"a": 50.0, "b": 50.0}},
    "requests": {},
    "state": {"history": [{"reason": "manual pause (admin API)"}, {"reason": "manual resume (admin API)"}]},
    "analysis": None,
    "thresholds": None,
}


def test_the_table_is_aligned_and_shows_the_evidence() -> None:
    assert status_table([LOOKED, FRESH]).splitlines() == [
        "EXPERIMENT  PHASE        STEP  WEIGHTS       REQUESTS                                    "
        "LAST DECISION              LAST LOOK",
        "digits      rolled_back  2/2   stable 100%   candidate 120 (40 5xx), stable 900 (2 5xx)  "
        "ROLLBACK                   ROLLBACK @ 1000 records",
        "    error_rate       estimate 3.5 bounds [2.25 harm, — pass]  "
        "e harm 5.09e+144 / 40  e pass 0.368 / 20",
        "    latency_gmean    estimate 1.01 bounds [0.98 harm, 1.04 pass]  e harm — / 40  e pass 7.39 / 20",
        "ab          progressing  —     a 50%, b 50%  0                                           "
        "manual resume (admin API)  —",
    ]


def test_no_experiments_says_so() -> None:
    assert status_table([]).splitlines()[1] == "(no experiments)"


def test_admin_urls_take_host_port_or_a_url() -> None:
    assert base_url("127.0.0.1:8081") == "http://127.0.0.1:8081"
    assert base_url("https://ops.example/outrider/") == "https://ops.example/outrider"
