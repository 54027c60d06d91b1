"""A team on a shared Pulumi backend: the real engine against ``s3://`` on a real S3 server (seaweedfs, started by
``fleet local backend``'s own code on free ports in a tmp dir, stopped at the end).

- provision, ``--preview``, ``drift``, ``bootstrap --dry-run``, ``rollout --dry-run``, ``bootstrap`` (the cluster
  lost, rebuilt by a teammate) and destroy of a local cluster whose stack is in the bucket; every read-only
  command leaves the bucket byte-identical (every object listed and hashed before and after), and a teammate (a
  second FLEET_HOME, the same bucket, passphrase file and local clusters' directory) reads and changes the same
  stack;
- a provision killed (SIGKILL) inside its update leaves the stack's lock object in the bucket; run again on this
  host, it finds the holder dead, removes that lock, says so, and finishes;
- a wrong passphrase, a bucket that does not exist, credentials the server refuses, no passphrase at all, a
  server that is down and one that answers 503: one line naming the backend (never a credential), exit 2 for bad
  input, 1 when the server cannot be reached, no traceback, and nothing written to the bucket.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from e2e_support import fleet, kill_at, make_fleet_repo, need_local_clusters, push
from helpers import need_tool

from fleet.adapters.s3 import Bucket, parse_url
from fleet.local.backend import LocalBackend
from fleet.local.clusters import LocalClusters
from fleet.registry import ClusterSpec, ClusterUpdate, add_cluster, set_cluster

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("s3-backend")]

NAME = f"e2e-s3-{os.getpid() % 10000}"
_SCRUB = ("PULUMI_BACKEND_URL", "PULUMI_CONFIG_PASSPHRASE", "PULUMI_CONFIG_PASSPHRASE_FILE", "PULUMI_SECRETS_PROVIDER",
          "FLEET_REPO", "FLEET_LOCAL_DIR", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
          "AWS_PROFILE")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LocalBackend, dict[str, str]]]:
    """``fleet local backend start`` of a tmp home: the S3 server on loopback, free ports; stopped at the end,
    no process of it left."""
    need_tool("weed")
    backend = LocalBackend(tmp_path_factory.mktemp("s3-server-home"))
    env = backend.start()
    pid = backend.status().pid
    try:
        yield backend, env
    finally:
        assert backend.stop()
        assert not backend.running() and pid is not None and not Path(f"/proc/{pid}").exists()


def bucket_of(env: dict[str, str]) -> Bucket:
    loc = parse_url(env["PULUMI_BACKEND_URL"])
    assert loc is not None
    return Bucket(loc, credentials=(env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"]))


def env_for(home: Path, server_env: dict[str, str], shared: Path, **extra: str) -> dict[str, str]:
    """An operator's environment: their own FLEET_HOME, the team's backend, credentials and passphrase file,
    and the local clusters' directory the team shares (as a cloud account would be)."""
    base = {k: v for k, v in os.environ.items() if k not in _SCRUB}
    env = {**base, "FLEET_HOME": str(home), "FLEET_LOCAL_DIR": str(shared), **server_env, **extra}
    return {k: v for k, v in env.items() if v != ""}


def one_line_failure(done: subprocess.CompletedProcess[str], *words: str, secret: str) -> str:
    err = done.stderr
    assert "Traceback" not in err and secret not in err and secret not in done.stdout, err
    failures = [line for line in err.splitlines() if line.startswith("✗")]
    assert len(failures) == 1, err
    for w in words:
        assert w in failures[0], err
    return failures[0]


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    need_local_clusters()
    root = make_fleet_repo(tmp_path)
    add_cluster(root, ClusterSpec(name=NAME, environment="dev", vars={"GREETING": "hello"}))
    push(root)
    return root


class _Answers503(BaseHTTPRequestHandler):
    def _answer(self) -> None:
        self.send_response(503, "Service Unavailable")
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_GET = do_HEAD = do_PUT = do_POST = do_DELETE = _answer

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass


def test_a_bad_backend_is_one_line_and_writes_nothing(
    server: tuple[LocalBackend, dict[str, str]], repo: Path, tmp_path: Path
) -> None:
    _, senv = server
    bucket = bucket_of(senv)
    before = bucket.digests()
    secret = senv["AWS_SECRET_ACCESS_KEY"]
    home, shared = tmp_path / "home", tmp_path / "cloud"
    url = senv["PULUMI_BACKEND_URL"]

    def run(*args: str, ok: tuple[int, ...], **extra: str) -> subprocess.CompletedProcess[str]:
        return fleet(env_for(home, senv, shared, **extra), *args, ok=ok, cwd=repo)

    missing = run("provision", NAME, "--preview", ok=(2,), PULUMI_BACKEND_URL=url.replace("s3://fleet", "s3://nope"))
    one_line_failure(missing, "does not exist", "s3://nope", secret=secret)
    wrong = run("drift", NAME, ok=(2,), AWS_SECRET_ACCESS_KEY="not-the-secret")
    one_line_failure(wrong, "refused the credentials", "s3://fleet", secret=secret)
    nothing = run("provision", NAME, "--preview", ok=(2,), PULUMI_CONFIG_PASSPHRASE_FILE="")
    one_line_failure(nothing, f'stack "{NAME}"', "passphrase", secret=secret)
    assert "PULUMI_CONFIG_PASSPHRASE_FILE" in nothing.stderr, nothing.stderr

    with socket.socket() as s:  # a port nothing listens on: the server is down
        s.bind(("127.0.0.1", 0))
        down_port = s.getsockname()[1]
    # drift's exit 1 is its finding (infrastructure drift): an error, a server down included, is 2
    down = run("drift", NAME, ok=(2,), PULUMI_BACKEND_URL=url.replace(url.split("endpoint=")[1].split("&")[0],
                                                                       f"http://127.0.0.1:{down_port}"))
    one_line_failure(down, "cannot be reached", f"127.0.0.1:{down_port}", secret=secret)

    busy = ThreadingHTTPServer(("127.0.0.1", 0), _Answers503)
    threading.Thread(target=busy.serve_forever, daemon=True).start()
    try:
        port = busy.server_address[1]
        unavailable = run("provision", NAME, "--preview", ok=(1,),
                          PULUMI_BACKEND_URL=url.replace(url.split("endpoint=")[1].split("&")[0],
                                                         f"http://127.0.0.1:{port}"))
        one_line_failure(unavailable, "answered 503", f"127.0.0.1:{port}", secret=secret)
    finally:
        busy.shutdown()
        busy.server_close()
    assert bucket.digests() == before, "a refused command wrote to the bucket"
    assert not (home / "pulumi").exists(), "a shared backend got a file backend's state in the home"


def test_provision_preview_drift_dry_run_and_destroy_on_s3(
    server: tuple[LocalBackend, dict[str, str]], repo: Path, tmp_path: Path
) -> None:
    _, senv = server
    bucket = bucket_of(senv)
    secret = senv["AWS_SECRET_ACCESS_KEY"]
    shared = tmp_path / "cloud"
    alice, bob = tmp_path / "alice", tmp_path / "bob"
    a_env, b_env = env_for(alice, senv, shared), env_for(bob, senv, shared)
    lc = LocalClusters(shared)

    def unchanged(env: dict[str, str], *args: str, ok: tuple[int, ...] = (0,)) -> str:
        before = bucket.digests()
        done = fleet(env, *args, ok=ok, cwd=repo)
        after = bucket.digests()
        assert after == before, f"fleet {' '.join(args)} changed the bucket: " + ", ".join(
            sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k)))
        return done.stdout + done.stderr

    try:
        # a preview of a new stack on an empty bucket: the engine would create and remove the stack there
        out = unchanged(a_env, "provision", NAME, "--preview")
        assert "would create LocalCluster" in out, out
        fleet(a_env, "provision", NAME, cwd=repo)
        keys = set(bucket.digests())
        assert f".pulumi/stacks/fleet/{NAME}.json" in keys, sorted(keys)
        assert not [k for k in keys if k.startswith(".pulumi/locks/")], "the update left its lock"
        assert not (alice / "pulumi" / ".pulumi").exists(), "the state went to a file backend"
        assert lc.kubeconfig_path(NAME).is_file()  # the shared local clusters' directory

        set_cluster(repo, NAME, ClusterUpdate(vars={"GREETING": "hola"}))
        push(repo)
        out = unchanged(a_env, "provision", NAME, "--preview")
        assert 'would update Kustomization "flux-sync"' in out, out
        out = unchanged(a_env, "drift", NAME)
        assert "no drift" in out, out
        unchanged(a_env, "bootstrap", NAME, "--dry-run", "--to", "HEAD", "-o", "json")
        unchanged(a_env, "rollout", "--dry-run", "-o", "json")

        # the teammate: another home, no stack config of theirs; the same bucket and passphrase file
        out = unchanged(b_env, "drift", NAME)
        assert "no drift" in out, out
        out = unchanged(b_env, "provision", NAME, "--preview")
        assert 'would update Kustomization "flux-sync"' in out, out
        wrong = tmp_path / "wrong-passphrase"
        wrong.write_text("not the team's\n")
        carol = env_for(tmp_path / "carol", senv, shared, PULUMI_CONFIG_PASSPHRASE_FILE=str(wrong))
        before = bucket.digests()
        refused = fleet(carol, "provision", NAME, ok=(2,), cwd=repo)
        one_line_failure(refused, f'stack "{NAME}"', "passphrase", secret=secret)
        assert "PULUMI_CONFIG_PASSPHRASE" in refused.stderr, refused.stderr
        assert bucket.digests() == before

        # the change applied by the teammate: the stack is one, in the bucket
        up = fleet(b_env, "provision", NAME, "-o", "json", cwd=repo)
        assert '"update": 1' in up.stdout, up.stdout

        # the cluster is lost; the teammate rebuilds it from the shared stack (the DR pipeline on S3)
        fleet(b_env, "local", "delete", NAME, cwd=repo)
        boot = fleet(b_env, "bootstrap", NAME, "--to", "HEAD", "-o", "json", cwd=repo)
        assert '"recovered"' in boot.stdout, boot.stdout[-2000:]
        assert lc.kubeconfig_path(NAME).is_file()
        assert [k for k in bucket.digests() if k.startswith(".pulumi/stacks/") and k.endswith(".json")] == [
            f".pulumi/stacks/fleet/{NAME}.json"]

        # alice's home kept the lost cluster's kubeconfig: her next provision (nothing to change) takes the
        # rebuilt one's from the shared stack, and both see the same fleet
        fleet(a_env, "provision", NAME, cwd=repo)
        keys = ("name", "desired", "applied", "last_good", "health", "reachable")
        seen = [[{k: row[k] for k in keys} for row in json.loads(fleet(env, "status", "-o", "json", cwd=repo).stdout)[
            "items"]] for env in (a_env, b_env)]
        assert seen[0] == seen[1] and seen[0][0]["reachable"], seen
    finally:
        fleet(a_env, "destroy", NAME, "--yes", ok=(0, 1, 2), cwd=repo)
        lc._delete_quietly(NAME)
        assert not lc.operator.status(NAME)
    # the stack is gone from the bucket (Pulumi keeps the last checkpoint's .bak and its backups, as on files)
    assert f".pulumi/stacks/fleet/{NAME}.json" not in bucket.digests()


def test_a_provision_killed_on_s3_is_resumed_and_its_stale_lock_in_the_bucket_removed(
    server: tuple[LocalBackend, dict[str, str]], tmp_path: Path, fleet_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SIGKILL inside the update leaves the stack's lock object in the bucket; the same command run again on this
    host finds its holder dead, removes that lock (saying so) and finishes the update."""
    need_local_clusters()
    _, senv = server
    bucket = bucket_of(senv)
    name = f"{NAME}-kill"
    for k in _SCRUB:
        monkeypatch.delenv(k, raising=False)
    for k, v in senv.items():
        monkeypatch.setenv(k, v)
    repo = make_fleet_repo(tmp_path)
    add_cluster(repo, ClusterSpec(name=name, environment="dev", settings={"nodes": 1}))
    push(repo)
    log = tmp_path / "first.log"
    lc = LocalClusters()
    kwok_dir = lc.workdir / "kwok" / "clusters" / name

    def locks() -> list[str]:
        return [k for k in bucket.digests() if k.startswith(f".pulumi/locks/organization/fleet/{name}/")]

    def creating_the_cluster() -> bool:
        text = log.read_text()
        return ("creating LocalCluster" in text and "created LocalCluster" not in text and bool(locks())
                and kwok_dir.is_dir())

    env = dict(os.environ)
    try:
        kill_at([sys.executable, "-m", "fleet", "provision", name, "--repo", str(repo)], fleet_home,
                "the LocalCluster being created", creating_the_cluster, log=log,
                settled=lc.kubeconfig_path(name).is_file)
        assert locks(), "the killed update left no lock in the bucket: the kill was not inside the update"
        again = fleet(env, "provision", name, "--repo", str(repo))
        assert "removed a stale lock" in again.stderr, again.stderr
        assert not locks() and lc.healthy(name)
    finally:
        fleet(env, "destroy", name, "--yes", "--repo", str(repo), ok=(0, 1, 2))
        lc._delete_quietly(name)
