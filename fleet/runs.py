"""``fleet runs``: the DR runs in progress and the last ones that ended, across the team.

On a shared ``s3://`` backend they are read from its bucket (:mod:`fleet.adapters.leases`: each cluster's lease
and journal, and the journals of the runs that ended), so every operator sees every operator's runs, and a run
whose holder is gone shows as ``expired`` (the next run of that cluster takes it over). On the file backend
they are this fleet home's journals (``$FLEET_HOME/bootstrap/<cluster>/``), a run live while its lock is held.
Reads only.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fleet.adapters.leases import ROLLOUTS, LeaseStore, Seen, holder_name
from fleet.adapters.pulumi_auto.settings import EngineSettings
from fleet.adapters.s3 import Bucket, display_url, parse_url
from fleet.paths import fleet_home, flock_held

__all__ = ["RunRow", "Runs", "list_runs"]


@dataclass(frozen=True)
class RunRow:
    cluster: str
    kind: str  # bootstrap | rollout
    run_id: str
    state: str  # the journal's: running | recovered | failed ("" when none was written yet)
    holder: str  # user@host
    command: str
    started: str
    last_heartbeat: str  # the holder's clock ("" for a local run)
    heartbeat_age_s: float | None  # by the server's clock (None for a local run)
    lease: str  # live | expired (in progress), or "" (ended)
    ended: str | None = None


@dataclass(frozen=True)
class Runs:
    where: str  # the backend's bucket, or this fleet home
    in_progress: list[RunRow]
    finished: list[RunRow]


def list_runs(engine: EngineSettings, *, limit: int = 10) -> Runs:
    """The runs in progress and the last ``limit`` that ended (newest first)."""
    loc = parse_url(engine.backend_url)
    if loc is not None:
        return _team(LeaseStore(Bucket(loc, attempts=engine.backend_attempts)), display_url(engine.backend_url),
                     limit)
    return _local(fleet_home(), limit)


def _team(store: LeaseStore, where: str, limit: int) -> Runs:
    current = {_cluster(d): d for d in store.journals(finished=False)}
    running: list[RunRow] = []
    for seen in store.leases():
        if seen.lease.released:
            continue
        running.append(_lease_row(seen, current.get(seen.lease.cluster)))
    done = [_journal_row(d, str(d.get("holder", ""))) for d in store.journals(finished=True)]
    return Runs(where, running, _newest(done, limit))


def _lease_row(seen: Seen, journal: dict[str, Any] | None) -> RunRow:
    lz = seen.lease
    same = journal is not None and (not lz.run_id or _run_id(journal) == lz.run_id)
    return RunRow(
        cluster=lz.cluster, kind=lz.kind, run_id=lz.run_id or (_run_id(journal) if same and journal else ""),
        state=str(journal.get("state", "")) if same and journal else "", holder=lz.holder, command=lz.command,
        started=lz.started, last_heartbeat=lz.heartbeat, heartbeat_age_s=round(seen.age_s, 1),
        lease="live" if seen.live else "expired",
    )


def _rollout(d: dict[str, Any]) -> bool:
    return "waves" in d and "id" in d  # the team's rollout's journal (rollout.journal), not a DR run's


def _cluster(d: dict[str, Any]) -> str:
    return str(ROLLOUTS) if _rollout(d) else str(d.get("cluster"))


def _run_id(d: dict[str, Any]) -> str:
    return str(d.get("id", "")) if _rollout(d) else str(d.get("run_id", ""))


def _journal_row(d: dict[str, Any], holder: str) -> RunRow:
    selector = str(d.get("selector", ""))
    cluster, kind, command = ((str(ROLLOUTS), "rollout", "fleet rollout" + (f" -l {selector}" if selector else ""))
                              if _rollout(d) else
                              (str(d.get("cluster", "")), "bootstrap", f"fleet bootstrap {d.get('cluster', '')}"))
    return RunRow(cluster=cluster, kind=kind, run_id=_run_id(d),
                  state=str(d.get("state", "")), holder=holder, command=command, started=str(d.get("started", "")),
                  last_heartbeat="", heartbeat_age_s=None, lease="",
                  ended=d.get("ended") if isinstance(d.get("ended"), str) else None)


def _newest(rows: list[RunRow], limit: int) -> list[RunRow]:
    return sorted(rows, key=lambda r: r.ended or r.started, reverse=True)[:limit]


def _read(path: Path) -> dict[str, Any] | None:
    try:
        d = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return d if isinstance(d, dict) else None


def _local(home: Path, limit: int) -> Runs:
    running: list[RunRow] = []
    done: list[RunRow] = []
    me = holder_name()
    root = home / "bootstrap"
    for d in sorted(p for p in root.glob("*") if p.is_dir()) if root.is_dir() else ():
        j = _read(d / "journal.json")
        if j is not None and j.get("state") == "running":
            row = _journal_row(j, me)
            running.append(RunRow(**{**vars(row), "lease": "live" if flock_held(d / "lock") else "expired"}))
        for f in (d / "runs").glob("*.json"):
            r = _read(f)
            if r is not None and r.get("state") != "running":
                done.append(_journal_row(r, me))
    return Runs(f"{home} (this fleet home: the file backend)", running, _newest(done, limit))
