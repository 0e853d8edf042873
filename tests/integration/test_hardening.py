"""Hardening found by attack, against a real outrider process over real sockets:

- paths are normalised once before routing; a path that leaves its experiment's prefix, keeps a `..`, or
  carries an encoded NUL/CR/LF is refused 400 `bad_path`, leaves no outcome record and reaches no upstream;
  an upstream sees the normalised path (requests are written on raw sockets, so no client library normalises
  them first);
- shadows get none of the client's credentials unless the experiment names the header;
- a JWKS URL that redirects is a failed fetch, never followed;
- 1 MiB `json-exact` comparisons run off the event loop: a burst of small requests meanwhile keeps its latency
  (figures printed: `.venv/bin/pytest -s tests/integration/test_hardening.py -k latency`).
"""

from __future__ import annotations

import asyncio
import http.client
import statistics
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import jwt
import orjson
import pytest
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm
from multidict import CIMultiDictProxy

from experiments.builder import Compare, Shadow, Variant
from tests.integration.conftest import OutriderFactory, canary_doc, canary_yaml
from tests.shadow.test_compare_pool import alive, children_of
from tests.support.cli import exported
from tests.support.http import scrape
from tests.support.jwks_server import JwksServer
from tests.support.procs import Proc, start
from tests.support.wait import eventually, wait_until

PREFIX = "/v2/models/m"


@dataclass
class Seen:
    """One request as an upstream received it."""

    method: str
    target: str
    """The request target exactly as sent (path and query, still encoded)."""
    headers: CIMultiDictProxy[str]


@dataclass
class Recorder:
    """An upstream on 127.0.0.1:0 in the test's loop that records every request and echoes what it saw."""

    name: str
    seen: list[Seen] = field(default_factory=list)
    url: str = ""
    runner: web.AppRunner | None = None

    async def handle(self, request: web.Request) -> web.Response:
        await request.read()
        self.seen.append(Seen(request.method, request.raw_path, request.headers))
        echo = {"name": self.name, "target": request.raw_path, "headers": sorted(request.headers.items())}
        return web.Response(body=orjson.dumps(echo), content_type="application/json")

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", r"/{tail:[\s\S]*}", self.handle)
        self.runner = web.AppRunner(app, shutdown_timeout=1.0)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", 0).start()
        host, port = self.runner.addresses[0][:2]
        self.url = f"http://{host}:{port}"

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()


@pytest.fixture
async def upstream() -> AsyncIterator[Recorder]:
    rec = Recorder("primary")
    await rec.start()
    yield rec
    await rec.stop()


@pytest.fixture
async def shadow() -> AsyncIterator[Recorder]:
    rec = Recorder("shadow")
    await rec.start()
    yield rec
    await rec.stop()


async def raw_request(address: str, method: str, target: str, headers: str = "") -> tuple[int, bytes]:
    """(status, body) of one request written byte for byte on a fresh connection."""
    host, port = address.rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    body = b"{}" if method == "POST" else b""
    head = (
        f"{method} {target} HTTP/1.1\r\nHost: models\r\nX-User-Id: u1\r\n{headers}"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    writer.write(head.encode() + body)
    await writer.drain()
    data = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    status_line, _, rest = data.partition(b"\r\n")
    return int(status_line.split(b" ")[1]), rest.partition(b"\r\n\r\n")[2]


REFUSED = [
    f"{PREFIX}/../../../admin",
    f"{PREFIX}/%2e%2e/%2e%2e/%2e%2e/admin",
    f"{PREFIX}/%2E%2e/.%2E/%2e./admin",
    f"{PREFIX}/x%2F..%2F..%2F..%2Fadmin",
    f"{PREFIX}/x%2f%2e%2e%2F%2E%2E%2f%2e%2E%2fadmin?q=1",
    f"{PREFIX}/..",
    f"{PREFIX}/..;/..;/admin",
    f"{PREFIX}/infer%00.json",
    f"{PREFIX}/infer%0d%0aX-Injected:%201",
    f"{PREFIX}/infer%0A",
    f"{PREFIX}/%zz",
    "/../v2/models/m/infer",
    "/%2e%2e/etc/passwd",
]
"""Refused 400 bad_path: never recorded, never forwarded (not even to the default upstream)."""
ALLOWED = [
    (f"{PREFIX}/x/../infer", f"{PREFIX}/infer"),
    (f"{PREFIX}/%2e/infer", f"{PREFIX}/infer"),
    (f"{PREFIX}//infer", f"{PREFIX}/infer"),
    (f"{PREFIX}/infer/%2E%2E/infer", f"{PREFIX}/infer"),
    (f"{PREFIX}/%69nfer?q=%2e%2e/..&r=a%2Fb", f"{PREFIX}/infer?q=%2e%2e/..&r=a%2Fb"),  # query unchanged
    (f"{PREFIX}/%252e%252e/infer", f"{PREFIX}/%252e%252e/infer"),  # decoded once: literal, not a dot
    (f"{PREFIX}/caf%c3%a9", f"{PREFIX}/caf%C3%A9"),
    ("/v2/models/x/../m/infer", f"{PREFIX}/infer"),  # normalises into the prefix: routed there
]
"""(sent, what the upstream must receive): answered 200 by the experiment's upstream."""


async def test_paths_are_normalised_and_escapes_refused(
    upstream: Recorder, outrider: OutriderFactory
) -> None:
    proxy = outrider(
        canary_yaml(upstream.url, upstream.url, prefix=PREFIX), args=("--default-upstream", upstream.url)
    )
    failures: list[tuple[str, int, object]] = []
    for target in REFUSED:
        before = len(upstream.seen)
        status, body = await raw_request(proxy.address, "POST", target)
        code = orjson.loads(body).get("code") if body.startswith(b"{") else None
        if (status, code) != (400, "bad_path") or len(upstream.seen) != before:
            failures.append((target, status, body[:120]))
    for target, expected in ALLOWED:
        status, body = await raw_request(proxy.address, "POST", target)
        received = upstream.seen[-1].target if upstream.seen else None
        if status != 200 or received != expected or orjson.loads(body)["target"] != expected:
            failures.append((target, status, received))
    assert not failures, failures
    assert len(upstream.seen) == len(ALLOWED)
    async with aiohttp.ClientSession() as session:
        samples = await scrape(session, proxy.admin_url)
    assert samples["outrider_outcomes_produced_total"] == len(ALLOWED)  # refused ones left no record
    refused = 'outrider_requests_total{destination_version="none",experiment="",response_code="400"}'
    assert samples[refused] == len(REFUSED)


SHADOW = Shadow(sample=1.0, timeout="2s", forward_headers=("X-Tenant-Token",), compare=Compare("json-exact"))
CREDENTIALS = (
    "Authorization: Bearer the-users-jwt\r\nCookie: session=abc\r\nX-Api-Key: k-123\r\n"
    "Proxy-Authorization: Basic dXNlcjpwYXNz\r\nX-Tenant-Token: tenant-1\r\n"
    "Content-Type: application/json\r\n"
)


def with_shadow(stable: str, shadow_url: str) -> str:
    doc = canary_doc(stable, stable, prefix=PREFIX, shadow=SHADOW)
    return doc.adding(Variant.shadow(shadow_url, "int8")).yaml()


async def test_shadows_get_no_credentials_unless_declared(
    upstream: Recorder, shadow: Recorder, outrider: OutriderFactory, tmp_path: Path
) -> None:
    proxy = outrider(with_shadow(upstream.url, shadow.url), data_dir=tmp_path / "data")
    target = f"{PREFIX}/x/../infer?q=%2e%2e/..&r=a%2Fb"
    status, _ = await raw_request(proxy.address, "POST", target, CREDENTIALS)
    assert status == 200
    await wait_until(lambda: shadow.seen, 2.0)
    (primary,), (copy,) = upstream.seen, shadow.seen
    assert (
        copy.target == primary.target == f"{PREFIX}/infer?q=%2e%2e/..&r=a%2Fb"
    )  # normalised path, same query
    assert primary.headers["Authorization"] == "Bearer the-users-jwt"
    assert primary.headers["Cookie"] == "session=abc"
    assert primary.headers["X-Api-Key"] == "k-123"
    for name in ("Authorization", "Cookie", "X-Api-Key", "Proxy-Authorization"):
        assert name not in copy.headers, name
    assert copy.headers["X-Tenant-Token"] == "tenant-1"  # declared in spec.shadow.forwardHeaders
    assert copy.headers["X-Outrider-Shadow"] == "1"
    proxy.stop()
    (record,) = await exported(tmp_path / "data")
    (entry,) = record["shadows"]
    assert (entry["status"], entry["agree"]) == (200, False)  # the echoes differ (name, headers)


ISSUER, AUDIENCE = "https://issuer.test", "outrider-tests"


async def test_a_redirecting_jwks_url_is_never_followed(
    upstream: Recorder, outrider: OutriderFactory
) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = RSAAlgorithm.to_jwk(key.public_key(), as_dict=True)
    keys = JwksServer(orjson.dumps({"keys": [{**jwk, "kid": "k1", "alg": "RS256"}]}))
    await keys.start()
    redirects: list[str] = []

    async def redirect(request: web.Request) -> web.Response:
        redirects.append(request.path)
        return web.Response(status=302, headers={"Location": keys.url})

    app = web.Application()
    app.router.add_get("/jwks.json", redirect)
    runner = web.AppRunner(app, shutdown_timeout=1.0)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    host, port = runner.addresses[0][:2]
    try:
        jwks_url = f"http://{host}:{port}/jwks.json"
        args = ("--auth-issuer", ISSUER, "--auth-audience", AUDIENCE, "--auth-jwks-url", jwks_url)
        # In a thread: outrider fetches the keys from this test's event loop while `start` waits for it.
        proxy = await asyncio.to_thread(outrider, canary_yaml(upstream.url, upstream.url), args=args)
        now = int(time.time())
        claims = {"sub": "alice", "iss": ISSUER, "aud": AUDIENCE, "iat": now, "exp": now + 300}
        token = jwt.encode(claims, key, algorithm="RS256", headers={"kid": "k1"})
        status, _ = await raw_request(proxy.address, "POST", "/v2/x", f"Authorization: Bearer {token}\r\n")
        assert status == 401  # the keys behind the redirect would have verified it
        async with aiohttp.ClientSession() as session:
            samples = await scrape(session, proxy.admin_url)
    finally:
        await runner.cleanup()
        await keys.stop()
    assert redirects == ["/jwks.json"]  # fetched once at start-up; the unknown kid waits for the cooldown
    assert keys.hits == 0
    assert samples['outrider_jwks_fetch_total{result="redirect"}'] == 1
    assert samples['outrider_jwks_fetch_total{result="ok"}'] == 0
    assert upstream.seen == []


BIG_UPSTREAM = r"""
import asyncio, sys
import orjson
from aiohttp import web

ITEMS = [{"k": i, "label": f"l-{i}", "score": i / 7, "tags": [1, 2, None], "ok": True} for i in range(12500)]
BIG = orjson.dumps({"model_name": "m", "items": ITEMS})
assert 1_000_000 < len(BIG) < 1 << 20  # about 1 MiB, under the shadow's answer cap (1 MiB)

async def infer(request):
    await request.read()
    return web.Response(body=BIG, content_type="application/json")

async def small(request):
    return web.Response(body=b'{"ready": true}', content_type="application/json")

async def main():
    app = web.Application()
    app.router.add_post("/v2/models/m/infer", infer)
    app.router.add_get("/v2/models/m/ready", small)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    host, port = runner.addresses[0][:2]
    line = {"event": "listening", "service": "big", "address": f"{host}:{port}", "bytes": len(BIG)}
    sys.stderr.write(orjson.dumps(line).decode() + "\n")
    sys.stderr.flush()
    await asyncio.Event().wait()

asyncio.run(main())
"""
"""An upstream answering every inference with the same ~1 MiB JSON of small objects (the slow case of
json-exact, ~0.25 s) and `/ready` with a few bytes; a process of its own, so serving it costs the test
nothing."""


def big_shadow(kind: str) -> Shadow:
    return Shadow(sample=1.0, timeout="5s", compare=Compare(kind))


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_text()
    except OSError:
        return ""


def pctl(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def figures(latencies: list[float]) -> str:
    ms = [v * 1000 for v in latencies]
    return f"n={len(ms)} p50={statistics.median(ms):.1f} ms p99={pctl(ms, 0.99):.1f} ms max={max(ms):.1f} ms"


def big_requests(addresses: list[str], count: int, every_s: float) -> list[int]:
    """Inference POSTs (1 MiB answers) at a fixed pace, to each address in turn, from a thread with blocking
    sockets (they release the GIL: the test's event loop that times the small requests is not slowed)."""
    hosts = [a.rsplit(":", 1) for a in addresses]
    conns = [http.client.HTTPConnection(host, int(port), timeout=30) for host, port in hosts]
    statuses = []
    next_at = time.monotonic()
    for i in range(count):
        for conn in conns:
            time.sleep(max(0.0, next_at - time.monotonic()))
            next_at += every_s / len(conns)
            headers = {"X-User-Id": f"u{i}", "Content-Type": "application/json"}
            conn.request("POST", f"{PREFIX}/infer", b"{}", headers)
            resp = conn.getresponse()
            resp.read()
            statuses.append(resp.status)
    for conn in conns:
        conn.close()
    return statuses


async def small_burst(proxies: list[Proc], seconds: float, workers: int = 4) -> list[list[float]]:
    """Latencies of small GETs (not mirrored) sent back to back by `workers` clients for `seconds`, each
    client alternating between the sidecars so that every one of them sees the same machine."""
    latencies: list[list[float]] = [[] for _ in proxies]
    deadline = time.monotonic() + seconds

    async def worker(session: aiohttp.ClientSession, n: int) -> None:
        while time.monotonic() < deadline:
            for proxy, out in zip(proxies, latencies, strict=True):
                started = time.perf_counter()
                async with session.get(f"{proxy.url}{PREFIX}/ready", headers={"X-User-Id": f"s{n}"}) as r:
                    await r.read()
                    assert r.status == 200
                out.append(time.perf_counter() - started)
            await asyncio.sleep(0.005)

    async with aiohttp.ClientSession() as session:
        await asyncio.gather(*(worker(session, n) for n in range(workers)))
    return latencies


async def test_large_comparisons_do_not_hold_the_primary_latency(
    outrider: OutriderFactory, tmp_path: Path
) -> None:
    """Two sidecars get the same traffic — inference POSTs with 1 MiB answers, mirrored to a shadow, and a
    burst of small GETs — and differ only in the comparison: `none` (the control) or `json-exact` (about
    0.25 s of CPU per pair). The GETs' latency on the comparing one stays near the control's."""
    primary = start([sys.executable, "-c", BIG_UPSTREAM], tmp_path / "primary.log")
    copy = start([sys.executable, "-c", BIG_UPSTREAM], tmp_path / "shadow.log")
    try:
        doc = canary_doc(primary.url, primary.url, prefix=PREFIX).adding(Variant.shadow(copy.url, "int8"))
        control = outrider(doc.with_(shadow=big_shadow("none")).yaml(), data_dir=tmp_path / "control")
        comparing = outrider(doc.with_(shadow=big_shadow("json-exact")).yaml(), data_dir=tmp_path / "data")
        proxies = [control, comparing]
        await small_burst(proxies, 0.5)  # connections, caches
        addresses = [p.address for p in proxies]
        # 4 pairs a second per sidecar; on the comparing one, ~0.25 s of comparison each: its compare worker
        # is busy most of the time.
        big = asyncio.create_task(asyncio.to_thread(big_requests, addresses, 20, 0.25))
        async with aiohttp.ClientSession() as session:

            async def compared_once() -> bool:
                """Comparisons under way: the first one's record is stored (it started the worker process)."""
                samples = await scrape(session, comparing.admin_url)
                return samples.get("outrider_outcomes_stored_total", 0.0) >= 1

            await eventually(compared_once, 30.0)
        loaded = await small_burst(proxies, 3.5)
        statuses = await big
        async with aiohttp.ClientSession() as session:

            async def compared_all() -> dict[str, float] | None:
                """Every mirrored request's record stored: its comparison finished (or was not needed)."""
                samples = await scrape(session, comparing.admin_url)
                return samples if samples["outrider_outcomes_stored_total"] >= len(statuses) // 2 else None

            samples = await eventually(compared_all, 30.0)
        workers = [p for p in children_of(comparing.popen.pid) if "spawn_main" in cmdline(p)]
        assert len(workers) == 1  # the compare worker
        assert comparing.stop() == 0
        assert not [w for w in workers if alive(w)]  # joined at shutdown, not left to the orphan watch
        assert "Traceback" not in comparing.log.read_text()
    finally:
        primary.stop()
        copy.stop()
    print(
        f"\nanswers of {primary.ready['bytes']} bytes, {len(statuses)} inference POSTs; small GETs meanwhile:"
    )
    print(f"  control (compare: none):   {figures(loaded[0])}")
    print(f"  comparing (json-exact):    {figures(loaded[1])}")
    dropped = samples.get('outrider_shadow_dropped_total{reason="compare_busy"}', 0.0)
    print(f"  compare_busy drops: {dropped:g}")
    assert set(statuses) == {200}
    p99 = [pctl(lat, 0.99) for lat in loaded]
    # Inline, each comparison would hold every request behind it for its whole ~0.25 s.
    assert p99[1] < 3 * p99[0] + 0.05, (p99, "the comparisons slow the primary's requests")
    eligible, enqueued = samples["outrider_shadow_eligible_total"], samples["outrider_shadow_enqueued_total"]
    all_dropped = sum(v for k, v in samples.items() if k.startswith("outrider_shadow_dropped_total"))
    assert (
        eligible
        == len(statuses) // 2
        == enqueued + all_dropped + samples["outrider_shadow_sampled_out_total"]
    )
    records = await exported(tmp_path / "data")
    mirrored = [r for r in records if r["shadows"]]
    assert len(records) == len(statuses) // 2  # the small GETs are readiness reads: routed, not recorded
    assert len(mirrored) == len(statuses) // 2  # exactly one record per mirrored request
    compared = [r["shadows"][0] for r in mirrored if "agree" in r["shadows"][0]]
    assert all(entry["agree"] is True and entry["rows"] == 1 for entry in compared)
    assert len(compared) + dropped == len(mirrored)
    assert len(compared) >= len(mirrored) // 2
