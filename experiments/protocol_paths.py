"""What the model servers' protocols call their paths: which calls are inference (an experiment's outcome)
and which are health, metadata or repository calls (routed, never recorded).

Usage: `is_status_call("GET", "/v2/models/digits/ready")` → True; `outcome_wanted(exp, method, path)`

Known status calls (GET or HEAD only): Open Inference Protocol v2 (`/v2`, `/v2/health/live|ready`,
`/v2/models/NAME[/versions/V][/ready|/config|/stats]`, `/v2/repository/...`), KServe v1 and TF Serving
(`/v1/models/NAME[/versions/V][/metadata]`), and `/v1/models` (an OpenAI-compatible server's model list). An
experiment that sets `spec.outcomes.methods` or `.pathSuffixes` records exactly what they list instead.

OpenAI-compatible completions (`POST …/v1/chat/completions`, `POST …/v1/completions`, under any prefix) are
inference calls whose answers the record filter reads for token timing (`is_completion_call`).
"""

from __future__ import annotations

import re

from experiments.model import Experiment

_STATUS = re.compile(
    r"^(?:/v2(?:/health/(?:live|ready))?"
    r"|/v2/models/[^/]+(?:/versions/[^/]+)?(?:/ready|/config|/stats)?"
    r"|/v2/repository(?:/.*)?"
    r"|/v1/models(?:/[^/:]+(?:/versions/[^/:]+)?(?:/metadata)?)?)/?$"
)
_READS = frozenset({"GET", "HEAD"})
COMPLETION_SUFFIXES = ("/v1/chat/completions", "/v1/completions")
"""OpenAI-compatible completion calls (vLLM, TGI, KServe's OpenAI runtime, llama.cpp, ...)."""


def is_status_call(method: str, path: str) -> bool:
    """A health, metadata or repository read of a known protocol (`path` without its query)."""
    return method in _READS and _STATUS.match(path) is not None


def outcome_wanted(experiment: Experiment, method: str, path: str) -> bool:
    """Whether a routed request of `experiment` is one of its outcomes (`path` without its query)."""
    rule = experiment.outcomes
    if rule is None or not (rule.methods or rule.path_suffixes):
        return not is_status_call(method, path)
    if rule.methods and method not in rule.methods:
        return False
    return not rule.path_suffixes or path.endswith(rule.path_suffixes)


def is_completion_call(method: str, path: str) -> bool:
    """An OpenAI-compatible completion call (`path` without its query)."""
    return method == "POST" and path.rstrip("/").endswith(COMPLETION_SUFFIXES)
