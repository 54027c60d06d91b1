"""A fleet repo served read-only over Git's smart HTTP protocol on loopback.

Flux's GitRepository clones only http(s) and ssh URLs; a fleet repo with no such remote (a repo made
by ``fleet init``, a drill's, a test's) is served by ``git http-backend`` behind this small server,
beside the local cluster whose operator clones it (:mod:`fleet.local.flux` starts and stops it):

    python -m fleet.local.gitserve --repo /path/to/repo --port 24017

The URL is ``http://127.0.0.1:<port>/fleet.git``; only fetches are served (no push: http-backend
refuses receive-pack to an unauthenticated user), and only the one repository.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from fleet.adapters import gitplain

__all__ = ["URL_PATH", "make_app", "serve", "url_for"]

URL_PATH = "/fleet.git"


def url_for(port: int) -> str:
    return f"http://127.0.0.1:{port}{URL_PATH}"


def _git_dir(repo: Path) -> Path:
    return repo / ".git" if (repo / ".git").is_dir() else repo


def make_app(repo: Path) -> Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]:
    """A WSGI app that hands every request under ``/fleet.git`` to ``git http-backend``."""
    root = str(_git_dir(repo.resolve()))

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        ours = path == URL_PATH or path.startswith(URL_PATH + "/")
        if not ours or environ["REQUEST_METHOD"] not in ("GET", "POST"):
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"not found\n"]
        rest = path[len(URL_PATH):]
        if "/.." in rest or "\\" in rest:
            start_response("400 Bad Request", [("Content-Type", "text/plain")])
            return [b"bad path\n"]
        env = {
            "GIT_PROJECT_ROOT": root, "GIT_HTTP_EXPORT_ALL": "1", "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "REQUEST_METHOD": environ["REQUEST_METHOD"], "PATH_INFO": rest or "/",
            "QUERY_STRING": environ.get("QUERY_STRING", ""), "CONTENT_TYPE": environ.get("CONTENT_TYPE", ""),
            "HTTP_CONTENT_ENCODING": environ.get("HTTP_CONTENT_ENCODING", ""),
            "GIT_PROTOCOL": environ.get("HTTP_GIT_PROTOCOL", ""),
            "REMOTE_ADDR": "127.0.0.1", "REMOTE_USER": "", "HOME": os.environ.get("HOME", "/"),
        }
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        out = gitplain.http_backend(env, body)
        head, _, payload = out.partition(b"\r\n\r\n")
        status, headers = "200 OK", []
        for line in head.decode("latin-1").split("\r\n"):
            k, _, v = line.partition(":")
            if k.lower() == "status":
                status = v.strip()
            elif k:
                headers.append((k, v.strip()))
        start_response(status, headers)
        return [payload]

    return app


def serve(repo: Path, port: int) -> None:
    """Serve ``repo`` on ``127.0.0.1:port`` until killed (one thread per request)."""
    from socketserver import ThreadingMixIn
    from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

    class Server(ThreadingMixIn, WSGIServer):
        daemon_threads = True
        allow_reuse_address = True

    class Handler(WSGIRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            sys.stderr.write(f"{self.log_date_time_string()} {format % args}\n")

    httpd = make_server("127.0.0.1", port, make_app(repo), server_class=Server, handler_class=Handler)
    print(f"serving {repo} at {url_for(port)}", flush=True)
    httpd.serve_forever()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m fleet.local.gitserve", description=__doc__.splitlines()[0])
    ap.add_argument("--repo", type=Path, required=True)
    ap.add_argument("--port", type=int, required=True)
    args = ap.parse_args(argv)
    serve(args.repo, args.port)
    return 0


if __name__ == "__main__":
    sys.exit(main())
