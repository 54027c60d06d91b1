"""A fault-injecting HTTPS proxy on 127.0.0.1 in front of a local cluster's API server.

It terminates TLS with the local cluster's own certificate, forwards each request upstream with the
cluster's admin client certificate, and for a share of requests instead (or as well) answers 503,
answers 429 with ``Retry-After``, or resets the connection: before forwarding (the request never
reached the server) or after (the server acted, the client never heard). Watch streams are passed
through as they arrive. Counters say what was injected. Loopback only; stops with the test.
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import json
import random
import socket
import ssl
import struct
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

_HOP = {
    "connection",
    "keep-alive",
    "transfer-encoding",
    "content-length",
    "proxy-connection",
    "upgrade",
    "te",
    "trailer",
}


@dataclass
class Faults:
    """Shares of requests (0..1) that get each fault; the rest pass through."""

    status_503: float = 0.0
    status_429: float = 0.0
    reset_before: float = 0.0
    reset_after: float = 0.0
    retry_after: str = "1"
    seed: int = 7
    only_methods: tuple[str, ...] = ()  # empty: every method
    counts: dict[str, int] = field(default_factory=dict)


class FaultProxy:
    def __init__(self, kubeconfig: Path, pki_dir: Path, workdir: Path, faults: Faults) -> None:
        cfg = yaml.safe_load(kubeconfig.read_text())
        ctx = next(c for c in cfg["contexts"] if c["name"] == cfg["current-context"])["context"]
        cluster = next(c for c in cfg["clusters"] if c["name"] == ctx["cluster"])["cluster"]
        user = next(u for u in cfg["users"] if u["name"] == ctx["user"])["user"]
        url = urlsplit(cluster["server"])
        self.upstream = (url.hostname or "127.0.0.1", url.port or 443)
        workdir.mkdir(parents=True, exist_ok=True)
        files = {}
        for key, name in (
            ("certificate-authority-data", "ca.crt"),
            ("client-certificate-data", "client.crt"),
            ("client-key-data", "client.key"),
        ):
            p = workdir / name
            p.write_bytes(base64.b64decode(cluster.get(key) or user.get(key)))
            files[name] = p
        self.upstream_ctx = ssl.create_default_context(cafile=str(files["ca.crt"]))
        self.upstream_ctx.load_cert_chain(str(files["client.crt"]), str(files["client.key"]))
        self.server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.server_ctx.load_cert_chain(str(pki_dir / "admin.crt"), str(pki_dir / "admin.key"))
        self.faults = faults
        self._rng = random.Random(faults.seed)
        self._lock = threading.Lock()
        self.enabled = True
        proxy = self

        class Handler(_Handler):
            owner = proxy

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.httpd.socket = self.server_ctx.wrap_socket(self.httpd.socket, server_side=True)
        self.port = self.httpd.server_address[1]
        self.kubeconfig = workdir / "proxy.kubeconfig"
        cluster_copy = dict(cluster, server=f"https://127.0.0.1:{self.port}")
        out = dict(cfg, clusters=[{"name": ctx["cluster"], "cluster": cluster_copy}])
        self.kubeconfig.write_text(yaml.safe_dump(out))
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True, name="faultproxy")

    def __enter__(self) -> FaultProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def count(self, what: str) -> int:
        return self.faults.counts.get(what, 0)

    def decide(self, method: str) -> str:
        f = self.faults
        with self._lock:
            f.counts["requests"] = f.counts.get("requests", 0) + 1
            if not self.enabled or (f.only_methods and method not in f.only_methods):
                return "pass"
            x = self._rng.random()
            for name, share in (
                ("503", f.status_503),
                ("429", f.status_429),
                ("reset-before", f.reset_before),
                ("reset-after", f.reset_after),
            ):
                if x < share:
                    f.counts[name] = f.counts.get(name, 0) + 1
                    return name
                x -= share
            return "pass"


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    owner: FaultProxy
    _conn: http.client.HTTPSConnection | None = None

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def do_GET(self) -> None:
        self._proxy()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_GET

    def _reset(self) -> None:
        # SO_LINGER 0: close() sends RST, as a dying server or a middlebox would.
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.close()

    def _upstream(self) -> http.client.HTTPSConnection:
        if self._conn is None:
            host, port = self.owner.upstream
            self._conn = http.client.HTTPSConnection(host, port, context=self.owner.upstream_ctx, timeout=330)
        return self._conn

    def _status(self, code: int, reason: str, extra: dict[str, str]) -> None:
        body = json.dumps(
            {
                "kind": "Status",
                "apiVersion": "v1",
                "status": "Failure",
                "code": code,
                "reason": reason,
                "message": f"injected by faultproxy: {reason}",
            }
        ).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for k, v in extra.items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def _proxy(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        fault = self.owner.decide(self.command)
        if fault == "503":
            return self._status(503, "ServiceUnavailable", {})
        if fault == "429":
            return self._status(429, "TooManyRequests", {"Retry-After": self.owner.faults.retry_after})
        if fault == "reset-before":
            return self._reset()
        headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP}
        for attempt in (1, 2):
            conn = self._upstream()
            try:
                conn.request(self.command, self.path, body=body, headers=headers)
                resp = conn.getresponse()
                break
            except (OSError, http.client.HTTPException):
                conn.close()
                self._conn = None
                if attempt == 2:
                    return self._status(502, "BadGateway", {})
        if fault == "reset-after":
            resp.read()
            return self._reset()
        streaming = "watch=" in self.path or resp.getheader("Transfer-Encoding", "").lower() == "chunked"
        self.send_response(resp.status, resp.reason)
        for k, v in resp.getheaders():
            if k.lower() not in _HOP:
                self.send_header(k, v)
        if not streaming:
            data = resp.read()
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            return None
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        try:
            while True:
                chunk = resp.read1(65536)
                if not chunk:
                    break
                self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        except OSError:
            self.close_connection = True
        return None

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            if self._conn is not None:
                self._conn.close()
