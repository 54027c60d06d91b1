"""A run the whole team sees: on a shared ``s3://`` backend, a DR run (and each cluster of a rollout) holds the
cluster's lease in the backend's bucket and keeps its journal there (:mod:`fleet.adapters.leases`), in addition
to this machine's lock (:mod:`fleet.locks`). The file backend keeps the local journal and lock only.

    with team.hold(cluster, "bootstrap", "fleet bootstrap eu-1", reporter) as run:
        run.journal()          the journal in the bucket (a run to resume, whoever started it)
        run.save(data)         written on every step change; LeaseLost once another run took the lease over

Taking over an expired lease says so (``taking over run RUNID of HOLDER, last heartbeat N s ago``) and clears
the Pulumi locks of the cluster's stack that the dead holder's host left; a lock whose holder's lease is live
is never touched, since a live lease is never taken over.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import PurePath
from typing import Any

from fleet.adapters.leases import ROLLOUTS, Heartbeat, LeaseLost, LeaseStore, Taken
from fleet.adapters.pulumi_auto.settings import EngineSettings
from fleet.adapters.s3 import Bucket, parse_url
from fleet.output import Reporter

__all__ = ["TeamRun", "TeamRuns", "team_runs"]

_held: dict[str, TeamRun] = {}  # cluster -> the run this process holds (a rollout's bring-up holds it once)
_guard = threading.Lock()


@dataclass
class TeamRun:
    """A lease this process holds, and the cluster's journal beside it."""

    store: LeaseStore
    taken: Taken
    heartbeat: Heartbeat
    cluster: str  # as held: a cluster's name, or leases.ROLLOUTS (the team's rollout)

    def journal(self) -> dict[str, Any] | None:
        return self.store.load_journal(self.cluster)

    def save(self, data: dict[str, Any]) -> None:
        """Write the journal to the bucket (and the run id into the lease when it is new)."""
        if self.heartbeat.lost.is_set():
            raise LeaseLost(f'the lease of cluster "{self.cluster}" was taken over by another run: stopping',
                            hint="`fleet runs` shows who holds it now")
        run_id = str(data.get("run_id") or data.get("id") or "")  # a DR journal's run id; a rollout's id
        if run_id and run_id != self.taken.lease.run_id and not self.heartbeat.beat(run_id=run_id):
            raise LeaseLost(f'the lease of cluster "{self.cluster}" was taken over by another run: stopping')
        self.store.save_journal(self.cluster, data)

    def archive(self, run_id: str, data: dict[str, Any]) -> None:
        self.store.archive_journal(self.cluster, run_id, {**data, "holder": self.taken.lease.holder},
                                   drop_current=self.cluster is ROLLOUTS)


class TeamRuns:
    """The runs of a shared backend. ``clear_locks(cluster, host)``: remove the Pulumi locks of the cluster's
    stack written from ``host`` (a dead holder's), returning them."""

    def __init__(self, store: LeaseStore,
                 clear_locks: Callable[[str, str], list[PurePath]] | None = None) -> None:
        self.store = store
        self.clear_locks = clear_locks

    def journal(self, cluster: str) -> dict[str, Any] | None:
        """The cluster's journal in the bucket, read only (a dry run's: which run it would resume)."""
        data = self.store.load_journal(cluster)
        return data if data is not None and data.get("cluster") == cluster and "steps" in data else None

    @contextmanager
    def hold(self, cluster: str, kind: str, command: str, reporter: Reporter) -> Iterator[TeamRun]:
        """Hold ``cluster``'s lease while the run lives (re-entrant in one process). :class:`RunBusy` (exit 2)
        at once when another live run holds it; an expired one is taken over, and said."""
        with _guard:
            mine = _held.get(cluster)
        if mine is not None:
            yield mine
            return
        taken = self.store.take(cluster, kind, command)
        prev = taken.previous
        if prev is not None:
            reporter.warn(f"taking over run {prev.lease.run_id or '?'} of {prev.lease.holder}, last heartbeat "
                          f"{prev.age_s:.0f} s ago ({prev.lease.command})")
            if self.clear_locks is not None and cluster is not ROLLOUTS:  # the rollout's lease guards no stack
                for lock in self.clear_locks(cluster, prev.lease.host):
                    reporter.warn(f'cleared the Pulumi lock of stack "{cluster}" left by that run ({lock.name}): '
                                  f"its lease expired")
        beat = Heartbeat(self.store, taken)
        beat.start()
        run = TeamRun(self.store, taken, beat, cluster)
        with _guard:
            _held[cluster] = run
        try:
            yield run
        finally:
            with _guard:
                _held.pop(cluster, None)
            beat.stop()


def team_runs(engine: EngineSettings) -> TeamRuns | None:
    """The team's runs when the engine's backend is ``s3://`` (its bucket); None for any other backend, whose
    runs stay local (the file backend: nobody else reaches its stacks)."""
    loc = parse_url(engine.backend_url)
    if loc is None:
        return None

    def clear_locks(cluster: str, host: str) -> list[PurePath]:
        from fleet.adapters.pulumi_auto import Engine

        return Engine(engine).unlock(cluster, of_host=host)

    return TeamRuns(LeaseStore(Bucket(loc, attempts=engine.backend_attempts)), clear_locks)
