"""Where an upstream base URL points: scheme, host, port, the Host header it gets, and the path prefix.

Usage: origin = origin_of("http://10.0.0.7:9001/prefix"); origin.key == "http://10.0.0.7:9001"
Base URLs are already checked by the experiment schema (http/https, a host, no query, no credentials), so
parsing is cached per URL: the hot path pays one dict lookup.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from urllib.parse import urlsplit

DEFAULT_PORTS = {"http": 80, "https": 443}


@dataclass(frozen=True, slots=True)
class Origin:
    """One upstream origin: connections are pooled per origin."""

    scheme: str
    host: str
    """Host name or address as connected to (IPv6 without brackets)."""
    port: int
    host_header: str
    """What `Host` says by default: `host[:port]`, the port left out when it is the scheme's default."""
    prefix: str
    """The base URL's path ("" or "/prefix"), put before each request's path."""

    @property
    def key(self) -> str:
        """scheme://host:port, the pool's key."""
        return f"{self.scheme}://{self.host_header}"

    @property
    def tls(self) -> bool:
        """Whether connections to it are TLS."""
        return self.scheme == "https"


@lru_cache(maxsize=1024)
def origin_of(url: str) -> Origin:
    """The origin of an upstream base URL (`http://host:port[/prefix]`); ValueError if it has no host."""
    parts = urlsplit(url)
    if parts.scheme not in DEFAULT_PORTS or not parts.hostname:
        raise ValueError(f"not an http(s) URL with a host: {url!r}")
    port = parts.port or DEFAULT_PORTS[parts.scheme]
    host = parts.hostname
    shown = f"[{host}]" if ":" in host else host
    host_header = shown if port == DEFAULT_PORTS[parts.scheme] else f"{shown}:{port}"
    return Origin(parts.scheme, host, port, host_header, parts.path.rstrip("/"))
