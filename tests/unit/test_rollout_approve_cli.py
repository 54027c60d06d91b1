"""``fleet rollout approve`` and ``fleet rollout status`` through the CLI on a real fleet repo: the approval is
an audit note on the rollout's revision that ``fleet push`` carries to the remote; bad approvals exit 2 with
one line and write nothing. Also the operator gate of a cluster healthy at the previous revision (argo-cd
issue 29410): it never passes for the new one."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from fleet.live import health as h
from fleet.operator.flux.gate import operator_gate as _operator_gate
from fleet.registry import ClusterSpec, add_cluster
from rollout.journal import RolloutJournal, rollouts_dir
from rollout.policy import approvals_in
from tests.helpers import git, git_state, new_fleet_repo, run_cli

STARTER = "Fleet Tester <tester@fleet.test>"  # tests/conftest.py's git identity


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = new_fleet_repo(tmp_path)
    for name, wave in (("eu-1", 1), ("eu-2", 2), ("eu-3", 3)):
        add_cluster(root, ClusterSpec(name=name, environment="prod", region="eu", wave=wave))
    return root


def paused(repo: Path, *, at: int = 2, state: str = "paused") -> RolloutJournal:
    """The journal of a rollout paused before wave ``at`` (as the engine leaves it)."""
    head = git(repo, "rev-parse", "HEAD").strip()
    j = RolloutJournal.new("region=eu", head, "HEAD", {1: ["eu-1"], 2: ["eu-2"], 3: ["eu-3"]}, {})
    j.started_by, j.state, j.paused_at = STARTER, state, at
    for w in j.waves:
        w.approval = w.wave >= 2
        w.policy = "approval: rollout.waves.2" if w.approval else ""
        if w.wave < at:
            w.state = "passed"
            j.clusters[w.clusters[0]].state = "passed"
    j.wave(at).state = "waiting-approval"
    j.wave(at).waiting_since = j.started
    j.path = rollouts_dir() / "current.json"
    j.save()
    return j


def test_approve_writes_an_audit_note_on_the_revision_that_push_carries(
    repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    remote = tmp_path / "remote.git"
    subprocess.run(["git", "init", "-q", "--bare", str(remote)], check=True)
    git(repo, "remote", "add", "origin", str(remote))
    j = paused(repo)
    monkeypatch.setenv("GIT_AUTHOR_NAME", "Release Manager")
    monkeypatch.setenv("GIT_AUTHOR_EMAIL", "rm@fleet.test")
    code, _out, err = run_cli(capsys, "rollout", "approve", j.id, "--wave", "2", "--reason", "canary is fine",
                              "--repo", str(repo))
    assert code == 0, err
    assert f"wave 2 of rollout {j.id} approved by Release Manager <rm@fleet.test>" in err
    [a] = approvals_in(git(repo, "notes", "--ref=fleet", "show", j.revision), j.id, j.revision)
    assert (a.wave, a.approved_by, a.reason) == (2, "Release Manager <rm@fleet.test>", "canary is fine")
    code, _out, err = run_cli(capsys, "push", "--repo", str(repo))
    assert code == 0, err
    carried = subprocess.run(["git", "-C", str(remote), "notes", "--ref=fleet", "show", j.revision],
                             capture_output=True, text=True, check=True).stdout
    assert approvals_in(carried, j.id, j.revision) == [a]


@pytest.mark.parametrize(("args", "message"), [
    (["20990101T000000Z-abcdef", "--wave", "2"], 'rollout "20990101T000000Z-abcdef" not found'),
    (["{id}", "--wave", "9"], "has no wave 9 (its waves: 1, 2, 3)"),
    (["{id}", "--wave", "3"], "wave 3 of rollout {id} is not waiting for an approval (the wave is pending"),
    (["{id}", "--wave", "1"], "wave 1 of rollout {id} is not waiting for an approval (the wave is passed"),
    (["../../etc", "--wave", "2"], 'rollout "../../etc" not found'),
])
def test_approving_what_does_not_exist_or_does_not_wait_exits_2_and_writes_nothing(
    repo: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    j = paused(repo)
    state = git_state(repo)
    code, out, err = run_cli(capsys, "rollout", "approve", *[a.format(id=j.id) for a in args], "--repo", str(repo))
    assert code == 2, err
    assert message.format(id=j.id) in err and len(err.strip().splitlines()) <= 2 and "Traceback" not in err
    assert out == "" and git_state(repo) == state


def test_a_rollout_that_is_not_paused_cannot_be_approved(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    j = paused(repo, state="stopped")
    code, _out, err = run_cli(capsys, "rollout", "approve", j.id, "--wave", "2", "--repo", str(repo))
    assert code == 2 and "the rollout stopped" in err


def test_a_rollout_killed_as_it_paused_can_be_approved_unless_one_runs(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """SIGKILL between the pause being journaled and the rollout's end: the journal says running, its wave
    waiting-approval. No rollout holds the lock, so it is approved; while one does, it is not."""
    from rollout.journal import locked_rollouts

    j = paused(repo, state="running")
    with locked_rollouts():
        code, _out, err = run_cli(capsys, "rollout", "approve", j.id, "--wave", "2", "--repo", str(repo))
        assert code == 2 and "the rollout running" in err
    code, _out, err = run_cli(capsys, "rollout", "approve", j.id, "--wave", "2", "--repo", str(repo))
    assert code == 0, err


def test_the_starter_cannot_approve_when_fleet_yaml_asks_for_another_approver(
    repo: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    with (repo / "fleet.yaml").open("a") as f:
        f.write("rollout:\n  approverNotStarter: true\n")
    git(repo, "commit", "-qam", "rollout: another approver")
    j = paused(repo)
    state = git_state(repo)
    code, _out, err = run_cli(capsys, "rollout", "approve", j.id, "--wave", "2", "--repo", str(repo))
    assert code == 2 and f"{STARTER} started rollout {j.id}" in err and git_state(repo) == state
    monkeypatch.setenv("GIT_AUTHOR_NAME", "Someone Else")
    monkeypatch.setenv("GIT_AUTHOR_EMAIL", "else@fleet.test")
    code, _out, err = run_cli(capsys, "rollout", "approve", j.id, "--wave", "2", "--repo", str(repo))
    assert code == 0, err


def test_status_shows_every_wave_and_what_to_run(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    j = paused(repo)
    code, out, err = run_cli(capsys, "rollout", "status")
    assert code == 0, err
    assert out.splitlines()[0].startswith(f"rollout {j.id}: paused (region=eu at ")
    rows = [ln.split()[:2] for ln in out.splitlines()[2:5]]
    assert rows == [["1", "done"], ["2", "waiting-approval"], ["3", "not-started"]]
    assert f"next: fleet rollout approve {j.id} --wave 2 --reason TEXT" in out
    code, out, _ = run_cli(capsys, "rollout", "status", j.id, "-o", "json")
    data = json.loads(out)
    assert code == 0 and [w["state"] for w in data["waves"]] == ["done", "waiting-approval", "not-started"]
    code, out, err = run_cli(capsys, "rollout", "status", "nope")
    assert code == 2 and 'rollout "nope" not found' in err and out == ""


def test_a_paused_rollout_exits_75_with_the_line_to_run(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Through the CLI with the real services, up to the pause: wave 1 (of the only cluster) needs an approval,
    so the rollout pauses before touching any cluster."""
    with (repo / "fleet.yaml").open("a") as f:
        f.write("rollout:\n  waves:\n    1: {approval: true}\n")
    git(repo, "commit", "-qam", "rollout: wave 1 needs an approval")
    code, out, err = run_cli(capsys, "rollout", "-l", "name=eu-1", "--repo", str(repo), "-o", "json")
    assert code == 75, err
    data = json.loads(out)
    assert data["outcome"] == "paused" and data["report"]["waves"][0]["state"] == "waiting-approval"
    assert f"fleet rollout approve {data['id']} --wave 1 --reason TEXT" in err
    code, _out, err = run_cli(capsys, "rollout", "approve", data["id"], "--wave", "1", "--repo", str(repo))
    assert code == 0, err


def test_the_operator_gate_never_passes_a_cluster_healthy_at_the_previous_revision() -> None:
    """argo-cd issue 29410: a progressive sync step marked done while its applications were healthy at the
    previous revision. Flux's Kustomization Ready at A says nothing of B."""
    a, b = "a" * 40, "b" * 40
    ks = {"apiVersion": "kustomize.toolkit.fluxcd.io/v1", "kind": "Kustomization",
          "metadata": {"name": "fleet", "namespace": "flux-system"},
          "spec": {"sourceRef": {"kind": "GitRepository", "name": "fleet"}},
          "status": {"lastAppliedRevision": f"main@sha1:{a}", "lastAttemptedRevision": f"main@sha1:{a}",
                     "conditions": [{"type": "Ready", "status": "True", "reason": "ReconciliationSucceeded"}]}}
    snap = {("kustomize.toolkit.fluxcd.io", "Kustomization", "flux-system", "fleet"): ks}
    for recheck in (False, True):  # the bake's watch tolerates Flux's periodic re-check, never another revision
        health = _operator_gate(b, "flux-system", recheck_is_ready=recheck).evaluate(snap)
        assert health.state == h.WAITING and f"expected {b[:12]}" in health.message
    assert _operator_gate(a, "flux-system").evaluate(snap).ok
