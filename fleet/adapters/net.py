"""The network, for what fleet serves and starts on this machine: free loopback ports, an HTTP readiness
probe and a download. The only module of fleet that imports ``socket`` or ``urllib`` (import-linter)."""

from __future__ import annotations

import random
import socket
import threading
import urllib.error
import urllib.parse
import urllib.request

__all__ = ["fetch", "free_ports", "http_ok", "is_http", "join_url", "port_free", "url_path", "url_shown"]

_PORT_RANGE = (20000, 32000)  # below Linux's ephemeral range (32768-60999)
_handed: set[int] = set()  # the ports this process has handed out (free_ports)
_handed_lock = threading.Lock()


def free_ports(count: int) -> list[int]:
    """``count`` distinct ports nothing listens on now, picked at random (two work directories
    scanning from the same end would pick the same ones); never one this process handed out before."""
    rng = random.SystemRandom()
    out: list[int] = []
    while len(out) < count:
        port = rng.randrange(*_PORT_RANGE)
        with _handed_lock:  # clusters brought up in parallel by one process never get the same port
            if port in out or port in _handed:
                continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("0.0.0.0", port))
            except OSError:
                continue
        with _handed_lock:
            if port in _handed:
                continue
            _handed.add(port)
        out.append(port)
    return out


def port_free(port: int) -> bool:
    """Nothing listens on ``port`` (connections of a process that just stopped, in TIME_WAIT, do not
    count: the servers here bind with SO_REUSEADDR, as Go's net package does)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def http_ok(url: str, timeout: float = 5) -> bool:
    """``url`` answers 200 now (a readiness endpoint); any failure to answer is False."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return bool(resp.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def fetch(url: str, timeout: float = 60, limit: int | None = None) -> bytes:
    """The body at ``url`` (a URL the user configured). Raises OSError (URLError is one) when it fails, or
    when the body is longer than ``limit`` bytes."""
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        body: bytes = resp.read() if limit is None else resp.read(limit + 1)
        if limit is not None and len(body) > limit:
            raise OSError(f"{url}: more than {limit} bytes")
        return body


def is_http(url: str) -> bool:
    """An http(s) URL with a host: the only kind fleet fetches a user's URL with."""
    parts = urllib.parse.urlsplit(url)
    return parts.scheme in ("http", "https") and bool(parts.netloc)


def join_url(base: str, ref: str) -> str:
    """``ref`` (absolute, or relative to ``base``) as an absolute URL."""
    return urllib.parse.urljoin(base, ref)


def url_path(url: str) -> tuple[str, str]:
    """(scheme, path) of ``url``; the scheme is "" for a relative reference."""
    parts = urllib.parse.urlsplit(url)
    return parts.scheme, parts.path


def url_shown(url: str) -> str:
    """``url`` without credentials, query or fragment, for messages."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return f"{parts.scheme}://{host}{parts.path}" if parts.scheme else parts.path
