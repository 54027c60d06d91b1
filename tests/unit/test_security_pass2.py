"""Security, second pass (issue 20), the parts that are not the corpus's "refused cleanly": safe output,
audit notes checked at the door (and read back as valid JSON), reflog revisions, registry fields checked
at load, operator.source confined to the repository, SOPS regexes in linear time, and diffs that never
show a Secret's value or a value SOPS encrypted. The refusals themselves are in the corpus
(tests/unit/test_hostile_inputs.py)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from fleet.errors import ConfigError, FleetError, SecretsError
from fleet.output import OutputFormat, StderrReporter, emit, visible, visible_text
from tests.helpers import commit_file, git, new_fleet_repo, run_cli

Capsys = pytest.CaptureFixture[str]
HOSTILE = "ok\x1b]0;pwned\x07\x1b[2J\r\u202etxt.exe\u2028\x85\udcff"
RAW = ("\x1b", "\x07", "\r", "\u202e", "\u2028", "\x85", "\udcff")


def raw_in(text: str) -> list[str]:
    return [c for c in RAW if c in text]


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = new_fleet_repo(tmp_path, clusters={"eu-1": "prod"})
    monkeypatch.chdir(root)
    return root


# ---- safe output -------------------------------------------------------------------------------


def test_visible_escapes_every_control_escape_and_bidi_character() -> None:
    shown = visible(HOSTILE)
    assert raw_in(shown) == []
    assert shown == "ok\\x1b]0;pwned\\x07\\x1b[2J\\x0d\\u202etxt.exe\\u2028\\x85\\udcff"
    assert visible("a\nb\tc") == "a\\x0ab\\x09c"
    assert visible_text("line 1\nline\x1b 2\n") == "line 1\nline\\x1b 2\n"
    assert visible("plain, é and ✔ stay") == "plain, é and ✔ stay"


def test_table_cells_and_progress_lines_are_made_visible(capsys: Capsys) -> None:
    emit([{"name": HOSTILE}], OutputFormat.table, columns=["name"], rows=lambda d: [(x["name"],) for x in d])
    StderrReporter().warn(f"object {HOSTILE} not ready")
    out, err = capsys.readouterr()
    assert raw_in(out) == [] and raw_in(err) == []
    assert "ok\\x1b]0;pwned" in out and "ok\\x1b]0;pwned" in err
    assert len(out.splitlines()) == 2 and len(err.splitlines()) == 1


def test_json_stays_json_whatever_the_strings_and_floats(capsys: Capsys) -> None:
    emit({"s": HOSTILE.replace("\udcff", ""), "nan": float("nan"), "inf": float("-inf")}, OutputFormat.json)
    out = capsys.readouterr().out
    data = json.loads(out, parse_constant=lambda c: pytest.fail(f"{c} is not JSON"))
    assert data["nan"] is None and data["inf"] is None
    assert raw_in(out) == []


def test_history_shows_hostile_subjects_and_authors_escaped(repo: Path, capsys: Capsys) -> None:
    env = {**os.environ, "GIT_AUTHOR_NAME": "Mallory\x1b[8m", "GIT_COMMITTER_NAME": "Mallory"}
    (repo / "base" / "service.yaml").write_text((repo / "base" / "service.yaml").read_text() + "# x\n")
    git(repo, "add", "base/service.yaml")
    import subprocess

    subject = "fix \x1b]8;;https://evil\x07link\x1b]8;;\x07 \u202egnp.exe"
    subprocess.run(["git", "-C", str(repo), "commit", "-q", "-m", subject], env=env, check=True)
    code, out, err = run_cli(capsys, "history", "eu-1")
    assert code == 0, err
    assert raw_in(out) == [] and raw_in(err) == []
    assert "Mallory\\x1b[8m" in out and "\\u202egnp.exe" in out


def _note(repo: Path, sha: str, record: dict[str, Any]) -> None:
    """An audit note as it arrives from a remote (``fleet pull``): anyone's text."""
    text = json.dumps(record, allow_nan=True)
    git(repo, "notes", "--ref", "fleet", "add", "-f", "-m", text, sha)
    git(repo, "update-ref", "refs/fleet/good/eu-1", sha)


def test_good_shows_a_pulled_note_escaped_and_json_stays_json(repo: Path, capsys: Capsys) -> None:
    sha = git(repo, "rev-parse", "HEAD").strip()
    _note(repo, sha, {"cluster": "eu-1", "revision": sha, "recorded_at": "2026-01-01T00:00:00+00:00",
                      "recorded_by": "Eve \x1b[2J<eve@x>", "reason": "ok\r\x1b[32m✔ all good", "gates": [],
                      "duration_s": float("nan"), "previous": None})
    code, out, err = run_cli(capsys, "good", "eu-1")
    assert code == 0, err
    assert raw_in(out) == [] and "\\x1b[2J" in out
    code, out, err = run_cli(capsys, "good", "eu-1", "-o", "json")
    assert code == 0, err
    data = json.loads(out, parse_constant=lambda c: pytest.fail(f"{c} is not JSON"))
    assert data["duration_s"] is None
    assert raw_in(out) == []


def test_an_error_line_is_made_visible(capsys: Capsys, monkeypatch: pytest.MonkeyPatch, fleet_home: Path) -> None:
    import fleet.cli.provision
    import fleet.provision

    def drift(name: str, **_kw: Any) -> Any:
        raise FleetError(f"the engine said {HOSTILE}", hint=f"and {HOSTILE}")

    monkeypatch.setattr(fleet.provision, "drift", drift)
    monkeypatch.setattr(fleet.cli.provision, "_program", lambda: None)
    code, out, err = run_cli(capsys, "drift", "eu-1")
    assert code == 2 and out == ""
    assert raw_in(err) == [] and len(err.splitlines()) == 2


def test_an_audit_identity_with_a_control_character_is_refused(
    repo: Path, capsys: Capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GIT_AUTHOR_NAME", "Eve\x1b[2J")
    code, out, err = run_cli(capsys, "good", "eu-1", "--set", "HEAD")
    assert code == 2 and out == "" and raw_in(err) == []
    assert "user.name" in err
    assert git(repo, "notes", "--ref", "fleet", "list").strip() == ""


def test_good_gates_and_duration_that_are_fine_are_recorded(repo: Path, capsys: Capsys, tmp_path: Path) -> None:
    gates = tmp_path / "gates.json"
    gates.write_text(json.dumps([{"gate": "rollout", "object": "Deployment/x", "status": "passed", "n": 1.5}]))
    code, _, err = run_cli(capsys, "good", "eu-1", "--set", "HEAD", "--gates", str(gates), "--duration", "12.5")
    assert code == 0, err
    data = json.loads(run_cli(capsys, "good", "eu-1", "-o", "json")[1])
    assert data["duration_s"] == 12.5 and data["gates"][0]["status"] == "passed"


# ---- reflog revisions --------------------------------------------------------------------------


def test_reflog_revisions_resolve_in_every_command(repo: Path, capsys: Capsys) -> None:
    head = git(repo, "rev-parse", "HEAD").strip()
    code, _, err = run_cli(capsys, "good", "eu-1", "--set", "HEAD@{0}")
    assert code == 0, err
    assert git(repo, "rev-parse", "refs/fleet/good/eu-1").strip() == head
    code, out, err = run_cli(capsys, "cluster", "list", "--rev", "HEAD@{yesterday}", "-o", "json")
    assert code == 0, err
    code, out, err = run_cli(capsys, "cluster", "show", "eu-1", "--rev", "main@{0}", "-o", "json")
    assert code == 0 and json.loads(out)["name"] == "eu-1", err


def test_a_reflog_revision_that_does_not_exist_is_bad_input(repo: Path, capsys: Capsys, fleet_home: Path) -> None:
    code, out, err = run_cli(capsys, "bootstrap", "eu-1", "--to", "HEAD@{99}", "--dry-run")
    assert code == 2 and out == ""
    assert err.splitlines()[-1].startswith(("✗ revision", "  hint")) or "not found" in err
    assert "Traceback" not in err and "internal error" not in err


# ---- registry fields at the door ----------------------------------------------------------------


def test_custom_gates_that_are_fine_load(repo: Path, capsys: Capsys) -> None:
    commit_file(repo, "clusters/eu-1.yaml", "name: eu-1\nenvironment: prod\ngates:\n  custom:\n"
                "    - {apiVersion: v1, kind: ConfigMap, name: app-config, namespace: hello-prod}\n"
                "    - {apiVersion: v1, kind: Namespace, name: hello-prod}\n"
                "    - {apiVersion: example.com/v1beta1, kind: Widget, name: w.1, condition: Available}\n")
    code, _, err = run_cli(capsys, "cluster", "list")
    assert code == 0, err


def test_an_unknown_setting_names_file_line_and_key(repo: Path, capsys: Capsys) -> None:
    commit_file(repo, "clusters/eu-1.yaml", "name: eu-1\nenvironment: prod\nprovider: eks\n"
                "settings:\n  nodes: 3\n  instanceTyp: m6i.large\n")
    code, _, err = run_cli(capsys, "cluster", "list")
    assert code == 2
    assert err.startswith("✗ clusters/eu-1.yaml:4: settings: unknown setting \"instanceTyp\" of provider eks")
    assert 'did you mean "instanceType"' in err


# ---- operator.source ---------------------------------------------------------------------------


def test_operator_source_inside_the_repo_is_used_and_a_symlink_out_is_refused(repo: Path) -> None:
    from fleet.provision import stack_config

    commit_file(repo, "flux/install.yaml", "apiVersion: v1\nkind: Namespace\nmetadata: {name: flux-system}\n")
    commit_file(repo, "fleet.yaml", (repo / "fleet.yaml").read_text().replace(
        "  kind: flux\n", "  kind: flux\n  source: flux/install.yaml\n"))
    cfg = stack_config(repo, "eu-1")
    assert cfg.settings.operator.source == str((repo / "flux" / "install.yaml").resolve())
    (repo / "flux" / "install.yaml").unlink()
    host = repo.parent / "host.yaml"
    host.write_text("HOST-SECRET: 1\n")
    (repo / "flux" / "install.yaml").symlink_to(host)
    with pytest.raises(ConfigError, match="leads out of the repository") as e:
        stack_config(repo, "eu-1")
    assert "HOST-SECRET" not in str(e.value)


def test_install_manifests_that_are_not_yaml_are_named_by_line_not_quoted(tmp_path: Path) -> None:
    from fleet.operator.flux import install as flux
    from fleet.registry.model import ClusterSpec
    from tests.unit.pulumi_mocks import stack_config

    bad = tmp_path / "install.yaml"
    bad.write_text("apiVersion: v1\nkind: [HOST-SECRET-LINE\n")
    cfg = stack_config(ClusterSpec(name="eu-1", environment="prod"), operator={"source": str(bad)})
    with pytest.raises(ConfigError) as e:
        flux.install_objects(cfg)
    assert "HOST-SECRET" not in e.value.message and "operator.source" in e.value.message


# ---- SOPS regexes ------------------------------------------------------------------------------


@pytest.mark.timeout(20)
def test_a_backtracking_sops_regex_runs_in_linear_time() -> None:
    """``^(a+)+$`` against 40 a's and a "!" takes Python's re longer than the age of the universe."""
    from fleet.sops import _Rules

    rules = _Rules(encrypted_regex="^(a+)+$")
    assert rules.encrypted(["a" * 40 + "!"]) is False
    assert rules.encrypted(["a" * 40]) is True


@pytest.mark.parametrize("pattern", [r"(a)\1", r"(?=a)b", r"(?<!x)y", "x" * 2000])
def test_a_sops_regex_re2_cannot_run_is_refused(pattern: str) -> None:
    from fleet.sops import _Rules

    with pytest.raises(SecretsError, match=r"sops\.encrypted_regex"):
        _Rules(encrypted_regex=pattern).encrypted(["data"])


# ---- diffs never show a secret -----------------------------------------------------------------


def _secret(password: str, annotations: dict[str, str] | None = None) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
            "metadata": {"name": "db", "namespace": "app", "labels": {"app": "db"},
                         **({"annotations": annotations} if annotations else {})},
            "data": {"password": password}}


def test_a_secret_shows_nothing_but_its_names_not_even_last_applied() -> None:
    from fleet.live.diff import LAST_APPLIED, _unified

    live = _secret("b2xkLXB3", {LAST_APPLIED: json.dumps(_secret("TEAKED-OLD-PASSWORD")), "note": "SECRET-NOTE"})
    desired = _secret("bmV3LXB3", {"note": "SECRET-NOTE-2"})
    text = _unified("v1/Secret/app/db", live, desired)
    for leaked in ("b2xkLXB3", "bmV3LXB3", "TEAKED-OLD-PASSWORD", "SECRET-NOTE"):
        assert leaked not in text
    assert "*** (before)" in text and "*** (after)" in text
    assert "name: db" in text and "app: db" in text and "password:" in text and LAST_APPLIED in text
    pruned = _unified("v1/Secret/app/db", live, None)
    assert "TEAKED" not in pruned and "b2xkLXB3" not in pruned


def test_a_sops_encrypted_configmap_shows_none_of_its_encrypted_values() -> None:
    from fleet.live.diff import LAST_APPLIED, _unified

    def cm(token: str, extra: dict[str, str] | None = None) -> dict[str, Any]:
        return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "app",
                                                                      **({"annotations": extra} if extra else {})},
                "data": {"token": token, "mode": "plain-value"}}

    live = cm("OLD-TOKEN-VALUE", {LAST_APPLIED: json.dumps(cm("OLD-TOKEN-VALUE"))})
    desired = cm("NEW-TOKEN-VALUE")
    text = _unified("v1/ConfigMap/app/c", live, desired, frozenset({("data", "token")}))
    assert "OLD-TOKEN-VALUE" not in text and "NEW-TOKEN-VALUE" not in text
    assert "plain-value" in text  # what the repo keeps in clear is shown
    created = _unified("v1/ConfigMap/app/c", None, desired, frozenset({("data", "token")}))
    assert "NEW-TOKEN-VALUE" not in created and "token: '***" in created


def test_encrypted_paths_are_every_enc_value_whatever_the_kind() -> None:
    from fleet.sops import encrypt_object, encrypted_paths, generate_key

    key = generate_key()
    obj = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"},
           "data": {"token": "t", "list": ["a", "b"]}}
    enc = encrypt_object(obj, [key.recipient], encrypted_regex="^data$")
    assert encrypted_paths(enc) == {("data", "token"), ("data", "list", 0), ("data", "list", 1)}


# ---- nothing executable or readable from the repo ------------------------------------------------

EXEC_KUBECONFIG = """apiVersion: v1
kind: Config
clusters: [{{name: c, cluster: {{server: "http://127.0.0.1:9"}}}}]
users: [{{name: u, user: {user}}}]
contexts: [{{name: c, context: {{cluster: c, user: u}}}}]
current-context: c
"""


def _exec_user(marker: Path) -> str:
    return ('{exec: {apiVersion: client.authentication.k8s.io/v1beta1, command: sh, '
            f'args: ["-c", "touch {marker}; echo {{}}"]}}}}')


def _with_access(repo: Path, kubeconfig: str) -> None:
    commit_file(repo, "clusters/eu-1.yaml", f"name: eu-1\nenvironment: prod\naccess:\n  kubeconfig: {kubeconfig}\n")


@pytest.mark.parametrize("how", ["relative", "dot-relative", "absolute-into-repo", "symlink-into-repo"])
def test_a_kubeconfig_the_repo_carries_never_runs(
    repo: Path, capsys: Capsys, tmp_path: Path, fleet_home: Path, how: str
) -> None:
    marker = tmp_path / "exec-ran"
    commit_file(repo, "ops/kc.yaml", EXEC_KUBECONFIG.format(user=_exec_user(marker)))
    link = tmp_path / "kc-link.yaml"
    link.symlink_to(repo / "ops" / "kc.yaml")
    named = {"relative": "ops/kc.yaml", "dot-relative": "./ops/kc.yaml",
             "absolute-into-repo": str(repo / "ops" / "kc.yaml"), "symlink-into-repo": str(link)}[how]
    _with_access(repo, named)
    code, out, err = run_cli(capsys, "status", "-o", "json")
    assert code == 2, err
    assert "access.kubeconfig" in err and out == ""
    assert not marker.exists()


def test_a_kubeconfig_of_the_user_outside_the_repo_is_used(
    repo: Path, capsys: Capsys, tmp_path: Path, fleet_home: Path
) -> None:
    kc = tmp_path / "mine.yaml"
    kc.write_text(EXEC_KUBECONFIG.format(user="{token: abc}"))
    kc.chmod(0o600)
    _with_access(repo, str(kc))
    code, out, err = run_cli(capsys, "status", "-o", "json")
    assert code == 0, err
    row = json.loads(out)["items"][0]
    assert row["reachable"] == "no"  # it was used: the server it names does not answer


@pytest.mark.parametrize("case", ["proc-environ", "other-owner", "group-writable", "kubeconfig-group-writable"])
def test_a_kubeconfig_or_token_file_that_is_not_the_users_own_is_refused(
    repo: Path, capsys: Capsys, tmp_path: Path, fleet_home: Path, case: str
) -> None:
    token = tmp_path / "token"
    token.write_text("HOST-SECRET-TOKEN\n")
    token.chmod(0o600)
    if case == "other-owner":
        if os.getuid() != 0:
            pytest.skip("needs root to give a file to another user")
        os.chown(token, 12345, 12345)
    if case == "group-writable":
        token.chmod(0o620)
    path = "/proc/self/environ" if case == "proc-environ" else str(token)
    kc = tmp_path / "mine.yaml"
    kc.write_text(EXEC_KUBECONFIG.format(user=f"{{tokenFile: {path}}}"))
    kc.chmod(0o620 if case == "kubeconfig-group-writable" else 0o600)
    _with_access(repo, str(kc))
    code, out, err = run_cli(capsys, "status", "-o", "json")
    assert code == 0, err
    row = json.loads(out)["items"][0]
    assert row["reachable"] == "no access"
    assert "refused" in row["message"] or "another user" in row["message"]
    assert "HOST-SECRET" not in out + err
