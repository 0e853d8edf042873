"""Just enough PromQL reading to check that a query only names metrics and labels a real outrider exports.

Usage: refs = references('sum by (le) (rate(outrider_request_duration_seconds_bucket{experiment="x"}[5m]))')
       problems = unknown(refs, Inventory.from_text(metrics_text))
Not a parser: it finds selectors (`name{label op "value"}`), bare metric names and grouping labels
(`by (...)`, `on (...)`, ...), which is what rots when a metric is renamed. promtool checks the syntax.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from prometheus_client.parser import text_string_to_metric_families

STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'')
RANGE = re.compile(r"\[[^\]]*\]")
GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)")
SELECTOR = re.compile(r"([a-zA-Z_:][a-zA-Z0-9_:]*)?\s*\{([^}]*)\}")
MATCHER = re.compile(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)")
IDENT = re.compile(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(\s*\()?")
KEYWORDS = frozenset({"by", "without", "on", "ignoring", "group_left", "group_right", "bool"})
KEYWORDS |= frozenset({"and", "or", "unless", "offset", "inf", "nan", "atan2"})
TARGET_LABELS = frozenset({"instance", "job"})
"""Labels Prometheus adds at scrape time (never in /metrics itself)."""
MADE_BY_PROMETHEUS = frozenset({"up"})


@dataclass
class References:
    """What one expression refers to."""

    metrics: dict[str, set[str]] = field(default_factory=dict)
    """metric name → label names its matchers use."""
    grouping: set[str] = field(default_factory=set)
    """Labels named in by/without/on/ignoring/group_* clauses."""


def references(expr: str) -> References:
    """The metric names and label names `expr` uses."""
    refs = References()
    text = RANGE.sub("", STRING.sub('""', expr))
    for match in GROUPING.finditer(text):
        refs.grouping |= {label.strip() for label in match.group(1).split(",") if label.strip()}
    text = GROUPING.sub(" ", text)
    for match in SELECTOR.finditer(text):
        name = match.group(1)
        labels = set(MATCHER.findall(match.group(2)))
        if name:
            refs.metrics.setdefault(name, set()).update(labels)
        else:  # {__name__=~"..."} style: not used here, and not checkable by name
            raise ValueError(f"selector without a metric name in {expr!r}")
    text = SELECTOR.sub(lambda m: f" {m.group(1)} ", text)
    for match in IDENT.finditer(text):
        name, call = match.group(1), match.group(2)
        if call or name in KEYWORDS:
            continue
        refs.metrics.setdefault(name, set())
    return refs


@dataclass
class Inventory:
    """Every sample name of a /metrics page and the label names seen on it."""

    labels: dict[str, set[str]]

    @classmethod
    def from_text(cls, text: str) -> Inventory:
        """Read a Prometheus text exposition."""
        labels: dict[str, set[str]] = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                labels.setdefault(sample.name, set()).update(sample.labels)
        return cls(labels)


def unknown(refs: References, inventory: Inventory) -> list[str]:
    """Every metric or label in `refs` that the inventory does not have (empty = all known)."""
    problems = []
    known_labels = set(TARGET_LABELS)
    for name, used in sorted(refs.metrics.items()):
        if name in MADE_BY_PROMETHEUS:
            continue
        have = inventory.labels.get(name)
        if have is None:
            problems.append(f"metric {name} is not exported")
            continue
        known_labels |= have
        for label in sorted(used - have - TARGET_LABELS):
            problems.append(f"metric {name} has no label {label} (it has {sorted(have)})")
    for label in sorted(refs.grouping - known_labels):
        problems.append(f"grouping label {label} is on none of {sorted(refs.metrics)}")
    return problems
