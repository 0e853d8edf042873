"""Which experiment a request belongs to (path prefix, then methods, host and header conditions), and the live
traffic table of each experiment.

Usage: router = Router(experiments); live = router.match("POST", "/v2/models/digits/infer")
States are swapped whole (one assignment), so a request sees either the old or the new table, never a mix.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from experiments.assignment import TrafficTable
from experiments.model import Experiment
from experiments.state import ExperimentState, initial_state
from proxy.dataplane.request_headers import HeaderView


@dataclass(frozen=True, slots=True)
class Live:
    """An experiment with the state in force and its traffic table."""

    experiment: Experiment
    state: ExperimentState
    table: TrafficTable


def prefix_matches(prefix: str, path: str) -> bool:
    """`/v1/models/digits` matches itself, `/v1/models/digits/...` and `/v1/models/digits:predict` (KServe v1
    and TF Serving verbs), not `/v1/models/digits2`."""
    if not path.startswith(prefix):
        return False
    return len(path) == len(prefix) or prefix.endswith("/") or path[len(prefix)] in "/:"


def _fits(exp: Experiment, headers: HeaderView) -> bool:
    if exp.host is not None:
        host = headers.get("host", "").lower()
        host = host[: host.find("]") + 1] if host.startswith("[") else host.partition(":")[0]  # no port
        if host != exp.host:
            return False
    return all(headers.get(name) == value for name, value in exp.headers)


class Router:
    """Longest-prefix match of the request path over the experiments' `match.pathPrefix`."""

    def __init__(self, experiments: Iterable[Experiment], now: float = 0.0) -> None:
        self._live: dict[str, Live] = {}
        for exp in experiments:
            self._live[exp.name] = Live(
                exp, st := initial_state(exp, now), TrafficTable.build(exp, st.weights)
            )
        # longest prefix first; among equal prefixes, the ones with host or header conditions before the rest
        self._order = sorted(
            self._live.values(),
            key=lambda lv: (
                len(lv.experiment.path_prefix),
                lv.experiment.host is not None or bool(lv.experiment.headers),
            ),
            reverse=True,
        )
        self._names = [lv.experiment.name for lv in self._order]

    def match(self, method: str, path: str, headers: HeaderView | None = None) -> Live | None:
        """The live experiment for this request, or None (`headers`: the request's, case-insensitive; an
        experiment that matches on `host` or headers never matches a request without them)."""
        path = path.split("?", 1)[0]
        for name in self._names:
            live = self._live[name]
            exp = live.experiment
            if not prefix_matches(exp.path_prefix, path) or (exp.methods and method not in exp.methods):
                continue
            if (exp.host is None and not exp.headers) or (headers is not None and _fits(exp, headers)):
                return live
        return None

    def get(self, name: str) -> Live:
        """The live experiment called `name` (KeyError if none)."""
        return self._live[name]

    def all(self) -> list[Live]:
        """Every experiment, in match order."""
        return [self._live[n] for n in self._names]

    def force(self, state: ExperimentState) -> None:
        """Put `state` in force whatever its version (restoring from the store at start-up)."""
        live = self._live[state.experiment]
        self._live[state.experiment] = Live(
            live.experiment, state, TrafficTable.build(live.experiment, state.weights)
        )

    def apply(self, state: ExperimentState) -> bool:
        """Put `state` in force if it is newer than the current one; True if it was applied."""
        live = self._live[state.experiment]
        if state.version <= live.state.version:
            return False
        self._live[state.experiment] = Live(
            live.experiment, state, TrafficTable.build(live.experiment, state.weights)
        )
        return True

    def replace(self, experiment: Experiment) -> None:
        """Put a reloaded definition of a running experiment in force, keeping its state
        (proxy.control.reloader)."""
        live = self._live[experiment.name]
        self._live[experiment.name] = Live(
            experiment, live.state, TrafficTable.build(experiment, live.state.weights)
        )
