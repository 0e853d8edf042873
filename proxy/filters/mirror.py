"""`mirror`: hand a copy of each eligible request to the shadow dispatcher, then pair the answers.

Eligible: the experiment has shadow variants, and the request is side-effect free — by default the inference
POST under the experiment's match (`POST .../infer`). Copies are sampled (`shadow.sample`) and never awaited:
the client's path only pays for an O(1) enqueue. One cap, `spec.shadow.maxBodyBytes` (default 1 MiB), bounds
what is mirrored and what is compared: a request over it is not mirrored (its record has an entry per shadow
with `"skipped": "too_large"`), a shadow answer over it is `response_too_large`, a primary answer over it is
not compared (`compare_error` says so), and a compressed answer may not decompress past it. A streamed primary
answer is given to the pair with its headers when its stream ends (its body collected up to the cap). A
shadow variant with its own `model`/`version` gets the path rewritten for it, as a serving variant does.
Usage: filters = [..., Mirror(dispatcher)]; the chain ends with `forward` (the gRPC port's copies:
proxy.grpcfront.mirror)
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable

from multidict import CIMultiDict

from experiments.model import ShadowSpec, Variant
from experiments.model_paths import rewrite_path
from proxy.dataplane.chain import SKIP, Stage, wrapped
from proxy.dataplane.errors import OutriderError
from proxy.dataplane.exchange import Exchange, Reply
from proxy.dataplane.stream_tap import COMPLETE, Outcome, TappedStream
from proxy.filters.forward import forwarded_headers
from shadow.compare.base import Comparator, comparator
from shadow.credentials import strip_credentials
from shadow.dispatch import SHADOW_HEADER, ShadowDispatcher, ShadowJob, shadow_host
from shadow.pairing import Pair, ShadowResult

INFER_SUFFIX = "/infer"


def side_effect_free(method: str, path: str, spec: ShadowSpec | None) -> bool:
    """Whether the experiment declares this request safe to send twice (default: the inference POST)."""
    methods = spec.mirror_methods if spec is not None else frozenset({"POST"})
    suffixes = spec.mirror_path_suffixes if spec is not None else (INFER_SUFFIX,)
    if method not in methods:
        return False
    path = path.split("?", 1)[0].rstrip("/")
    return not suffixes or any(path.endswith(s.rstrip("/")) for s in suffixes)


class Mirror:
    """Mirrors eligible requests to every shadow variant of their experiment."""

    def __init__(self, dispatcher: ShadowDispatcher, rng: random.Random | None = None) -> None:
        self.dispatcher = dispatcher
        self.rng = rng or random.Random()
        self._comparators: dict[str, Comparator] = {}

    async def __call__(self, ex: Exchange, call_next: Stage) -> Reply:
        """Enqueue the copies, run the primary, give the primary's answer to the pair."""
        return await wrapped(self, ex, call_next)

    def before(self, ex: Exchange) -> object:
        """Enqueue the copies; their pair (SKIP: not mirrored)."""
        pair = self._mirror(ex)
        return SKIP if pair is None else pair

    def failed(self, ex: Exchange, state: object, err: BaseException) -> None:
        """No answer to compare (an error, or the client went away)."""
        if isinstance(err, (OutriderError, asyncio.CancelledError)):
            assert isinstance(state, Pair)
            state.primary_done(0)

    def after(self, ex: Exchange, state: object, reply: Reply) -> Reply:
        """Give the primary's answer to the pair (a stream's when it ends)."""
        pair = state
        assert isinstance(pair, Pair)
        if not pair.needs_primary:  # every copy was dropped or failed: nothing to compare the answer with
            pair.primary_done(reply.status)
        elif reply.stream is not None:
            reply.stream = self._paired(pair, reply)
        elif len(reply.body) > pair.max_bytes:
            pair.primary_too_large(reply.status)
        else:
            pair.primary_done(reply.status, reply.body, reply.headers)
        return reply

    def _paired(self, pair: Pair, reply: Reply) -> TappedStream:
        """The primary's stream, handing its status, body and headers to the pair when it ends."""
        assert reply.stream is not None
        cap = pair.max_bytes
        chunks: list[bytes] = []
        kept = [0]

        def keep(chunk: bytes) -> None:
            kept[0] += len(chunk)
            if kept[0] <= cap:
                chunks.append(chunk)

        def ended(outcome: Outcome, sent: int) -> None:
            if outcome != COMPLETE:  # an answer that did not end cleanly is not compared (status 0: none)
                pair.primary_done(0)
            elif sent > cap:
                pair.primary_too_large(reply.status)
            else:
                pair.primary_done(reply.status, b"".join(chunks), reply.headers)

        return TappedStream(reply.stream, ended, keep)

    def _mirror(self, ex: Exchange) -> Pair | None:
        a, inbound, d = ex.assignment, ex.inbound, self.dispatcher
        if a is None or not a.experiment.shadows:
            return None
        shadows, spec = a.experiment.shadows, a.experiment.shadow
        if not side_effect_free(inbound.method, inbound.path, spec):
            return None
        d.eligible += len(shadows)
        if spec is not None and self.rng.random() >= spec.sample:
            d.sampled_out += len(shadows)
            return None
        cap = spec.max_body_bytes if spec is not None else d.limits.max_body_bytes
        if len(inbound.body) > cap:  # not mirrored, and the record says so: an entry per shadow, `skipped`
            ex.pair = skipped = Pair([s.name for s in shadows], None, max_bytes=cap)
            for shadow in shadows:
                d.drop(skipped, shadow.name, "body_too_large")
            return skipped
        compare = None
        if spec is not None:
            compare = self._comparators.get(a.experiment.name)
            if compare is None:
                made = self.comparing(comparator(spec.compare, **dict(spec.compare_options)))
                compare = self._comparators.setdefault(a.experiment.name, made)
        pair = Pair([s.name for s in shadows], compare, d.comparisons, cap)
        ex.pair = pair
        timeout = spec.timeout_s if spec is not None else d.limits.timeout_s
        compared = spec is not None and spec.compare != "none"
        headers: CIMultiDict[str] | None = None
        for shadow in shadows:
            reason = self.unsendable(shadow) or d.refusal(shadow.name, compared)
            if reason is not None:  # drop before paying for a copy that cannot go out
                d.drop(pair, shadow.name, reason)
                continue
            if headers is None:  # one copy of the headers serves every shadow (never mutated after this)
                headers = self.copy_headers(ex, spec)
            url, method, body = self.target(ex, shadow)
            job = ShadowJob(shadow.name, url, method, headers, body, pair, timeout, compared, cap, self.via)
            d.offer(job, checked=True)
        return pair

    # What a subclass for another protocol changes (proxy.grpcfront.mirror):

    via: Callable[[ShadowJob], Awaitable[ShadowResult]] | None = None
    """Who makes the shadow calls (None: the dispatcher, over HTTP)."""

    def comparing(self, compare: Comparator) -> Comparator:
        """The comparator of the experiment's `spec.shadow.compare`, as this protocol's answers need it."""
        return compare

    def unsendable(self, shadow: Variant) -> str | None:
        """Why a copy can never go to `shadow` over this protocol (None: it can)."""
        return None

    def copy_headers(self, ex: Exchange, spec: ShadowSpec | None) -> CIMultiDict[str]:
        """The headers of every copy: the client's, less credentials, marked as a shadow's."""
        headers = forwarded_headers(ex)
        strip_credentials(headers, spec.forward_headers if spec is not None else ())
        headers["Host"] = shadow_host(ex.inbound.headers.get("Host", "localhost"))
        headers[SHADOW_HEADER] = "1"
        return headers

    def target(self, ex: Exchange, shadow: Variant) -> tuple[str, str, bytes]:
        """(URL, method, body) of the copy for `shadow`, asking for its own model name and version."""
        inbound = ex.inbound
        path = rewrite_path(inbound.path, shadow.model, shadow.version)
        return shadow.upstream + path, inbound.method, inbound.body
