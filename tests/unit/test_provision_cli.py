"""Bad input to `fleet provision` / `fleet destroy`: one clear line, exit 2, nothing changed.

These checks run before the Pulumi engine, so they need no toolchain: real fleet repos in tmp dirs.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import commit_file, git_state, new_fleet_repo, run_cli

from fleet.errors import InputError

URL_LINE = "  # url: https://git.example.com/platform/fleet.git"


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = new_fleet_repo(tmp_path)
    fleet_yaml = (
        (root / "fleet.yaml").read_text().replace(URL_LINE, "  url: https://git.example.com/fleet.git")
    )
    commit_file(root, "fleet.yaml", fleet_yaml, "operator url")
    return root


def add(repo: Path, name: str, body: str) -> None:
    commit_file(
        repo, f"clusters/{name}.yaml", f"apiVersion: fleet.dev/v1\nkind: Cluster\nname: {name}\n{body}"
    )


def provision(capsys: pytest.CaptureFixture[str], repo: Path, *args: str) -> tuple[int, str]:
    before = git_state(repo)
    code, _out, err = run_cli(capsys, "provision", *args, "--repo", str(repo))
    assert git_state(repo) == before
    return code, err


def assert_no_pulumi_state(fleet_home: Path) -> None:
    assert not (fleet_home / "pulumi").exists(), "the engine ran: bad input must be refused before it"
    assert not (fleet_home / "pulumi-work").exists()


def test_eks_without_a_region_is_refused_before_the_engine(
    capsys: pytest.CaptureFixture[str], repo: Path, fleet_home: Path
) -> None:
    add(repo, "eks-1", "environment: dev\nprovider: eks\n")
    code, err = provision(capsys, repo, "eks-1")
    assert code == 2
    assert "clusters/eks-1.yaml: settings.region: the eks provider needs this setting" in err
    assert_no_pulumi_state(fleet_home)


def test_gke_without_a_project_is_refused(
    capsys: pytest.CaptureFixture[str], repo: Path, fleet_home: Path
) -> None:
    add(repo, "gke-1", "environment: dev\nprovider: gke\nregion: europe-west1\n")
    code, err = provision(capsys, repo, "gke-1")
    assert code == 2
    assert "clusters/gke-1.yaml: settings.project: the gke provider needs this setting" in err
    assert_no_pulumi_state(fleet_home)


def test_an_unknown_provider_is_refused_with_file_line_and_key(
    capsys: pytest.CaptureFixture[str], repo: Path, fleet_home: Path
) -> None:
    add(repo, "x-1", "environment: dev\nprovider: openstack\n")
    code, err = provision(capsys, repo, "x-1")
    assert code == 2
    assert 'clusters/x-1.yaml:5: provider: "openstack" is not allowed' in err
    assert_no_pulumi_state(fleet_home)


def test_a_local_kube_version_other_than_the_toolchains_is_refused(
    capsys: pytest.CaptureFixture[str], repo: Path
) -> None:
    add(repo, "dev-1", "environment: dev\nsettings:\n  kubeVersion: v1.20.0\n")
    code, err = provision(capsys, repo, "dev-1")
    assert code == 2
    assert "settings.kubeVersion: local clusters run the toolchain's Kubernetes" in err


def test_a_local_path_remote_is_not_a_url_the_operator_of_a_remote_cluster_can_clone(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, fleet_home: Path
) -> None:
    from fleet.registry import ClusterSpec, add_cluster, init_repo

    # A local cluster's operator gets such a remote served on loopback (fleet.local.flux); a cluster
    # elsewhere cannot read this machine's disk.
    root = init_repo(tmp_path / "fleet", remote_url=str(tmp_path / "remote.git")).root
    pytest.importorskip("pulumi_eks", reason="the eks provider's SDK is an optional extra (fleet[aws])")
    add_cluster(root, ClusterSpec(name="dev-1", environment="dev", provider="eks", region="eu-west-1"))
    code, err = provision(capsys, root, "dev-1")
    assert code == 2
    assert f'git url "{tmp_path / "remote.git"}" is not an http(s) or ssh URL' in err
    assert "hint: set git.url in fleet.yaml" in err
    assert_no_pulumi_state(fleet_home)


def test_no_git_url_at_all_is_refused_for_a_cluster_elsewhere(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    from fleet.registry import ClusterSpec, add_cluster

    root = new_fleet_repo(tmp_path)
    add_cluster(root, ClusterSpec(name="dev-1", environment="dev", provider="eks", region="eu-west-1"))
    code, err = provision(capsys, root, "dev-1")
    assert code == 2
    assert 'no git URL for the operator: fleet.yaml has no git.url and no remote "origin"' in err


def test_an_unknown_cluster_names_the_close_ones(capsys: pytest.CaptureFixture[str], repo: Path) -> None:
    add(repo, "dev-1", "environment: dev\n")
    code, err = provision(capsys, repo, "dev-2")
    assert code == 2
    assert 'cluster "dev-2" not found in clusters/' in err and "did you mean dev-1" in err


def test_cluster_and_all_are_exclusive_and_one_is_needed(
    capsys: pytest.CaptureFixture[str], repo: Path
) -> None:
    assert provision(capsys, repo)[0] == 2
    code, err = provision(capsys, repo, "dev-1", "--all")
    assert code == 2 and "give a CLUSTER or --all" in err
    code, err = provision(capsys, repo, "dev-1", "-l", "env=dev")
    assert code == 2 and "-l/--selector goes with --all" in err
    code, err = provision(capsys, repo, "--all", "--max-parallel", "0")
    assert code == 2


def test_a_bad_git_auth_file_is_refused(
    capsys: pytest.CaptureFixture[str], repo: Path, tmp_path: Path
) -> None:
    add(repo, "dev-1", "environment: dev\n")
    auth = tmp_path / "auth.yaml"
    auth.write_text("user: bot\n")
    code, err = provision(capsys, repo, "dev-1", "--git-auth", str(auth))
    assert code == 2 and f"{auth}: unknown key 'user'" in err
    code, err = provision(capsys, repo, "dev-1", "--git-auth", str(tmp_path / "missing.yaml"))
    assert code == 2 and "--git-auth: cannot read" in err


def test_destroy_without_yes_and_without_a_terminal_refuses(
    capsys: pytest.CaptureFixture[str], fleet_home: Path
) -> None:
    code, _out, err = run_cli(capsys, "destroy", "dev-1")
    assert code == 2
    assert 'refusing to destroy cluster "dev-1" without --yes' in err
    assert_no_pulumi_state(fleet_home)


def test_a_served_remote_that_is_gone_is_named_not_taken_for_an_unpushed_commit(tmp_path: Path) -> None:
    """A local cluster's operator clones the path remote: when that remote is gone, fleet says so, rather than
    calling the commit unpushed and hinting `fleet push`."""
    import shutil
    import subprocess

    from fleet.provision import check_operator_can_fetch
    from fleet.registry import ClusterSpec, add_cluster, init_repo

    remote = tmp_path / "remote.git"
    subprocess.run(["git", "init", "-q", "--bare", str(remote)], check=True)
    root = init_repo(tmp_path / "fleet", remote_url=str(remote)).root
    add_cluster(root, ClusterSpec(name="dev-1", environment="dev"))
    head = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                          check=True).stdout.strip()
    with pytest.raises(InputError, match="is not on the remote") as e:
        check_operator_can_fetch(root, "dev-1", head)  # never pushed
    assert "fleet push" in (e.value.hint or "")
    shutil.rmtree(remote)
    with pytest.raises(InputError, match=f"the remote {remote} that the operator clones is gone") as e:
        check_operator_can_fetch(root, "dev-1", head)
    assert "fleet push" not in (e.value.hint or "")
