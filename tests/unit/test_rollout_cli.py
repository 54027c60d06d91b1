"""``fleet rollout`` through the CLI on a real fleet repo, where no cluster needs to exist: the dry run
(waves and what each cluster needs), and bad input (exit 2, one line, nothing started)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fleet.registry import ClusterSpec, add_cluster
from rollout.journal import rollouts_dir
from tests.helpers import git_state, new_fleet_repo, run_cli


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = new_fleet_repo(tmp_path)
    for name, env, wave in (("eu-1", "prod", 1), ("eu-2", "staging", 1), ("eu-3", "prod", 2), ("ap-1", "dev", 0)):
        add_cluster(root, ClusterSpec(name=name, environment=env, region=name[:2], wave=wave))
    return root


def test_dry_run_shows_the_waves_and_that_new_clusters_will_be_brought_up(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    state = git_state(repo)
    code, out, err = run_cli(capsys, "rollout", "-l", "region=eu", "--dry-run", "--repo", str(repo))
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].startswith("Rollout of ") and 'to clusters matching "region=eu"' in lines[0]
    assert lines[2:] == [
        "  wave 1:",
        "    - eu-1: bootstrap (no kubeconfig: not provisioned by fleet, no access in the registry)",
        "    - eu-2: bootstrap (no kubeconfig: not provisioned by fleet, no access in the registry)",
        "  wave 2:",
        "    - eu-3: bootstrap (no kubeconfig: not provisioned by fleet, no access in the registry)",
    ]
    assert git_state(repo) == state and not (rollouts_dir() / "current.json").exists()
    code, out, _ = run_cli(capsys, "rollout", "--dry-run", "-o", "json", "--repo", str(repo))
    plan = json.loads(out)["plan"]
    assert [w["wave"] for w in plan["waves"]] == [0, 1, 2] and plan["max_parallel"] == 2


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-l", "region=mars"], 'no cluster matches selector "region=mars"'),
        (["--max-parallel", "0"], "--max-parallel must be at least 1"),
        (["--max-failures", "-1"], '--max-failures: "-1" is not a number of clusters or a percent of them'),
        (["--max-failures", "150%"], "--max-failures: 150% is more than 100% of the clusters"),
        (["--max-failures", "ten"], '--max-failures: "ten" is not a number of clusters or a percent of them'),
        (["--max-failures-total", "1.5"], '--max-failures-total: "1.5" is not a number of clusters'),
        (["--bake", "10 minutes"], '--bake: "10 minutes" is not a duration'),
        (["--on-failure", "pray"], '--on-failure must be hold or rollback (got "pray")'),
        (["--gate-timeout", "soon"], '--gate-timeout: "soon" is not a duration'),
        (["--sync", "magic"], "--sync must be one of auto, operator, direct"),
        (["--rev", "no-such-rev"], "no-such-rev"),
        (["-l", "region in (eu"], "invalid selector"),
    ],
)
def test_bad_input_exits_2_and_starts_nothing(repo: Path, capsys: pytest.CaptureFixture[str], args: list[str],
                                              message: str) -> None:
    state = git_state(repo)
    code, out, err = run_cli(capsys, "rollout", *args, "--repo", str(repo))
    assert code == 2, err
    assert message in err and "Traceback" not in err and out == ""
    assert git_state(repo) == state and not (rollouts_dir() / "current.json").exists()


KUBECONFIG = """apiVersion: v1
kind: Config
clusters:
- name: c
  cluster: {{server: "https://127.0.0.1:{port}", insecure-skip-tls-verify: true}}
contexts:
- name: c
  context: {{cluster: c, user: u}}
current-context: c
users:
- name: u
  user: {{token: t}}
"""


def _closed_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_probe_tells_clusters_to_bring_up_from_clusters_to_leave_alone(repo: Path, tmp_path: Path,
                                                                         fleet_home: Path) -> None:
    from fleet.access import kubeconfig_cache_path
    from fleet.adapters.pulumi_auto import default_settings
    from fleet.registry.model import KubeAccess
    from rollout.services import RealRolloutServices

    dead = tmp_path / "dead.kubeconfig"
    dead.write_text(KUBECONFIG.format(port=_closed_port()))
    add_cluster(repo, ClusterSpec(name="byo-1", environment="prod", region="eu",
                                  access=KubeAccess(kubeconfig=str(dead))))
    cached = kubeconfig_cache_path("eu-2")  # provisioned once; its control plane is gone now
    cached.parent.mkdir(parents=True, exist_ok=True)
    cached.write_text(KUBECONFIG.format(port=_closed_port()))
    services = RealRolloutServices(repo, engine=default_settings())

    never = services.probe("eu-1")
    assert not never.exists and never.why.startswith("no kubeconfig")
    lost = services.probe("eu-2")
    assert not lost.exists and lost.why.startswith("its API server does not answer")
    byo = services.probe("byo-1")  # reached through access: not fleet's to build
    assert byo.exists and byo.why.startswith("registry access, but its API server does not answer")
