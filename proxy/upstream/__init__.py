"""The upstream side of the data plane: keep-alive connections per origin at protocol level, responses parsed
by llhttp (httptools), bodies passed byte for byte, whole when small and as a backpressured stream otherwise.

Usage:
    pool = UpstreamPool()
    conn = pool.take(origin) or await pool.connect(origin, timeout_s=2.0)
    resp = conn.send(head, body, deadline, head_only=False)
    await resp.ready; reply = Reply(resp.status, None, resp.body(), raw=resp.raw)  # or stream=resp
    await pool.close()
"""

from proxy.upstream.origin import Origin, origin_of
from proxy.upstream.pool import UpstreamPool
from proxy.upstream.response import UpstreamResponse

__all__ = ["Origin", "UpstreamPool", "UpstreamResponse", "origin_of"]
