"""The data port shared by the workers: reserved by the supervisor, listened on by every worker.

Usage: sock = reserve("127.0.0.1", 0); host, port = sock.getsockname()[:2]; ...; sock.close()
The supervisor's socket is bound with SO_REUSEPORT and never listens: the kernel hands connections only to
listening sockets (the workers', which bind the same HOST:PORT with SO_REUSEPORT and share the accepts), and
the port stays reserved while workers come and go.
"""

from __future__ import annotations

import socket


def reserve(host: str, port: int) -> socket.socket:
    """A socket bound to HOST:PORT with SO_REUSEPORT, not listening (port 0: a free port, see getsockname)."""
    family, kind, proto, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as asyncio's and uvloop's servers
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind(address)
    except OSError:
        sock.close()
        raise
    return sock
