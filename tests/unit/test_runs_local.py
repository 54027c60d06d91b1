"""``fleet runs`` on the file backend: this home's journals, a run in progress live while its lock is held and
expired once its holder is gone (a killed run, resumed by running again), ended runs newest first."""

from __future__ import annotations

import fcntl
import json
from pathlib import Path

from typer.testing import CliRunner

from fleet.adapters.pulumi_auto import resolve_settings
from fleet.cli.app import app
from fleet.runs import list_runs
from fleet.stepkit.journal import locked_journal


def journal(cluster: str, run_id: str, state: str, started: str, ended: str | None = None) -> dict[str, object]:
    return {"cluster": cluster, "run_id": run_id, "revision": "a" * 40, "sync_mode": "operator", "started": started,
            "ended": ended, "state": state, "resumed": 0, "steps": []}


def test_this_homes_runs_live_expired_and_ended(fleet_home: Path) -> None:
    root = fleet_home / "bootstrap"
    for cluster, run_id in (("eu-1", "run-live"), ("us-1", "run-dead")):
        (root / cluster / "runs").mkdir(parents=True)
        (root / cluster / "journal.json").write_text(json.dumps(journal(cluster, run_id, "running", "2026-01-02")))
    for i, (state, ended) in enumerate((("recovered", "2026-01-01T10:00"), ("failed", "2026-01-01T12:00"))):
        (root / "eu-1" / "runs" / f"old-{i}.json").write_text(
            json.dumps(journal("eu-1", f"old-{i}", state, "2026-01-01", ended)))
    (root / "us-1" / "runs" / "junk.json").write_text("not json")
    engine = resolve_settings({}, fleet_home)
    with locked_journal("eu-1"):  # eu-1's run holds its lock: live; us-1's holder is gone
        runs = list_runs(engine)
        lease = {r.cluster: (r.run_id, r.lease, r.state) for r in runs.in_progress}
        assert lease == {"eu-1": ("run-live", "live", "running"), "us-1": ("run-dead", "expired", "running")}
        # the lock is only looked at: a second run is still refused while this one holds it
        with (root / "eu-1" / "lock").open("rb") as f:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                raise AssertionError("fleet runs took the journal's lock")
            except BlockingIOError:
                pass
    assert [(r.run_id, r.state) for r in runs.finished] == [("old-1", "failed"), ("old-0", "recovered")]
    assert [r.run_id for r in list_runs(engine, limit=1).finished] == ["old-1"]

    done = CliRunner().invoke(app, ["runs", "-o", "json"])
    assert done.exit_code == 0, done.output
    data = json.loads(done.stdout)
    assert {r["cluster"]: r["lease"] for r in data["in_progress"]} == {"eu-1": "expired", "us-1": "expired"}
    assert set(data["in_progress"][0]) == {"cluster", "kind", "run_id", "state", "holder", "command", "started",
                                           "last_heartbeat", "heartbeat_age_s", "lease", "ended"}


def test_an_empty_home_lists_nothing_and_writes_nothing(fleet_home: Path) -> None:
    runs = list_runs(resolve_settings({}, fleet_home))
    assert runs.in_progress == [] and runs.finished == []
    assert list(fleet_home.iterdir()) == []
