"""e2e: `fleet drill` rebuilds a cluster as if lost into a scratch cluster, through the real Pulumi engine,
a real local control plane and Flux, and keeps the evidence in Git.

What an auditor and the on-call need from it: a drill that passes leaves the live cluster, its stack, its
kubeconfig and its last good exactly as they were, writes its evidence note (pushed with the repo) and
leaves nothing running; a last good that no longer passes its gates fails the drill with the evidence of
it; a rebuild slower than the objective fails it as over-rto; a drill killed (SIGKILL) half way is
cleaned up by the next one, which then passes.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from e2e_support import (
    kill_at,
    kill_leftovers,
    make_fleet_repo,
    need_local_clusters,
    push,
    removed_at_end,
    stack_locks,
    wait_until,
)
from helpers import commit_file, git

from drill.runbook import BAD_PATCH  # the drill's bad release: hello on a GPU pool no node has
from fleet.local.clusters import LocalClusters

pytestmark = pytest.mark.e2e

DRILLS_REF = "refs/notes/fleet-drills"


def fleet(repo: Path, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "fleet", *args, "--repo", str(repo)],
                          capture_output=True, text=True, timeout=timeout, env=dict(os.environ))


def add_cluster(repo: Path, name: str, recovery: str | None = None) -> None:
    p = fleet(repo, "cluster", "add", name, "--env", "prod", "--region", "eu")
    assert p.returncode == 0, p.stderr
    if recovery is not None:
        f = repo / "clusters" / f"{name}.yaml"
        commit_file(repo, f"clusters/{name}.yaml", f.read_text() + f"recovery: {recovery}\n", f"{name}: objective")


def set_objective(repo: Path, name: str, recovery: str) -> None:
    """The objective in the working tree (what `fleet drill` reads), uncommitted."""
    f = repo / "clusters" / f"{name}.yaml"
    f.write_text("".join(ln for ln in f.read_text().splitlines(keepends=True) if not ln.startswith("recovery:"))
                 + f"recovery: {recovery}\n")


def nothing_left(home: Path, scratch: str) -> None:
    """No scratch cluster, stack, kubeconfig, journal or operator process of ``scratch``."""
    lc = LocalClusters()
    assert scratch not in lc.list()
    assert not lc.operator.status(scratch), "an operator process of the scratch cluster still runs"
    assert not (home / "kubeconfigs" / f"{scratch}.yaml").exists()
    assert not (home / "bootstrap" / scratch).exists()
    backend = Path(os.environ["PULUMI_BACKEND_URL"].removeprefix("file://"))
    assert not [p for p in backend.rglob(f"{scratch}.json")
                if "history" not in p.parts and "backups" not in p.parts], "the scratch stack is still there"


def notes(repo: Path, cluster: str) -> list[dict]:
    p = subprocess.run(["git", "-C", str(repo), "notes", f"--ref={DRILLS_REF}", "list"], capture_output=True,
                       text=True)
    out = []
    for line in p.stdout.splitlines():
        commit = line.split()[1]
        text = git(repo, "notes", f"--ref={DRILLS_REF}", "show", commit)
        out += [d for d in map(json.loads, text.splitlines()) if d["cluster"] == cluster]
    return sorted(out, key=lambda d: d["started_at"])


def live_objects(kubeconfig: Path) -> dict[str, tuple[str, str]]:
    """The live cluster's workload objects: uid and generation (a Deployment) or resourceVersion (others)."""
    from fleet import toolchain

    p = subprocess.run([str(toolchain.find("kubectl")), "--kubeconfig", str(kubeconfig), "get",
                        "deployments,configmaps,services", "-A", "-o", "json"],
                       capture_output=True, text=True, check=True)
    out = {}
    for o in json.loads(p.stdout)["items"]:
        m = o["metadata"]
        if m["namespace"].startswith(("kube-", "flux-system")):
            continue
        version = str(m.get("generation")) if o["kind"] == "Deployment" else m["resourceVersion"]
        out[f"{o['kind']}/{m['namespace']}/{m['name']}"] = (m["uid"], version)
    return out


def digest(path: Path) -> tuple[str, int]:
    return hashlib.sha256(path.read_bytes()).hexdigest(), path.stat().st_mtime_ns


@pytest.mark.xdist_group("rehearsal-live")
def test_a_drill_of_a_bootstrapped_cluster_passes_and_leaves_the_live_one_alone(
    tmp_path: Path, fleet_home: Path, pulumi_env: object
) -> None:
    need_local_clusters()
    repo = make_fleet_repo(tmp_path)
    add_cluster(repo, "dr-1", recovery="{rto: 10m, drill_every: 7d}")
    push(repo)
    lc = LocalClusters()
    with removed_at_end(dict(os.environ), lc, "dr-1"):
        head = git(repo, "rev-parse", "HEAD").strip()
        p = fleet(repo, "bootstrap", "dr-1", "--to", head)
        assert p.returncode == 0, p.stderr[-3000:]
        kubeconfig = fleet_home / "kubeconfigs" / "dr-1.yaml"
        backend = Path(os.environ["PULUMI_BACKEND_URL"].removeprefix("file://"))
        (state,) = [p for p in backend.rglob("dr-1.json") if "history" not in p.parts and "backups" not in p.parts]
        before = (digest(kubeconfig), digest(state), live_objects(kubeconfig), git(repo, "rev-parse",
                                                                                    "refs/fleet/good/dr-1"))
        assert before[2], "the live cluster runs no workload to compare"
        p = fleet(repo, "status", "--check", "-l", "name=dr-1")
        assert p.returncode == 1 and "dr-1 (never)" in p.stderr  # an objective, never proven

        reports = tmp_path / "reports"
        p = fleet(repo, "drill", "dr-1", "--report-dir", str(reports), "-o", "json")
        assert p.returncode == 0, p.stderr[-4000:]
        out = json.loads(p.stdout)
        assert out["result"] == "passed" and out["scratch"] == "dr-1-drill"
        assert out["revision"] == head and out["last_good"] == head
        assert 0 < out["recovery_s"] <= 600 and out["margin_s"] == pytest.approx(600 - out["recovery_s"], abs=0.01)
        assert set(out["phases"]) == {"provision", "operator", "sync", "gates"}
        steps = {st["name"]: st for st in json.loads((reports / "report.json").read_text())["steps"]}
        # one engine update brought up the scratch cluster and Flux pinned: the operator step, finding that in
        # the stack's outputs, made no second one
        assert "cluster and operator pinned to" in steps["provision"]["detail"], steps["provision"]
        assert "no second update" in steps["operator"]["detail"], steps["operator"]
        proofs = {pr["name"]: pr for pr in out["proofs"]}
        assert proofs["signature"]["status"] == "not required"
        assert proofs["sops"]["status"] == "not required"
        assert proofs["operator"]["status"] == "passed" and "Flux fetched" in proofs["operator"]["detail"]
        assert out["removed"].startswith("removed in")
        # the scratch cluster takes its Kubernetes objects along: the destroy deletes the cluster alone, not
        # Flux's install set object by object first
        assert 'deleting LocalCluster "dr-1-drill-control-plane"' in p.stderr, p.stderr[-3000:]
        assert "deleting CustomResourceDefinition" not in p.stderr and "deleting Kustomization" not in p.stderr
        # the reports, for auditors, and the digest the note keeps
        assert hashlib.sha256((reports / "drill.json").read_bytes()).hexdigest() == out["report_sha256"]
        assert "✔ passed" in (reports / "drill.md").read_text()
        assert (reports / "timeline.svg").read_text().startswith("<svg")
        # the evidence note, pushed with the repo
        (note,) = notes(repo, "dr-1")
        assert note["result"] == "passed" and note["revision"] == head and note["rto_s"] == 600
        assert note["report_sha256"] == out["report_sha256"] and note["by"] == out["by"]
        assert fleet(repo, "push").returncode == 0
        assert git(repo, "rev-parse", DRILLS_REF) == git(tmp_path / "remote.git", "rev-parse", DRILLS_REF)
        # the live cluster, its stack, kubeconfig and last good: exactly as they were
        after = (digest(kubeconfig), digest(state), live_objects(kubeconfig), git(repo, "rev-parse",
                                                                                   "refs/fleet/good/dr-1"))
        assert after == before
        assert lc.list() == ["dr-1"] and lc.operator.running("dr-1")
        nothing_left(fleet_home, "dr-1-drill")
        # status and metrics show it
        p = fleet(repo, "status", "--check", "-l", "name=dr-1", "-o", "json")
        assert p.returncode == 0, p.stderr
        assert json.loads(p.stdout)["metadata"]["drills"]["dr-1"].endswith(" ago")
        from prometheus_client.parser import text_string_to_metric_families

        p = fleet(repo, "metrics", "--drift")
        assert p.returncode == 0, p.stderr
        samples = {s.name: s.value for fam in text_string_to_metric_families(p.stdout) for s in fam.samples
                   if s.labels.get("cluster") == "dr-1"}
        assert samples["fleet_drill_ok"] == 1 and samples["fleet_recovery_objective_seconds"] == 600
        assert samples["fleet_drill_recovery_seconds"] == pytest.approx(out["recovery_s"])
        assert samples["fleet_cluster_reachable"] == 1 and samples["fleet_at_desired_revision"] == 1
        assert samples["fleet_operator_ready"] == 1 and samples["fleet_drift_objects"] == 0

        # over its objective: the same rebuild against a 1-second rto fails, saying by how much
        set_objective(repo, "dr-1", "{rto: 1s, drill_every: 7d}")
        p = fleet(repo, "drill", "dr-1", "-o", "json")
        assert p.returncode == 1, p.stderr[-3000:]
        over = json.loads(p.stdout)
        assert over["result"] == "over-rto" and over["margin_s"] < 0
        assert "over its objective" in p.stderr and "slowest phase" in p.stderr
        assert [n["result"] for n in notes(repo, "dr-1")] == ["passed", "over-rto"]
        p = fleet(repo, "status", "--check", "-l", "name=dr-1")
        assert p.returncode == 1 and "dr-1 (over-rto)" in p.stderr
        assert git(repo, "rev-parse", "refs/fleet/good/dr-1") == before[3]
        nothing_left(fleet_home, "dr-1-drill")
        p = fleet(repo, "drill", "history", "dr-1", "-o", "json")
        assert [i["result"] for i in json.loads(p.stdout)["items"]] == ["over-rto", "passed"]


@pytest.mark.xdist_group("rehearsal-gate")
def test_a_last_good_that_fails_its_gates_fails_the_drill_with_evidence_kept_on_request(
    tmp_path: Path, fleet_home: Path, pulumi_env: object
) -> None:
    """A drill needs no live cluster: only the last good it rebuilds at (here one that no longer passes)."""
    need_local_clusters()
    repo = make_fleet_repo(tmp_path)
    add_cluster(repo, "dr-2", recovery="{rto: 10m}")
    bad = commit_file(repo, "environments/prod/hello.yaml", BAD_PATCH, "prod: release hello 2.0 on the GPU pool")
    push(repo)
    assert fleet(repo, "good", "dr-2", "--set", bad, "--reason", "recorded by hand").returncode == 0
    lc = LocalClusters()
    with removed_at_end(dict(os.environ), lc, "dr-2-drill"):
        p = fleet(repo, "drill", "dr-2", "--gate-timeout", "6", "--report-dir", str(tmp_path / "r"), "-o", "json")
        assert p.returncode == 1, p.stderr[-3000:]
        out = json.loads(p.stdout)
        assert out["result"] == "failed"
        assert out["failure"]["step"] == "gates" and "hello" in out["failure"]["cause"]
        assert "FAILED" in (tmp_path / "r" / "report.md").read_text()  # the rebuild's report names the gate
        assert "Deployment/hello-prod/hello" in (tmp_path / "r" / "report.md").read_text()
        (note,) = notes(repo, "dr-2")
        assert note["result"] == "failed" and note["failed_step"] == "gates" and note["revision"] == bad
        assert "✗" in p.stderr and "Traceback" not in p.stderr
        assert git(repo, "rev-parse", "refs/fleet/good/dr-2").strip() == bad  # last good unchanged
        assert lc.list() == []
        nothing_left(fleet_home, "dr-2-drill")
        p = fleet(repo, "status", "--check", "-l", "name=dr-2")
        assert p.returncode == 1 and "dr-2 (failed)" in p.stderr

        # --keep: the failed scratch cluster stays for inspection, and the run says how to remove it
        p = fleet(repo, "drill", "dr-2", "--gate-timeout", "6", "--keep")
        assert p.returncode == 1, p.stderr[-3000:]
        assert 'kept scratch cluster "dr-2-drill"' in p.stderr and "`fleet drill --cleanup dr-2`" in p.stderr
        assert lc.list() == ["dr-2-drill"] and lc.operator.running("dr-2-drill")
        assert (fleet_home / "kubeconfigs" / "dr-2-drill.yaml").is_file()
        p = fleet(repo, "drill", "--cleanup", "dr-2")
        assert p.returncode == 0, p.stderr[-3000:]
        assert 'dr-2: removed stack "dr-2-drill"' in p.stderr
        nothing_left(fleet_home, "dr-2-drill")
        assert [n["result"] for n in notes(repo, "dr-2")] == ["failed", "failed"]


@pytest.mark.xdist_group("rehearsal-kill")
def test_a_drill_interrupted_or_killed_half_way_leaves_nothing_after_the_next_which_passes(
    tmp_path: Path, fleet_home: Path, pulumi_env: object
) -> None:
    need_local_clusters()
    repo = make_fleet_repo(tmp_path)
    add_cluster(repo, "dr-3")
    push(repo)
    head = git(repo, "rev-parse", "HEAD").strip()
    assert fleet(repo, "good", "dr-3", "--set", head).returncode == 0
    lc = LocalClusters()
    clusters = lc.workdir / "kwok" / "clusters"
    cmd = [sys.executable, "-m", "fleet", "drill", "dr-3", "--repo", str(repo)]

    def journal() -> dict | None:
        try:
            return json.loads((fleet_home / "bootstrap" / "dr-3-drill" / "journal.json").read_text())
        except (OSError, ValueError):
            return None

    def step(name: str) -> str | None:
        j = journal()
        return next((s["state"] for s in j["steps"] if s["name"] == name), None) if j else None

    with removed_at_end(dict(os.environ), lc, "dr-3-drill"):
        # Ctrl-C (SIGINT to the run's process group, as a terminal sends it) inside the provision step's update,
        # the scratch cluster made and Flux being installed: the scratch cluster and stack are removed before
        # the process exits
        def installing_flux() -> bool:
            return step("provision") == "running" and lc.kubeconfig_path("dr-3-drill").is_file()

        with open(tmp_path / "run-0.log", "w") as log:
            # SIGINT's default action, as a terminal's foreground job has it: a test session started in the
            # background by a shell without job control inherits SIGINT ignored (POSIX), and so would the drill
            run = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                   preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        wait_until(lambda: installing_flux() or run.poll() is not None,
                   "the scratch cluster made, its operator being installed")
        assert run.poll() is None, (tmp_path / "run-0.log").read_text()[-3000:]
        os.killpg(run.pid, signal.SIGINT)
        assert run.wait(300) == 130, (tmp_path / "run-0.log").read_text()[-3000:]
        text = (tmp_path / "run-0.log").read_text()
        assert 'scratch cluster "dr-3-drill" removed' in text, text[-3000:]
        kill_leftovers(fleet_home)  # the engine's plugins of the interrupted update, which never exit alone
        nothing_left(fleet_home, "dr-3-drill")
        assert not notes(repo, "dr-3")

        # killed inside the engine's update that installs the operator (the provision step's: one update brings
        # up the scratch cluster and Flux): a scratch cluster, its stack (locked) and Flux's endpoint exist
        kill_at(cmd, fleet_home, "the scratch cluster's operator install inside the engine's update",
                lambda: installing_flux() and bool(stack_locks("dr-3-drill"))
                and (clusters / "dr-3-drill").is_dir(), log=tmp_path / "run-1.log")
        assert "dr-3-drill" in lc.list() and stack_locks("dr-3-drill")
        assert not notes(repo, "dr-3")  # a killed drill proves nothing and records nothing

        p = subprocess.run([*cmd, "-o", "json"], capture_output=True, text=True, timeout=900)
        assert p.returncode == 0, p.stderr[-4000:]
        out = json.loads(p.stdout)
        assert out["result"] == "passed"
        assert any("dr-3-drill" in c for c in out["cleaned_before"]), out["cleaned_before"]
        assert "removed what an earlier drill left" in p.stderr
        assert [n["result"] for n in notes(repo, "dr-3")] == ["passed"]
        assert lc.list() == []
        nothing_left(fleet_home, "dr-3-drill")
        assert git(repo, "rev-parse", "refs/fleet/good/dr-3").strip() == head
