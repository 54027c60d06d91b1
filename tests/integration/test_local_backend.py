"""``fleet local backend start|stop|status``: the S3 server (seaweedfs) of a fleet home on loopback, as a user runs
it: ``eval "$(fleet local backend start)"`` in a shell gives it the backend URL, the server's credentials and the
passphrase file; a second start keeps the running server; two homes run two servers at once on ports of their
own; stop leaves no process."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import need_tool

from fleet.adapters.s3 import Bucket, parse_url
from fleet.errors import BackendRefused
from fleet.local.backend import LocalBackend

pytestmark = pytest.mark.integration


def cli(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "PULUMI_"))}
    return subprocess.run([sys.executable, "-m", "fleet", "local", "backend", *args],
                          env={**env, "FLEET_HOME": str(home)}, capture_output=True, text=True, timeout=300)


def shell_env(home: Path) -> dict[str, str]:
    """What ``eval "$(fleet local backend start)"`` exports, read back by a real shell."""
    script = f'eval "$({sys.executable} -m fleet local backend start)" && env'
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "PULUMI_"))}
    done = subprocess.run(["bash", "-c", script], env={**env, "FLEET_HOME": str(home)}, capture_output=True,
                          text=True, timeout=300, check=True)
    return dict(line.split("=", 1) for line in done.stdout.splitlines() if "=" in line)


def test_start_prints_exports_a_shell_evals_and_stop_leaves_no_process(tmp_path: Path) -> None:
    need_tool("weed")
    alice, bob = tmp_path / "alice", tmp_path / "bob"
    try:
        env = shell_env(alice)
        url = env["PULUMI_BACKEND_URL"]
        assert url.startswith("s3://fleet?endpoint=http://127.0.0.1:") and "s3ForcePathStyle=true" in url, url
        assert "region=" in url
        loc = parse_url(url)
        assert loc is not None
        Bucket(loc, credentials=(env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"])).check()
        with pytest.raises(BackendRefused, match="refused the credentials"):
            Bucket(loc, attempts=1, credentials=(env["AWS_ACCESS_KEY_ID"], "wrong")).check()
        for private in (alice / "s3-backend" / "credentials.json", Path(env["PULUMI_CONFIG_PASSPHRASE_FILE"])):
            assert private.is_file() and stat.S_IMODE(private.stat().st_mode) == 0o600, private
        pid = LocalBackend(alice).status().pid
        assert pid is not None and (alice / "s3-backend" / "data").is_dir()

        again = cli(alice, "start")  # the running server is kept: the same URL, the same credentials
        assert again.returncode == 0, again.stderr
        assert f"PULUMI_BACKEND_URL='{url}'" in again.stdout and "already running" in again.stderr
        assert LocalBackend(alice).status().pid == pid

        other = shell_env(bob)  # another home at the same time: its own server and ports
        assert other["PULUMI_BACKEND_URL"] != url and other["AWS_ACCESS_KEY_ID"] != env["AWS_ACCESS_KEY_ID"]

        status = cli(alice, "status", "-o", "json")
        assert '"running": true' in status.stdout, status.stdout
    finally:
        stopped = cli(alice, "stop")
        cli(bob, "stop")
    assert stopped.returncode == 0 and "stopped the local S3 server" in stopped.stderr, stopped.stderr
    assert not LocalBackend(alice).running() and not LocalBackend(bob).running()
    assert not Path(f"/proc/{pid}").exists() or Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] == "Z"
    assert "nothing to stop" in cli(alice, "stop").stderr
    assert '"running": false' in cli(alice, "status", "-o", "json").stdout


def test_stack_locks_in_the_bucket_are_judged_like_the_file_backends(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A killed update's lock on S3: this host's dead holder's lock is removed, a live one and another host's kept
    (only its host can tell), all of them with force; read and removed through the S3 API."""
    import json
    import socket

    from fleet.adapters.pulumi_auto import Engine, resolve_settings

    need_tool("weed")
    backend = LocalBackend(tmp_path / "server")
    try:
        env = backend.start()
        loc = parse_url(env["PULUMI_BACKEND_URL"])
        assert loc is not None
        bucket = Bucket(loc, credentials=(env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"]))
        holders = {"dead": (2**22 + 4242, socket.gethostname()), "alive": (os.getpid(), socket.gethostname()),
                   "elsewhere": (2**22 + 4243, "another-host")}
        for name, (pid, host) in holders.items():
            body = json.dumps({"pid": pid, "username": "u", "hostname": host, "timestamp": "2026-12-07T06:00:00Z"})
            bucket._call("put_object", Bucket=loc.bucket, Key=f".pulumi/locks/organization/fleet/eu-1/{name}.json",
                         Body=body.encode())
        bucket._call("put_object", Bucket=loc.bucket, Key=".pulumi/locks/organization/fleet/us-1/x.json", Body=b"{}")
        for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):  # what the engine's S3 client reads
            monkeypatch.setenv(k, env[k])
        engine = Engine(resolve_settings(env, tmp_path / "home"))
        keys = [p.as_posix() for p in engine.locks("eu-1")]
        assert keys == sorted(f".pulumi/locks/organization/fleet/eu-1/{n}.json" for n in holders)
        assert "another-host" in engine._holders("eu-1")
        assert [p.name for p in engine.unlock("eu-1")] == ["dead.json"]
        assert sorted(p.name for p in engine.unlock("eu-1", force=True)) == ["alive.json", "elsewhere.json"]
        assert engine.locks("eu-1") == [] and [p.name for p in engine.locks("us-1")] == ["x.json"]
    finally:
        backend.stop()
