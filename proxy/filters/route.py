"""`route`: normalise the path, find the experiment, pick the variant (pins, then the sticky bucket), set the
destination.

The path is normalised once, here (`proxy.dataplane.paths`), and the request goes on with the normalised
path: routing,
the shadows and the upstream all see that one, so none of them can read `/v2/models/m/../../admin`
differently from the others. A path that cannot be normalised, or whose normalised form leaves the prefix of
the experiment its raw form matched, is refused (400 bad_path) before any record or upstream. Requests that
match no experiment go to the default upstream; without one, a server-level health or metadata read of a
known protocol (`/v2/health/ready`, `/v2`, `/v2/repository/index`, `/v1/models`) goes to a stable variant's
server, and anything else gets 404.
"""

from __future__ import annotations

import random

from experiments.assignment import BUCKETS, bucket_of, unit_hash
from experiments.model import Experiment
from experiments.model_paths import rewrite_path
from experiments.protocol_paths import is_status_call
from proxy.control.router import Live, Router, prefix_matches
from proxy.dataplane.chain import Stage
from proxy.dataplane.errors import BadPath, NotFound, PayloadTooLarge
from proxy.dataplane.exchange import Assignment, Exchange, Reply
from proxy.dataplane.paths import normalise

UNIT_CACHE = 65_536
"""Unit keys whose (bucket, unit hash) are kept, so a returning user costs a dict lookup, not two blake2b.
Bounded: past it the cache starts over (a client sending a new key each time only keeps it cold)."""


class Route:
    """Assigns each request to a variant of its experiment."""

    def __init__(
        self, router: Router, default_upstream: str | None, rng: random.Random | None = None
    ) -> None:
        self.router = router
        self.default_upstream = default_upstream.rstrip("/") if default_upstream else None
        self.rng = rng or random.Random()
        self._units: dict[tuple[str, str], tuple[int, str]] = {}

    async def __call__(self, ex: Exchange, call_next: Stage) -> Reply:
        """Normalise the path, set `ex.assignment` and `ex.upstream_url`, then continue."""
        self.enter(ex)
        return await call_next(ex)

    def enter(self, ex: Exchange) -> bool:
        """Route `ex` (always synchronous: the chain fuses it with its neighbours); errors are raised."""
        self._normalise(ex)
        inbound = ex.inbound
        live = self.router.match(inbound.method, inbound.path, inbound.headers)
        if live is None:
            upstream = self.default_upstream or self._status_upstream(inbound.method, inbound.path)
            if upstream is None:
                raise NotFound(f"no experiment matches {inbound.method} {inbound.path.split('?', 1)[0]}")
            ex.upstream_url = upstream
            return True
        exp = live.experiment
        if len(inbound.body) > exp.max_body_bytes:
            raise PayloadTooLarge(
                f"body of {len(inbound.body)} bytes is over this route's cap of {exp.max_body_bytes}"
            )
        ex.assignment = self._assign(live, ex)
        variant = ex.assignment.variant
        ex.upstream_url = variant.upstream
        if variant.model is not None or variant.version is not None:
            ex.upstream_path = rewrite_path(inbound.path, variant.model, variant.version)
        return True

    def _status_upstream(self, method: str, path: str) -> str | None:
        """A server-level health, metadata or repository read (`/v2/health/ready`, `/v2`, ...) that no
        experiment matches goes to the stable variant of the first experiment of the same protocol root (so
        a client's `is_server_ready()` works through outrider); never recorded (no assignment)."""
        bare = path.partition("?")[0]
        if not is_status_call(method, bare):
            return None
        root = bare[:3]  # "/v1" or "/v2"
        for live in self.router.all():
            if live.experiment.path_prefix.startswith(root):
                return live.experiment.stable.upstream
        return None

    def _normalise(self, ex: Exchange) -> None:
        """Replace the request's path by its normalised form; BadPath if it has none, or if it leaves the
        prefix of the experiment the raw path matched (a request must not be judged, or forwarded, as an
        experiment's traffic while meaning a path outside it)."""
        inbound = ex.inbound
        path = normalise(inbound.path)
        if path == inbound.path:
            return
        claimed = self.router.match(inbound.method, inbound.path, inbound.headers)
        if claimed is not None and not prefix_matches(claimed.experiment.path_prefix, path.split("?", 1)[0]):
            raise BadPath(
                f"the path leaves {claimed.experiment.path_prefix!r} once normalised "
                f"(to {path.split('?', 1)[0][:200]!r})"
            )
        # Inbound is read-only on purpose: swapping it whole keeps every later stage (record, mirror,
        # forward) on one consistent request, the normalised one.
        ex.inbound = inbound.with_path(path)

    def _assign(self, live: Live, ex: Exchange) -> Assignment:
        exp, version = live.experiment, live.state.version
        pinned = self._pinned(exp, ex)
        if pinned is not None:
            return Assignment(exp, exp.variant(pinned), 1.0, None, -1, pinned=True, state_version=version)
        key = self._unit_key(exp, ex)
        if key is None:
            bucket, unit = self.rng.randrange(BUCKETS), None
        else:
            bucket, unit = self._unit(exp.salt, key)
        variant, p = live.table.pick(bucket)
        return Assignment(exp, variant, p, unit, bucket, state_version=version)

    def _unit(self, salt: str, key: str) -> tuple[int, str]:
        cached = self._units.get((salt, key))
        if cached is None:
            if len(self._units) >= UNIT_CACHE:
                self._units.clear()
            cached = self._units[salt, key] = (bucket_of(salt, key), unit_hash(key))
        return cached

    @staticmethod
    def _pinned(exp: Experiment, ex: Exchange) -> str | None:
        for pin in exp.pins:
            if ex.inbound.headers.get(pin.header) == pin.value:
                return pin.variant
        return None

    @staticmethod
    def _unit_key(exp: Experiment, ex: Exchange) -> str | None:
        unit = exp.unit
        if unit.kind == "header" and unit.name:
            return ex.inbound.headers.get(unit.name) or None
        if unit.kind == "claim" and unit.name and ex.principal is not None:
            value = ex.principal.get(unit.name)
            return str(value) if value not in (None, "") else None
        return None
