"""Signed commits, enforced by the real Flux: a fleet repo that requires signatures (fleet.yaml ``verify:``,
real SSH and OpenPGP keys outside the repo) and one local cluster whose source-controller verifies them.

- `fleet bootstrap --to` an SSH-signed commit: the GitRepository gets ``spec.verify`` and the keys Secret,
  source-controller verifies the signature (SourceVerified) and Flux applies the commit;
- an unsigned commit, pushed: `fleet sync` and `fleet bootstrap` refuse it (exit 2) before the pin moves;
- the pin moved to it behind fleet's back (a server-side apply of the GitRepository's ref, as anyone with
  cluster access could):
  source-controller refuses it (SourceVerified False, InvalidCommitSignature), keeps the signed artifact,
  and nothing of the unsigned commit is applied;
- the same change signed with OpenPGP (a signed commit on top: mode HEAD verifies the commit itself, not its
  ancestors, in fleet and in Flux): `fleet sync` promotes it and Flux applies it.

Every wait is for an explicit state (a condition naming the commit, a reconcile request handled).
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from e2e_support import fleet, make_fleet_repo, need_local_clusters, push, removed_at_end

from fleet import toolchain
from fleet.adapters.kube import Kube, KubeTarget
from fleet.adapters.pulumi_auto import EngineSettings
from fleet.local.clusters import LocalClusters
from fleet.operator.flux.status import FLUX_NAMESPACE, SOURCE_API, object_name, request_reconcile
from fleet.registry import ClusterSpec, add_cluster
from tests.signing import HAVE_TOOLS, Keys, commit, make_keys, require_signatures, stop_agent

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("signed"),
              pytest.mark.skipif(not HAVE_TOOLS, reason="needs git, gpg and ssh-keygen")]

NAME = f"e2e-signed-{os.getpid() % 10000}"

MARKER = """\
apiVersion: v1
kind: ConfigMap
metadata:
  name: unsigned-change
data:
  from: "a commit nobody signed"
"""


@dataclass
class World:
    repo: Path
    env: dict[str, str]
    kubeconfig: Path
    keys: Keys
    signed: str


def get(kc: Path, *args: str) -> Any:
    done = subprocess.run([str(toolchain.find("kubectl")), "--kubeconfig", str(kc), "get", *args, "-o", "json"],
                          capture_output=True, text=True, timeout=60)
    return json.loads(done.stdout) if done.returncode == 0 else None


def condition(obj: dict[str, Any], kind: str) -> dict[str, Any]:
    return next((c for c in obj.get("status", {}).get("conditions", []) if c["type"] == kind), {})


def until(what: str, fn: Any, timeout: float = 180) -> Any:
    """Poll for an explicit state (never a fixed delay)."""
    deadline = time.monotonic() + timeout
    while not (value := fn()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)
    return value


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, pulumi_env: EngineSettings, e2e_home: Path) -> Iterator[World]:
    need_local_clusters()
    keys = make_keys(tmp_path_factory.mktemp("keys"))
    repo = make_fleet_repo(tmp_path_factory.mktemp("signed"))
    add_cluster(repo, ClusterSpec(name=NAME, environment="dev"))
    signed = require_signatures(repo, keys, "ssh-alice")  # keys outside the repo: SSH and OpenPGP
    push(repo)
    env = {**os.environ, "FLEET_HOME": str(e2e_home), "FLEET_REPO": str(repo)}
    lc = LocalClusters(e2e_home / "local")
    try:
        with removed_at_end(env, lc, NAME):
            fleet(env, "bootstrap", NAME, "--to", signed)
            yield World(repo, env, lc.kubeconfig_path(NAME), keys, signed)
    finally:
        stop_agent(keys)


def source(world: World) -> dict[str, Any]:
    return dict(get(world.kubeconfig, "-n", "flux-system", "gitrepository", "fleet"))


def kustomization(world: World) -> dict[str, Any]:
    return dict(get(world.kubeconfig, "-n", "flux-system", "kustomization", "fleet"))


def with_marker(world: World) -> dict[str, str]:
    kust = (world.repo / "environments/dev/kustomization.yaml").read_text()
    if "unsigned-change.yaml" not in kust:
        kust = kust.replace("  - ../../base\n", "  - ../../base\n  - unsigned-change.yaml\n")
    return {"environments/dev/unsigned-change.yaml": MARKER, "environments/dev/kustomization.yaml": kust}


def test_flux_verifies_the_signed_commit_and_applies_it(world: World) -> None:
    src = source(world)
    assert src["spec"]["verify"] == {"mode": "HEAD", "secretRef": {"name": "fleet-verify-keys"}}
    keys = get(world.kubeconfig, "-n", "flux-system", "secret", "fleet-verify-keys")["data"]
    assert sorted(keys) == ["alice.asc", "allowed-signers.sshpub"]
    verified = condition(src, "SourceVerified")
    assert verified["status"] == "True" and world.signed in verified["message"], verified
    assert src["status"]["artifact"]["revision"].endswith(world.signed)
    until("Flux to say Ready at the signed commit",  # after the recovery, at Flux's next health poll
          lambda: str(kustomization(world)["status"].get("lastAppliedRevision", "")).endswith(world.signed))


def test_an_unsigned_commit_is_refused_by_fleet_and_by_flux(world: World) -> None:
    kc = world.kubeconfig
    unsigned = commit(world.repo, world.keys, "unsigned", "dev: an unsigned change", with_marker(world))
    push(world.repo)
    # fleet's own entry points: exit 2, one line naming the commit, the pin unchanged
    for args in (("sync", NAME, "--rev", unsigned), ("bootstrap", NAME, "--to", unsigned)):
        done = fleet(world.env, *args, ok=(2,))
        assert f"commit {unsigned[:12]} is not signed" in done.stderr and done.stdout == "", done.stderr
    assert source(world)["spec"]["ref"]["commit"] == world.signed
    # the pin moved behind fleet's back: source-controller verifies and refuses
    kube = Kube(KubeTarget(NAME, kc))
    kube.apply({"apiVersion": SOURCE_API, "kind": "GitRepository",
                "metadata": {"name": object_name(kube), "namespace": FLUX_NAMESPACE},
                "spec": {"ref": {"branch": source(world)["spec"]["ref"]["branch"], "commit": unsigned}}},
               field_manager="someone-with-cluster-access")

    def refused() -> dict[str, Any] | None:
        src = source(world)
        c = condition(src, "SourceVerified")
        return src if c.get("status") == "False" and unsigned in c.get("message", "") else None

    src = until("source-controller to refuse the unsigned commit", refused)
    verified, ready = condition(src, "SourceVerified"), condition(src, "Ready")
    assert verified["reason"] == "InvalidCommitSignature", verified
    assert "signature verification of commit" in verified["message"], verified
    assert ready["status"] == "False" and ready["reason"] == "InvalidCommitSignature", ready
    assert src["status"]["artifact"]["revision"].endswith(world.signed)  # the signed artifact is kept
    # nothing of the unsigned commit is applied, even after the Kustomization reconciles again
    token = request_reconcile(Kube(KubeTarget(NAME, kc)))
    ks = until("Flux to handle the reconcile request",
               lambda: (k := kustomization(world))["status"].get("lastHandledReconcileAt") == token and k)
    assert ks["status"]["lastAppliedRevision"].endswith(world.signed)
    assert get(kc, "-n", "hello-dev", "configmap", "unsigned-change") is None
    # fleet status says the operator is stuck on the unverified commit
    row = next(c for c in json.loads(fleet(world.env, "status", "-o", "json").stdout)["items"] if c["name"] == NAME)
    assert world.signed.startswith(row["applied"]), row


def test_the_same_change_signed_with_openpgp_is_promoted_and_applied(world: World) -> None:
    signed = commit(world.repo, world.keys, "pgp-alice", "dev: the change, signed", with_marker(world))
    push(world.repo)
    done = fleet(world.env, "sync", NAME, "-o", "json")
    assert json.loads(done.stdout)["revision"] == signed, done.stderr
    assert "is signed by Alice <alice@example.com> (OpenPGP key" in done.stderr
    verified = condition(source(world), "SourceVerified")
    assert verified["status"] == "True" and signed in verified["message"], verified
    assert get(world.kubeconfig, "-n", "hello-dev", "configmap", "unsigned-change")["data"] == {
        "from": "a commit nobody signed"}
