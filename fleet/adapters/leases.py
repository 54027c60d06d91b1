"""Run leases and run journals the whole team sees: in the shared Pulumi backend's bucket, next to the stacks.

    <prefix>fleet/runs/<cluster>/lease.json          who runs what on the cluster now (:class:`Lease`)
    <prefix>fleet/runs/<cluster>/journal.json        that run's journal, written on every step change
    <prefix>fleet/runs/<cluster>/done/<run-id>.json  the journals of the runs that ended

A lease is taken and renewed by S3 conditional writes (:meth:`fleet.adapters.s3.Bucket.put`), a
compare-and-swap on the object's ETag:

    take      ``If-None-Match: *`` when there is no lease; ``If-Match: ETAG`` of a released or expired one
    renew     ``If-Match: ETAG`` of our own last write, every :data:`HEARTBEAT_S` seconds (:class:`Heartbeat`);
              a 412 means another run took the lease over (we were judged gone): the lease is lost
    release   ``If-Match: ETAG`` of our last write, the lease marked released (never someone else's)

Two runs that try at once: one PUT wins, the other gets 412 and is refused, naming the winner.

A lease is **expired** when its object was not rewritten for its TTL (:data:`TTL_S`, written in the lease by
its holder) by the *server's* clock: the age is the server's ``Date`` minus the object's ``Last-Modified``
(:attr:`fleet.adapters.s3.Stored.age_s`), so two operators' clocks never have to agree. A lease held by a
process of this very host that is gone (pid and start time, :func:`fleet.adapters.proc.alive`) is dead at
once: nobody has to wait out the TTL on the machine where the holder died.
"""

from __future__ import annotations

import contextlib
import getpass
import hashlib
import json
import os
import re
import threading
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from fleet.adapters import proc
from fleet.adapters.s3 import Bucket, display_url
from fleet.errors import FleetError, InputError

__all__ = ["HEARTBEAT_S", "ROLLOUTS", "TTL_S", "Heartbeat", "Lease", "LeaseLost", "LeaseStore", "RunBusy", "Seen",
           "Taken", "holder_name"]

HEARTBEAT_S = 10.0  # a live run rewrites its lease this often
TTL_S = 45.0  # a lease not rewritten for this long (server's clock) is expired: its holder is gone

ROOT = "fleet/runs/"
_NAME = re.compile(r"^[a-z0-9]([a-z0-9.-]{0,61}[a-z0-9])?$")
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


class RunBusy(InputError):
    """Another operator's run holds the cluster's lease, and it is live."""


class LeaseLost(FleetError):
    """Another run took this run's lease over (this one was judged gone): it must stop writing."""


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def holder_name() -> str:
    """``user@host`` of this process."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = str(os.getuid())
    return f"{user}@{os.uname().nodename}"


MAX_TTL_S = 600.0  # the longest TTL a lease read from the bucket is given, whatever it says


def _ttl(value: object) -> float:
    """A lease's TTL as its holder wrote it, kept within (0, MAX_TTL_S]: a lease that says it lives for ever
    (or a NaN, or nothing sensible) would hold a cluster against every teammate; it gets the default."""
    ttl = float(value)  # type: ignore[arg-type]  # ValueError/TypeError: not a lease
    return ttl if 0 < ttl <= MAX_TTL_S else TTL_S


class _Rollouts(str):
    """The name of the team's rollout lease and journal: a folder no cluster name (a plain ``str``) can reach."""


ROLLOUTS = _Rollouts("(rollout)")  # one rollout at a time across the team, as in one fleet home
ROLLOUTS_DIR = "_rollouts"  # not a DNS label: no cluster's folder


def cluster_dir(cluster: str) -> str:
    """The folder of ``cluster``'s runs in the bucket; a name that is not a plain cluster name (it comes from
    the command line before the registry checks it) is hashed, so it never names another folder (the team's
    rollout's folder is reached by :data:`ROLLOUTS` only, never by a string)."""
    if isinstance(cluster, _Rollouts):
        return f"{ROOT}{ROLLOUTS_DIR}/"
    if not _NAME.match(cluster):
        cluster = "x-" + hashlib.sha256(cluster.encode()).hexdigest()[:32]
    return f"{ROOT}{cluster}/"


@dataclass(frozen=True)
class Lease:
    """Who runs what on a cluster, as written in ``lease.json``."""

    cluster: str
    kind: str  # "bootstrap" | "rollout"
    command: str
    holder: str  # user@host
    host: str
    pid: int
    pid_start: str  # the process's start time (clock ticks since boot): a pid reused later is not the holder
    run_id: str
    started: str
    heartbeat: str  # the holder's clock, for people; expiry is judged by the server's clock
    ttl_s: float
    released: bool = False

    def to_bytes(self) -> bytes:
        return (json.dumps(asdict(self), indent=2) + "\n").encode()

    @classmethod
    def parse(cls, raw: bytes) -> Lease | None:
        """The lease in ``raw``; None for anything else (a lease object is untrusted: anyone with the bucket's
        credentials may write it)."""
        def text(value: object, limit: int) -> str:  # one line, whatever was written: it is printed in refusals
            return _CONTROL.sub("?", str(value)[:limit])

        try:
            d = json.loads(raw)
            return cls(
                cluster=text(d["cluster"], 253), kind=text(d.get("kind", ""), 32), command=text(d["command"], 200),
                holder=text(d["holder"], 200), host=text(d.get("host", ""), 200), pid=int(d.get("pid", 0)),
                pid_start=text(d.get("pid_start", ""), 32), run_id=text(d.get("run_id", ""), 64),
                started=text(d.get("started", ""), 40), heartbeat=text(d.get("heartbeat", ""), 40),
                ttl_s=_ttl(d.get("ttl_s", TTL_S)), released=bool(d.get("released", False)),
            )
        except (ValueError, KeyError, TypeError):
            return None


@dataclass(frozen=True)
class Seen:
    """A lease as read: its ETag, its age by the server's clock, and whether its holder is live."""

    lease: Lease
    etag: str
    age_s: float
    live: bool

    def describe(self) -> str:
        lz = self.lease
        return (f"{lz.holder} ({lz.command}, run {lz.run_id or '?'}, pid {lz.pid} on {lz.host}) since {lz.started}, "
                f"last heartbeat {self.age_s:.0f} s ago")


@dataclass
class Taken:
    """A lease this process holds: what it wrote last and that write's ETag; ``previous``: the expired lease it
    took over, if any."""

    lease: Lease
    etag: str
    previous: Seen | None = None


def _live(lease: Lease, age_s: float) -> bool:
    if lease.released or age_s > lease.ttl_s:
        return False
    if lease.host == os.uname().nodename and lease.pid > 0:  # this host can tell at once
        return proc.alive(lease.pid, lease.pid_start)
    return True


class LeaseStore:
    """The leases and journals of the runs of one shared backend's bucket."""

    def __init__(self, bucket: Bucket, *, ttl_s: float = TTL_S, heartbeat_s: float = HEARTBEAT_S) -> None:
        self.bucket = bucket
        self.ttl_s = ttl_s
        self.heartbeat_s = heartbeat_s

    @property
    def where(self) -> str:
        return display_url(self.bucket.loc.url)

    # -- leases -------------------------------------------------------------------------------------

    def seen(self, cluster: str) -> Seen | None:
        """The cluster's lease as it is now (None: there is none, or it does not parse)."""
        stored = self.bucket.read(cluster_dir(cluster) + "lease.json")
        if stored is None:
            return None
        lease = Lease.parse(stored.body)
        if lease is None:
            return None
        return Seen(lease, stored.etag, stored.age_s, _live(lease, stored.age_s))

    def take(self, cluster: str, kind: str, command: str, run_id: str = "") -> Taken:
        """Take the cluster's lease. :class:`RunBusy` at once when a live run holds it; an expired one is taken
        over (``Taken.previous`` says whose)."""
        key = cluster_dir(cluster) + "lease.json"
        now = _now()
        mine = Lease(cluster=cluster, kind=kind, command=command, holder=holder_name(), host=os.uname().nodename,
                     pid=os.getpid(), pid_start=proc.start_time(os.getpid()), run_id=run_id, started=now,
                     heartbeat=now, ttl_s=self.ttl_s)
        stored = self.bucket.read(key)
        previous: Seen | None = None
        if stored is None:
            etag = self.bucket.put(key, mine.to_bytes(), if_none_match=True)
        else:
            lease = Lease.parse(stored.body)
            if lease is not None:
                previous = Seen(lease, stored.etag, stored.age_s, _live(lease, stored.age_s))
                if previous.live:
                    raise self._busy(cluster, previous)
            etag = self.bucket.put(key, mine.to_bytes(), if_match=stored.etag)
        if etag is None:  # another run wrote it between our read and our write: it won
            winner = self.seen(cluster)
            if winner is not None:
                raise self._busy(cluster, winner)
            raise RunBusy(f'cluster "{cluster}": another run took its lease in {self.where} at the same time',
                          hint="run `fleet runs` to see it")
        taken_over = previous if previous is not None and not previous.lease.released else None
        return Taken(mine, etag, taken_over)

    def _busy(self, cluster: str, seen: Seen) -> RunBusy:
        lz = seen.lease
        return RunBusy(
            f'cluster "{cluster}" is being changed by {lz.holder} on {lz.host} ({lz.command}, run {lz.run_id or "?"}) '
            f"since {lz.started}, last heartbeat {seen.age_s:.0f} s ago",
            hint=f"wait for it to finish (`fleet runs`); if its holder is gone, its lease expires "
                 f"{max(lz.ttl_s - seen.age_s, 0):.0f} s after its last heartbeat and the next run takes it over",
        )

    def renew(self, taken: Taken, *, run_id: str | None = None) -> bool:
        """Rewrite our lease (a heartbeat, and the run id once it is known); False when it was lost (another
        run took it over meanwhile)."""
        lease = replace(taken.lease, heartbeat=_now(), run_id=taken.lease.run_id if run_id is None else run_id)
        etag = self.bucket.put(cluster_dir(lease.cluster) + "lease.json", lease.to_bytes(), if_match=taken.etag)
        if etag is None:
            return False
        taken.lease, taken.etag = lease, etag
        return True

    def release(self, taken: Taken) -> None:
        """Mark our lease released (only if it is still ours); the next run takes it at once."""
        lease = replace(taken.lease, heartbeat=_now(), released=True)
        if self.bucket.put(cluster_dir(lease.cluster) + "lease.json", lease.to_bytes(), if_match=taken.etag):
            taken.lease = lease

    def leases(self) -> list[Seen]:
        """Every cluster's lease, live or not, by cluster."""
        out = []
        for key in self.bucket.keys(ROOT):
            parts = key[len(ROOT):].split("/")
            if len(parts) == 2 and parts[1] == "lease.json":
                stored = self.bucket.read(key)
                lease = Lease.parse(stored.body) if stored is not None else None
                if stored is not None and lease is not None:
                    out.append(Seen(lease, stored.etag, stored.age_s, _live(lease, stored.age_s)))
        return sorted(out, key=lambda s: s.lease.cluster)

    # -- journals -----------------------------------------------------------------------------------

    def save_journal(self, cluster: str, data: dict[str, Any]) -> None:
        self.bucket.put(cluster_dir(cluster) + "journal.json", (json.dumps(data, indent=2) + "\n").encode())

    def load_journal(self, cluster: str) -> dict[str, Any] | None:
        """The cluster's journal in the bucket; None when there is none or it does not parse."""
        raw = self.bucket.get(cluster_dir(cluster) + "journal.json")
        return _json_object(raw)

    def archive_journal(self, cluster: str, run_id: str, data: dict[str, Any], *, drop_current: bool = False) -> None:
        """Keep a journal of a run that ended under ``done/``; ``drop_current``: the current journal goes (the
        team's rollout: a journal there is one to resume)."""
        safe = re.sub(r"[^A-Za-z0-9_.-]", "_", run_id)[:64]
        self.bucket.put(f"{cluster_dir(cluster)}done/{safe}.json", (json.dumps(data, indent=2) + "\n").encode())
        if drop_current:
            self.bucket.delete(cluster_dir(cluster) + "journal.json")

    def journals(self, *, finished: bool) -> Iterator[dict[str, Any]]:
        """Every cluster's current journal (``finished=False``) or every journal of a run that ended."""
        for key in self.bucket.keys(ROOT):
            parts = key[len(ROOT):].split("/")
            if (finished and len(parts) == 3 and parts[1] == "done") or (
                    not finished and len(parts) == 2 and parts[1] == "journal.json"):
                data = _json_object(self.bucket.get(key))
                if data is not None:
                    yield data


def _json_object(raw: bytes | None) -> dict[str, Any] | None:
    if raw is None:
        return None
    try:
        d = json.loads(raw)
    except ValueError:
        return None
    return d if isinstance(d, dict) else None


@dataclass
class Heartbeat:
    """A thread that renews a taken lease every ``store.heartbeat_s`` while the run lives. A failed renewal
    (the server down a moment) is tried again at the next beat; a lost lease (another run took it over) sets
    :attr:`lost` and stops the beat."""

    store: LeaseStore
    taken: Taken
    lost: threading.Event = field(default_factory=threading.Event)
    _stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=f"lease-{self.taken.lease.cluster}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.store.heartbeat_s):
            self.beat()
            if self.lost.is_set():
                return

    def beat(self, *, run_id: str | None = None) -> bool:
        """Renew now (and record ``run_id``); False when the lease is lost."""
        with self._lock:
            if self.lost.is_set():
                return False
            with contextlib.suppress(FleetError):  # unreachable a moment: the next beat tries again
                if not self.store.renew(self.taken, run_id=run_id):
                    self.lost.set()
            return not self.lost.is_set()

    def stop(self) -> None:
        """Stop beating and release the lease (if it is still ours)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        with self._lock:
            if not self.lost.is_set():
                with contextlib.suppress(FleetError):
                    self.store.release(self.taken)
