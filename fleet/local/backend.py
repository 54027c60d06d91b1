"""A team's shared Pulumi backend, tried on one machine: an S3 server (seaweedfs's ``weed mini``, built by
the toolchain) on loopback, its data under the fleet home.

``fleet local backend start`` starts it (idempotent: a running one is kept), waits until its bucket
answers with the server's credentials, and gives the environment a shell needs to use it, as
``ssh-agent`` does (``eval "$(fleet local backend start)"``)::

    PULUMI_BACKEND_URL=s3://fleet?endpoint=http://127.0.0.1:PORT&s3ForcePathStyle=true&region=us-east-1
    AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY     the server's own credentials, made once, kept 0600
    PULUMI_CONFIG_PASSPHRASE_FILE                 the stacks' passphrase (made once, 0600); a team may
                                                  point it at the file (or variable) it shares instead

Everything lives under ``$FLEET_HOME/s3-backend``::

    state.json         pid and start time of the server, its ports
    credentials.json   the access key and secret the server accepts (0600)
    passphrase         the passphrase the stacks on it are encrypted with (0600): share it with the team
    data/              the server's data (the bucket)
    logs/weed.log      its output

Every listener (S3, and the master, volume, filer and admin servers ``weed mini`` runs inside, with their
gRPC ports) binds 127.0.0.1 on a port chosen free, so that servers of several homes (parallel tests)
never meet; WebDAV, the admin UI, the Iceberg and Lance endpoints and telemetry are off.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fleet import toolchain
from fleet.adapters import proc
from fleet.adapters.net import free_ports
from fleet.adapters.s3 import Bucket, parse_url
from fleet.errors import BackendRefused, BackendUnreachable, LocalClusterError
from fleet.paths import fleet_home, private_dir, write_private

__all__ = ["BUCKET", "BackendStatus", "LocalBackend"]

BUCKET = "fleet"
REGION = "us-east-1"
_MARKER = "FLEET_S3_BACKEND_DIR"  # in the server's environment: the folder of the backend it serves
# weed mini's listeners, each given a free port: (flag, key in state.json)
_PORTS = ("s3.port", "s3.port.grpc", "master.port", "master.port.grpc", "volume.port", "volume.port.grpc",
          "filer.port", "filer.port.grpc", "webdav.port", "admin.port", "admin.port.grpc")


@dataclass(frozen=True)
class BackendStatus:
    running: bool
    pid: int | None
    url: str | None  # PULUMI_BACKEND_URL, when it was ever started
    data: Path
    log: Path






class LocalBackend:
    """The S3 server of one fleet home (``home``, default :func:`fleet.paths.fleet_home`)."""

    def __init__(self, home: Path | None = None) -> None:
        self.dir = (home or fleet_home()) / "s3-backend"

    # -- files -----------------------------------------------------------------------------------------
    @property
    def log(self) -> Path:
        return self.dir / "logs" / "weed.log"

    @property
    def passphrase_file(self) -> Path:
        return self.dir / "passphrase"

    def state(self) -> dict[str, Any]:
        try:
            data = json.loads((self.dir / "state.json").read_text())
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def credentials(self) -> tuple[str, str]:
        """The access key and secret the server accepts: made once (random), kept 0600."""
        path = self.dir / "credentials.json"
        with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
            d = json.loads(path.read_text())
            return str(d["access_key"]), str(d["secret_key"])
        key, secret = "FLEET" + secrets.token_hex(8).upper(), secrets.token_urlsafe(30)
        write_private(path, json.dumps({"access_key": key, "secret_key": secret}) + "\n")
        return key, secret

    def _passphrase(self) -> Path:
        if not self.passphrase_file.is_file():
            write_private(self.passphrase_file, secrets.token_urlsafe(32) + "\n")
        return self.passphrase_file

    def url(self, port: int) -> str:
        return f"s3://{BUCKET}?endpoint=http://127.0.0.1:{port}&s3ForcePathStyle=true&region={REGION}"

    # -- lifecycle ---------------------------------------------------------------------------------------
    def running(self) -> bool:
        st = self.state()
        return bool(st.get("pid")) and proc.alive(int(st["pid"]), str(st.get("start") or ""))

    def status(self) -> BackendStatus:
        st = self.state()
        running = self.running()
        port = st.get("ports", {}).get("s3.port")
        return BackendStatus(running, int(st["pid"]) if running else None, self.url(int(port)) if port else None,
                             self.dir / "data", self.log)

    def start(self, *, timeout: float = 90) -> dict[str, str]:
        """Start the server unless it runs, wait until its bucket answers, and return the environment a
        shell needs to use it (:meth:`environment`)."""
        if not self.running():
            self._start(timeout)
        return self.environment()

    def environment(self) -> dict[str, str]:
        port = self.state()["ports"]["s3.port"]
        key, secret = self.credentials()
        return {"PULUMI_BACKEND_URL": self.url(int(port)), "AWS_ACCESS_KEY_ID": key,
                "AWS_SECRET_ACCESS_KEY": secret, "PULUMI_CONFIG_PASSPHRASE_FILE": str(self._passphrase())}

    def _start(self, timeout: float) -> None:
        weed = toolchain.find("weed")
        private_dir(self.dir / "data")
        private_dir(self.dir / "logs")
        private_dir(self.dir / "run")
        key, secret = self.credentials()
        ports = dict(zip(_PORTS, free_ports(len(_PORTS)), strict=True))
        run = self.dir / "run"
        args = [str(weed), "mini", f"-dir={self.dir / 'data'}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
                f"-bucket={BUCKET}", "-webdav=false", "-admin.ui=false", "-admin.port.legacy=0",
                "-s3.port.iceberg=0", "-s3.port.lance=0", "-master.telemetry=false",
                f"-filer.localSocket={run / 'filer.sock'}", f"-s3.localSocket={run / 's3.sock'}",
                *(f"-{flag}={port}" for flag, port in ports.items())]
        env = {"AWS_ACCESS_KEY_ID": key, "AWS_SECRET_ACCESS_KEY": secret, _MARKER: str(self.dir),
               "SENTRY_DSN": "", "TMPDIR": str(run)}
        child = proc.spawn(args, env=env, log=self.log)
        write_private(self.dir / "state.json", json.dumps(
            {"pid": child.pid, "start": proc.start_time(child.pid), "ports": ports}, indent=2, sort_keys=True) + "\n")
        loc = parse_url(self.url(ports["s3.port"]))
        assert loc is not None
        bucket = Bucket(loc, attempts=1, connect_timeout_s=2, credentials=(key, secret))
        deadline = proc.monotonic() + timeout
        while True:
            code = child.poll()
            if code is not None:
                raise LocalClusterError(f"the local S3 server exited at start (code {code}): {self._log_tail()}",
                                        hint=f"see {self.log}")
            try:
                bucket.check()
                return
            except (BackendUnreachable, BackendRefused):
                pass  # not listening yet, or its bucket not made yet
            if proc.monotonic() > deadline:
                self.stop()
                raise LocalClusterError(f"the local S3 server did not answer within {timeout:.0f}s",
                                        hint=f"see {self.log}", transient=True)
            proc.pause(0.2)  # polling its bucket: the explicit state waited for

    def _log_tail(self) -> str:
        try:
            lines = self.log.read_text(errors="replace").strip().splitlines()
        except OSError:
            return "no log"
        return " | ".join(line[:300] for line in lines[-3:]) or "no output"

    def stop(self, grace: float = 15) -> bool:
        """Stop the server (SIGTERM to its process group, SIGKILL after ``grace`` seconds) and wait until it
        is gone; its data stays. False when it was not running."""
        st = self.state()
        pid, start = int(st.get("pid") or 0), str(st.get("start") or "")
        if not pid or not proc.alive(pid, start):
            return False
        proc.stop_group(pid, lambda: proc.alive(pid, start), grace)  # its own group (proc.spawn starts a session)
        with contextlib.suppress(ChildProcessError, OSError):
            os.waitpid(pid, 0)  # our own child (a test's server): reaped, not left a zombie
        return True
