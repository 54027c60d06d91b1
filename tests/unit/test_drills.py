"""Recovery objectives (registry), drill evidence (git notes, push/pull), the drill column, metrics, and
the scratch identity a drill rebuilds under: everything of `fleet drill` that needs no cluster."""

from __future__ import annotations

import json
import subprocess
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from fleet.drills import DRILLS_REF, DrillRecord, drill_records, drill_state, objective_for, write_drill_record
from fleet.errors import ConfigError, InputError
from fleet.good import record_good
from fleet.registry.load import load_registry
from fleet.registry.model import RecoveryObjective, parse_duration
from fleet.registry.scratch import scratch_identity, scratch_name
from tests.helpers import commit_file, git, new_fleet_repo, run_cli, snapshot

NOW = datetime.now(UTC).replace(microsecond=0)  # a fixed "now" for drill_state, which takes the clock as an argument


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return new_fleet_repo(tmp_path, clusters={"eu-1": "prod", "us-1": "staging"})


def _record(cluster: str = "eu-1", result: str = "passed", *, ago: timedelta = timedelta(hours=2),
            revision: str = "HEAD", recovery: float = 30.0, rto: int | None = 900, repo: Path | None = None,
            now: datetime | None = None) -> DrillRecord:
    """A record ``ago`` before ``now`` (default: the clock at this call, as the CLI reads it when it runs next:
    a module-level "now" ages by however long the suite has run before this test, minutes under load)."""
    now = now if now is not None else datetime.now(UTC).replace(microsecond=0)
    rev = git(repo, "rev-parse", revision).strip() if repo else "0" * 40
    return DrillRecord(cluster=cluster, scratch=f"{cluster}-drill", run_id="r1", revision=rev, last_good=rev,
                       started_at=now - ago, by="Fleet Tester <tester@fleet.test>", result=result,  # type: ignore[arg-type]
                       recovery_s=recovery, rto_s=rto, phases={"provision": 10.0, "operator": 5.0, "sync": 8.0,
                                                               "gates": 7.0},
                       report_sha256="ab" * 32)


# ---- objectives -------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "seconds"), [
    ("90s", 90), ("15m", 900), ("1h30m", 5400), ("7d", 604800), ("2w", 1209600), (600, 600), (" 1h ", 3600),
])
def test_durations_parse(text: str | int, seconds: int) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["fast", "", "15", "m", "1.5h", "-5m", "0s", "400d", "15 m", True])
def test_durations_that_do_not_parse_say_what_is_allowed(text: object) -> None:
    with pytest.raises(ValueError, match=r"duration|longer than a year"):
        parse_duration(text)  # type: ignore[arg-type]


def test_an_objective_that_does_not_parse_names_file_line_and_key(repo: Path) -> None:
    path = repo / "clusters" / "eu-1.yaml"
    path.write_text(path.read_text() + "recovery:\n  drill_every: 7d\n  rto: fast\n")
    with pytest.raises(ConfigError) as e:
        load_registry(repo)
    err = e.value
    assert (err.file, err.key) == ("clusters/eu-1.yaml", "recovery.rto")
    assert err.line == len(path.read_text().splitlines())
    assert '"fast" is not a duration' in err.message


def test_a_bad_objective_is_exit_2_one_line_and_nothing_written(repo: Path, fleet_home: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    path = repo / "clusters" / "eu-1.yaml"
    path.write_text(path.read_text() + "recovery: {rto: fast}\n")
    record_good(repo, "eu-1", "HEAD", reason="test")
    before = snapshot(fleet_home, repo / ".git")
    code, out, err = run_cli(capsys, "drill", "eu-1", "--repo", str(repo))
    assert code == 2
    assert "clusters/eu-1.yaml" in err and "recovery.rto" in err and '"fast" is not a duration' in err
    assert "Traceback" not in err and out == ""
    assert snapshot(fleet_home, repo / ".git") == before


def test_fleet_yaml_defaults_environment_and_cluster_objectives_merge(repo: Path) -> None:
    fy = repo / "fleet.yaml"
    fy.write_text(fy.read_text() + "recovery:\n  rto: 30m\n  drill_every: 30d\n"
                  "  environments:\n    prod: {rto: 15m, drill_every: 7d}\n")
    path = repo / "clusters" / "eu-1.yaml"
    path.write_text(path.read_text() + "recovery: {rto: 10m}\n")
    reg = load_registry(repo)
    eu = objective_for(reg.settings, reg.get("eu-1"))
    us = objective_for(reg.settings, reg.get("us-1"))
    assert eu is not None and us is not None
    assert (eu.rto_s, eu.drill_every_s) == (600, 7 * 86400)  # its own rto, prod's drill_every
    assert (us.rto_s, us.drill_every_s) == (1800, 30 * 86400)  # staging: the fleet-wide ones


def test_no_objective_declared_is_none(repo: Path) -> None:
    reg = load_registry(repo)
    assert objective_for(reg.settings, reg.get("eu-1")) is None


def test_an_environment_default_that_does_not_parse_names_fleet_yaml(repo: Path) -> None:
    fy = repo / "fleet.yaml"
    fy.write_text(fy.read_text() + "recovery:\n  environments:\n    prod: {drill_every: weekly}\n")
    with pytest.raises(ConfigError) as e:
        load_registry(repo)
    assert (e.value.file, e.value.key) == ("fleet.yaml", "recovery.environments.prod.drill_every")


# ---- evidence in git notes ------------------------------------------------------------------


def test_drill_records_are_notes_under_their_own_ref_and_append(repo: Path) -> None:
    first = _record(repo=repo, ago=timedelta(days=2))
    second = _record(repo=repo, result="over-rto", ago=timedelta(hours=1), recovery=1000.0)
    other = _record("us-1", repo=repo)
    for r in (first, second, other):
        write_drill_record(repo, r)
    head = git(repo, "rev-parse", "HEAD").strip()
    lines = git(repo, "notes", f"--ref={DRILLS_REF}", "show", head).splitlines()
    assert [json.loads(x)["result"] for x in lines] == ["passed", "over-rto", "passed"]
    assert json.loads(lines[0])["report_sha256"] == "ab" * 32
    assert drill_records(repo, "eu-1") == [first, second]  # oldest first, only that cluster's
    assert second.margin_s == -100.0 and first.margin_s == 870.0
    # the last-good audit notes are another ref, untouched; the working tree too
    assert subprocess.run(["git", "-C", str(repo), "notes", "--ref=refs/notes/fleet", "list"],
                          capture_output=True, text=True).stdout == ""
    assert git(repo, "status", "--porcelain") == ""


def test_lines_fleet_did_not_write_are_ignored(repo: Path) -> None:
    head = git(repo, "rev-parse", "HEAD").strip()
    git(repo, "notes", f"--ref={DRILLS_REF}", "add", "-m", "not json\n{\"result\": \"won\"}", head)
    write_drill_record(repo, _record(repo=repo))
    assert [r.result for r in drill_records(repo)] == ["passed"]


def test_push_and_pull_carry_the_drill_notes_and_merge_both_sides(tmp_path: Path) -> None:
    from fleet.sync import pull, push

    remote = tmp_path / "remote.git"
    subprocess.run(["git", "init", "-q", "--bare", str(remote)], check=True)
    a = new_fleet_repo(tmp_path / "a", clusters={"eu-1": "prod"})
    git(a, "remote", "add", "origin", str(remote))
    push(a)
    b = tmp_path / "b"
    branch = git(a, "branch", "--show-current").strip()
    subprocess.run(["git", "clone", "-q", "-b", branch, str(remote), str(b)], check=True)
    write_drill_record(a, _record(repo=a, ago=timedelta(days=1)))
    push(a)
    assert git(remote, "rev-parse", DRILLS_REF).strip()
    write_drill_record(b, _record(repo=b, result="failed", ago=timedelta(hours=1)))  # b has not pulled yet
    res = pull(b)
    assert res.notes_merged
    assert [r.result for r in drill_records(b, "eu-1")] == ["passed", "failed"]
    push(b)
    pull(a)
    assert [r.result for r in drill_records(a, "eu-1")] == ["passed", "failed"]


# ---- the drill column ------------------------------------------------------------------------


def test_drill_state_says_never_failed_over_stale_or_age() -> None:
    obj = RecoveryObjective(rto="15m", drill_every="7d")
    assert drill_state([], None, NOW).shown == "never" and not drill_state([], None, NOW).bad
    assert drill_state([], obj, NOW).bad  # an objective declared and never proven
    ok = drill_state([_record(now=NOW)], obj, NOW)
    assert (ok.shown, ok.bad) == ("2h ago", False)
    stale = drill_state([_record(ago=timedelta(days=8), now=NOW)], obj, NOW)
    assert (stale.shown, stale.bad) == ("stale", True)
    failed = drill_state([_record(ago=timedelta(days=1), now=NOW), _record(result="failed", now=NOW)], obj, NOW)
    assert (failed.shown, failed.bad) == ("failed", True)
    assert failed.last_pass is not None and failed.last_pass.started_at == NOW - timedelta(days=1)
    over = drill_state([_record(result="over-rto", now=NOW)], obj, NOW)
    assert (over.shown, over.bad) == ("over-rto", True)
    again = drill_state([_record(result="failed", ago=timedelta(days=1), now=NOW), _record(now=NOW)], obj, NOW)
    assert (again.shown, again.bad) == ("2h ago", False)  # a later pass clears a failure


def test_status_shows_the_drill_column_and_check_exits_1(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fy = repo / "fleet.yaml"
    fy.write_text(fy.read_text() + "recovery:\n  environments:\n    prod: {rto: 15m, drill_every: 7d}\n")
    commit_file(repo, "fleet.yaml", fy.read_text(), "objectives")
    code, out, _ = run_cli(capsys, "status", "--repo", str(repo), "--check")
    assert code == 1  # eu-1 (prod) declares an objective and never passed a drill
    assert "DRILL" in out.splitlines()[0]
    write_drill_record(repo, _record(repo=repo, ago=timedelta(minutes=1)))
    code, out, err = run_cli(capsys, "status", "--repo", str(repo), "--check", "-o", "json")
    assert code == 0, err
    assert json.loads(out)["metadata"]["drills"] == {"eu-1": "1m ago", "us-1": "never"}
    write_drill_record(repo, _record(repo=repo, result="over-rto", ago=timedelta(seconds=5)))
    code, out, err = run_cli(capsys, "status", "--repo", str(repo), "--check", "-l", "env=prod")
    assert code == 1 and "eu-1 (over-rto)" in err
    assert "over-rto" in out


def test_drill_history_lists_the_records_newest_first(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_drill_record(repo, _record(repo=repo, ago=timedelta(days=1)))
    write_drill_record(repo, _record(repo=repo, result="failed"))
    code, out, err = run_cli(capsys, "drill", "history", "eu-1", "--repo", str(repo), "-o", "json")
    assert code == 0, err
    items = json.loads(out)["items"]
    assert [i["result"] for i in items] == ["failed", "passed"]
    code, out, _ = run_cli(capsys, "drill", "history", "eu-1", "--repo", str(repo))
    assert code == 0 and out.splitlines()[0].split()[:3] == ["STARTED", "RESULT", "REVISION"]
    code, _, err = run_cli(capsys, "drill", "history", "ghost", "--repo", str(repo))
    assert code == 2 and 'cluster "ghost" not found' in err


def test_a_cluster_without_last_good_is_refused_before_anything_is_created(
        repo: Path, fleet_home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = snapshot(fleet_home, repo / ".git")
    code, out, err = run_cli(capsys, "drill", "eu-1", "--repo", str(repo))
    assert code == 2 and out == ""
    assert err.count("\n") <= 2 and 'cluster "eu-1" has no last good revision' in err
    assert snapshot(fleet_home, repo / ".git") == before
    code, _, err = run_cli(capsys, "drill", "--repo", str(repo))
    assert code == 2 and "name one or more CLUSTERs, or give -l SELECTOR" in err


# ---- metrics -------------------------------------------------------------------------------


def test_metrics_parse_with_the_prometheus_parser(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    fy = repo / "fleet.yaml"
    fy.write_text(fy.read_text() + "recovery:\n  environments:\n    prod: {rto: 15m, drill_every: 7d}\n")
    record_good(repo, "eu-1", "HEAD", reason="test")
    rec = _record(repo=repo, ago=timedelta(minutes=3), recovery=42.5)
    write_drill_record(repo, rec)
    code, out, err = run_cli(capsys, "metrics", "--repo", str(repo))  # the clusters: not reachable (no access)
    assert code == 0, err
    samples = {(s.name, s.labels["cluster"]): s.value
               for fam in text_string_to_metric_families(out) for s in fam.samples}
    assert samples[("fleet_drill_last_pass_timestamp_seconds", "eu-1")] == rec.started_at.timestamp()
    assert samples[("fleet_drill_recovery_seconds", "eu-1")] == 42.5
    assert samples[("fleet_recovery_objective_seconds", "eu-1")] == 900
    assert samples[("fleet_drill_interval_seconds", "eu-1")] == 7 * 86400
    assert samples[("fleet_drill_ok", "eu-1")] == 1
    assert samples[("fleet_drill_ok", "us-1")] == 1  # no objective: not held to drills
    assert 0 <= samples[("fleet_last_good_age_seconds", "eu-1")] < 600
    assert ("fleet_last_good_age_seconds", "us-1") not in samples
    assert samples[("fleet_cluster_reachable", "eu-1")] == 0
    assert ("fleet_drift_objects", "eu-1") not in samples


# ---- the scratch identity -------------------------------------------------------------------


def test_the_scratch_identity_is_a_copy_that_renders_as_the_live_cluster(repo: Path) -> None:
    assert scratch_name("eu-1") == "eu-1-drill"
    with pytest.raises(InputError, match="longer than 63"):
        scratch_name("x" * 60)
    f = repo / "clusters" / "eu-1.yaml"
    commit_file(repo, "clusters/eu-1.yaml", f.read_text() + "access: {context: prod-eu-1}\n", "eu-1: access")
    assert "eu-1-drill" not in load_registry(repo).clusters
    seen_elsewhere: list[bool] = []
    with scratch_identity("eu-1", "eu-1-drill"):
        head = git(repo, "rev-parse", "HEAD").strip()
        for reg in (load_registry(repo), load_registry(repo, head)):
            live, scratch = reg.get("eu-1"), reg.get("eu-1-drill")
            assert scratch.name == "eu-1-drill"
            assert scratch.model_dump(exclude={"name", "vars", "access"}) == live.model_dump(
                exclude={"name", "vars", "access"})
            assert live.access is not None and scratch.access is None  # never the live cluster's context
            assert scratch.vars == {"FLEET_CLUSTER": "eu-1", **live.vars}
            assert reg.select("env=prod") and "eu-1" in reg.clusters  # the live entry stays
        t = threading.Thread(target=lambda: seen_elsewhere.append("eu-1-drill" in load_registry(repo).clusters))
        t.start()
        t.join()
    assert seen_elsewhere == [False]  # another thread (another drill) does not see it
    assert "eu-1-drill" not in load_registry(repo).clusters
    assert git(repo, "status", "--porcelain") == ""


def test_a_second_drill_of_one_cluster_refuses_at_once(repo: Path, fleet_home: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    """The lock a running drill holds (an flock: the kernel drops it when the holder dies, SIGKILL
    included): a second drill of that cluster refuses with one line, having created nothing."""
    from bootstrap.rehearsal import drill_dir
    from fleet.stepkit.journal import exclusive_lock

    record_good(repo, "eu-1", "HEAD", reason="test")
    lock = drill_dir("eu-1") / "lock"
    with exclusive_lock(lock, "held by this test", "-"):
        before = snapshot(fleet_home, repo / ".git")
        code, out, err = run_cli(capsys, "drill", "eu-1", "--repo", str(repo))
        after = snapshot(fleet_home, repo / ".git")
        assert {k: v for k, v in after.items() if k != str(lock)} == {k: v for k, v in before.items() if k != str(lock)}
    assert code == 2 and out == ""
    assert 'another drill of cluster "eu-1" is running' in err and "Traceback" not in err
    assert not (fleet_home / "bootstrap").exists()  # no journal, no scratch: nothing was started
