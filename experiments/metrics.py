"""The metric names an experiment file may use in `spec.analysis` (the analysis package says what they mean).

Usage: `if name not in GUARDRAIL_METRICS: ...`
"""

from __future__ import annotations

LATENCY_METRICS = ("latency_gmean", "latency_mean", "latency_p50", "latency_p99")

TOKEN_METRICS = ("ttft_gmean", "ttft_p99", "itl_gmean", "tokens_per_s")
"""LLM completions (analysis.token_metrics): the latency tests on time to first token, inter-token latency and
time per output token; guardrails only."""

GUARDRAIL_METRICS: tuple[str, ...] = ("error_rate", *LATENCY_METRICS, *TOKEN_METRICS)
"""Metrics a guardrail may bound (candidate/stable ratio within `margin`)."""

GOAL_METRICS: tuple[str, ...] = ("reward_mean", "error_rate", *LATENCY_METRICS)
"""Metrics a goal may ask to move (`direction`, `minEffect`)."""


def unknown_metric_message(name: str, known: tuple[str, ...]) -> str | None:
    """None if `name` is in `known`, else the message a config file problem carries."""
    if name in known:
        return None
    return f"unknown metric {name!r} (known: {', '.join(known)})"
