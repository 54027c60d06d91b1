"""Two operators, one cluster, a shared backend: the DR run any teammate can resume.

Alice and Bob each have a fleet home and a clone of one remote; they share one S3 backend (seaweedfs, started by
``fleet local backend``'s own code) and the local clusters' directory (as a team shares a cloud account). Both
bootstrap the same cluster at once: Bob is refused at once, naming Alice's run. Alice's run is SIGKILLed in the
middle of its operator step (the moment its journal in the bucket says the step started and the engine holds the
stack's lock); Bob runs the same command: he takes the run over (saying whose, and clearing the Pulumi lock the
dead run left), resumes it with the same run id, done steps skipped, and finishes it. ``fleet runs`` shows it
all along; both see the same ``fleet status``; Alice's stale ``fleet push`` is refused.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
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

NAME = f"e2e-team-{os.getpid() % 10000}"
_SCRUB = ("PULUMI_BACKEND_URL", "PULUMI_CONFIG_PASSPHRASE", "PULUMI_CONFIG_PASSPHRASE_FILE", "PULUMI_SECRETS_PROVIDER",
          "FLEET_REPO", "FLEET_LOCAL_DIR", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
          "AWS_PROFILE", "LOGNAME", "USER")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    need_tool("weed")
    backend = LocalBackend(tmp_path_factory.mktemp("s3-team"))
    env = backend.start()
    try:
        yield env
    finally:
        assert backend.stop()
        assert not backend.running()


def operator(who: str, home: Path, server_env: dict[str, str], shared: Path) -> dict[str, str]:
    """An operator's environment: their own name and FLEET_HOME, the team's backend, credentials and passphrase
    file, and the local clusters' directory the team shares."""
    base = {k: v for k, v in os.environ.items() if k not in _SCRUB}
    return {**base, "LOGNAME": who, "USER": who, "FLEET_HOME": str(home), "FLEET_LOCAL_DIR": str(shared),
            **server_env}


def test_two_operators_one_cluster_a_killed_run_resumed_by_the_other(
    server: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    need_local_clusters()
    loc = parse_url(server["PULUMI_BACKEND_URL"])
    assert loc is not None
    bucket = Bucket(loc, credentials=(server["AWS_ACCESS_KEY_ID"], server["AWS_SECRET_ACCESS_KEY"]))
    shared = tmp_path / "cloud"
    alice_home, bob_home = tmp_path / "alice", tmp_path / "bob"
    alice, bob = operator("alice", alice_home, server, shared), operator("bob", bob_home, server, shared)
    host = os.uname().nodename
    lc = LocalClusters(shared)

    # the fleet repo: Alice's clone records a last good and pushes; a later commit is what gets rebuilt
    a_repo = make_fleet_repo(tmp_path)
    add_cluster(a_repo, ClusterSpec(name=NAME, environment="dev", vars={"GREETING": "hello"}))
    push(a_repo)
    fleet(alice, "good", NAME, "--set", "HEAD", cwd=a_repo)
    fleet(alice, "push", cwd=a_repo)
    set_cluster(a_repo, NAME, ClusterUpdate(vars={"GREETING": "hola"}))
    push(a_repo)
    target = subprocess.run(["git", "-C", str(a_repo), "rev-parse", "HEAD"], capture_output=True, text=True,
                            check=True).stdout.strip()
    b_repo = tmp_path / "bob-clone"
    branch = subprocess.run(["git", "-C", str(a_repo), "branch", "--show-current"], capture_output=True, text=True,
                            check=True).stdout.strip()
    subprocess.run(["git", "clone", "-q", "-b", branch, str(tmp_path / "remote.git"), str(b_repo)], check=True)
    fleet(bob, "pull", cwd=b_repo)

    def journal() -> dict[str, Any]:
        raw = bucket.get(f"fleet/runs/{NAME}/journal.json")
        return json.loads(raw) if raw else {}

    def step(name: str) -> str:
        return next((s["state"] for s in journal().get("steps", ()) if s["name"] == name), "")

    def stack_locks() -> list[str]:
        return list(bucket.keys(f".pulumi/locks/organization/fleet/{NAME}/"))

    refused: list[subprocess.CompletedProcess[str]] = []

    def operator_step_started() -> bool:
        if not refused and journal().get("run_id"):  # Alice's run holds the lease: Bob starts the same command
            refused.append(fleet(bob, "bootstrap", NAME, "--to", target, ok=(0, 1, 2), cwd=b_repo))
        return step("operator") == "running" and bool(stack_locks())

    log = tmp_path / "alice.log"
    for k in _SCRUB:  # Alice's run is started in this process's environment (kill_at): make it hers
        monkeypatch.delenv(k, raising=False)
    for k, v in alice.items():
        monkeypatch.setenv(k, v)
    try:
        kill_at([sys.executable, "-m", "fleet", "bootstrap", NAME, "--to", target, "--repo", str(a_repo)],
                alice_home, "Alice's operator step, inside its engine update", operator_step_started, log=log,
                timeout=240)
        # Bob was refused at once, in one line naming Alice, her host, her command and since when
        assert refused and refused[0].returncode == 2, refused[0].stderr if refused else "Bob never ran"
        failures = [line for line in refused[0].stderr.splitlines() if line.startswith("✗")]
        assert len(failures) == 1 and "Traceback" not in refused[0].stderr, refused[0].stderr
        for part in (f"alice@{host}", f"on {host}", f"fleet bootstrap {NAME}", "since "):
            assert part in failures[0], failures[0]
        run_id = journal()["run_id"]
        assert step("provision") == "done" and stack_locks(), "the kill was not inside the operator step's update"

        # everyone sees Alice's run, now dead (her process is gone: this host tells at once)
        runs = json.loads(fleet(bob, "runs", "-o", "json", cwd=b_repo).stdout)
        row = next(r for r in runs["in_progress"] if r["cluster"] == NAME)
        assert (row["holder"], row["run_id"], row["lease"], row["state"]) == (f"alice@{host}", run_id, "expired",
                                                                              "running"), row

        # Bob runs the same command: takes the run over, same run id, done steps skipped, finished
        done = fleet(bob, "bootstrap", NAME, "-o", "json", cwd=b_repo)
        err = done.stderr
        assert f"taking over run {run_id} of alice@{host}, last heartbeat" in err, err
        assert "cleared the Pulumi lock" in err and not stack_locks(), err
        assert f"resuming run {run_id}" in err and "provision: done in an earlier attempt" in err, err
        report = json.loads(done.stdout)
        assert report["outcome"] == "recovered" and report["report"]["run_id"] == run_id, done.stdout[-2000:]
        assert journal()["state"] == "recovered" and journal()["resumed"] == 1
        assert [k for k in bucket.keys(".pulumi/stacks/") if k.endswith(".json")] == [
            f".pulumi/stacks/fleet/{NAME}.json"]  # one cluster, one stack
        assert lc.healthy(NAME)
        runs = json.loads(fleet(alice, "runs", "-o", "json", cwd=a_repo).stdout)
        assert not [r for r in runs["in_progress"] if r["cluster"] == NAME], runs
        ended = next(r for r in runs["finished"] if r["run_id"] == run_id)
        assert (ended["state"], ended["holder"]) == ("recovered", f"bob@{host}"), ended

        # Bob publishes the new last good; Alice's push from her stale clone is refused, never overwrites
        fleet(bob, "push", cwd=b_repo)
        stale = fleet(alice, "push", ok=(1, 2), cwd=a_repo)
        assert f'the last good of cluster "{NAME}" moved on' in stale.stderr and "not overwritten" in stale.stderr
        remote_good = subprocess.run(["git", "-C", str(tmp_path / "remote.git"), "rev-parse",
                                      f"refs/fleet/good/{NAME}"], capture_output=True, text=True, check=True)
        assert remote_good.stdout.strip() == target
        fleet(alice, "pull", cwd=a_repo)

        # both see the same fleet
        keys = ("name", "desired", "applied", "last_good", "health", "reachable")
        seen = [[{k: r[k] for k in keys} for r in json.loads(fleet(env, "status", "-o", "json", cwd=repo).stdout)[
            "items"]] for env, repo in ((alice, a_repo), (bob, b_repo))]
        assert seen[0] == seen[1] and seen[0][0]["reachable"] and seen[0][0]["last_good"], seen
    finally:
        fleet(bob, "destroy", NAME, "--yes", ok=(0, 1, 2), cwd=b_repo)
        lc._delete_quietly(NAME)
        assert not lc.operator.status(NAME)
