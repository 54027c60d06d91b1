"""``fleet rollout``: bring up a new region, or roll a revision across the fleet, wave by wave.

    for each wave, in order (wave N+1 starts only when wave N passed its gates and its bake):
        the wave needs an approval (fleet.yaml) and has none -> pause (exit 75) until `fleet rollout approve`
        up to --max-parallel clusters at once:
            it does not exist yet  -> the DR pipeline at REV (provision, operator, sync, gates, record)
            it exists              -> [operator pinned to REV], sync, gates (and its operator reports REV
                                      applied and Ready), record last good
            it failed, --on-failure rollback -> back to its own last good at once (sync, gates, record)
        the wave passed: its bake (fleet.yaml or --bake): its clusters watched until the bake's end, a gate
            that fails fails the cluster
        more failures than the wave's budget (--max-failures N|P%) or the rollout's (--max-failures-total)
            -> stop; later waves are left untouched; with --rollback, the failed clusters (and the whole
            stopping wave) return to the revision that was their last good before the rollout

Journaled (:mod:`rollout.journal`): a rollout killed at any point, SIGKILL included, continues
where it stopped when run again with the same selector and revision; clusters already done at that
revision are skipped, a wave whose clusters all passed is not run again, a bake continues until the end
the journal keeps, and a paused wave starts once approved. The rollout talks to the world only through
:class:`RolloutServices` (:mod:`rollout.services` wires the real ones) and says what it does through a
:class:`RolloutView` (plain lines, or the CLI's live table).
"""

from __future__ import annotations

import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextlib import nullcontext
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from fleet.adapters.leases import ROLLOUTS
from fleet.errors import FleetError, GateFailed, InputError, StepFailed
from fleet.locks import cluster_lock
from fleet.output import Reporter
from fleet.stepkit.journal import Journal, StepRecord, now_iso
from fleet.stepkit.steps import run_step
from fleet.stepkit.team import TeamRun, TeamRuns
from rollout.journal import (
    ClusterRun,
    RolloutJournal,
    WaveRun,
    load_current,
    locked_rollouts,
    rollout_dir,
)
from rollout.model import (
    PlannedCluster,
    PlannedWave,
    RolloutPlan,
    RolloutRequest,
    RolloutResult,
    RolloutServices,
)
from rollout.policy import FailureBudget, WavePolicy, parse_bake, parse_budget, wave_policies
from rollout.progress import RolloutView, Tracking
from rollout.report import build_report, write_report

__all__ = ["EXIT_PAUSED", "order_waves", "run_rollout"]

EXIT_PAUSED = 75  # EX_TEMPFAIL of sysexits.h: paused for an approval; run again once approved

Clock = Callable[[], datetime]


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _iso(t: datetime) -> str:
    return t.astimezone(UTC).isoformat(timespec="microseconds")


@dataclass(frozen=True)
class _Budgets:
    wave: FailureBudget
    total: FailureBudget | None
    bake: int | None  # --bake, seconds


class _StepJournal(Journal):
    """The step runner's view of one cluster's steps; saving it saves the rollout journal."""

    def __init__(self, rollout: RolloutJournal, cluster: str, revision: str, steps: list[StepRecord]) -> None:
        super().__init__(cluster, rollout.id, revision, "", rollout.started, steps)
        self._rollout = rollout

    def save(self) -> None:
        self._rollout.save()


def order_waves(selected: list[tuple[str, int]]) -> dict[int, list[str]]:
    """Clusters grouped by wave, waves ascending, names sorted within a wave."""
    out: dict[int, list[str]] = {}
    for name, wave in sorted(selected, key=lambda t: (t[1], t[0])):
        out.setdefault(wave, []).append(name)
    return out


def _check(req: RolloutRequest) -> _Budgets:
    if req.max_parallel < 1:
        raise InputError(f"--max-parallel must be at least 1 (got {req.max_parallel})")
    wave = parse_budget(req.max_failures, "--max-failures")
    assert wave is not None
    total = parse_budget(req.max_failures_total, "--max-failures-total")
    bake = parse_bake(req.bake)
    if req.on_failure not in ("hold", "rollback"):
        raise InputError(f'--on-failure must be hold or rollback (got "{req.on_failure}")')
    if req.gate_timeout is not None and req.gate_timeout <= 0:
        raise InputError(f"--gate-timeout must be more than 0 seconds (got {req.gate_timeout:g})")
    if req.sync not in ("auto", "operator", "direct"):
        raise InputError(f'--sync must be one of auto, operator, direct (got "{req.sync}")')
    return _Budgets(wave, total, bake)


def run_rollout(req: RolloutRequest, services: RolloutServices, view: RolloutView, *,
                clock: Clock = _utcnow) -> RolloutResult:
    """Run (or resume) a rollout; with ``dry_run``, only say what it would do. ``clock``: the time bakes
    are measured on (tests give their own)."""
    budgets = _check(req)
    r = view.reporter
    revision, subject = services.resolve(req.rev)
    selected = services.select(req.selector, revision)
    if not selected:
        raise InputError(
            f'no cluster matches selector "{req.selector}" at {revision[:12]}' if req.selector
            else f"the registry has no clusters at {revision[:12]}",
            hint="`fleet cluster list -l SELECTOR` shows what a selector matches",
        )
    waves = order_waves(selected)
    settings = services.rollout_settings()
    policies = wave_policies(settings, waves, services.environments(revision), budgets.bake)
    key = (req.selector or "", revision)
    team: TeamRuns | None = getattr(services, "team", None)  # a shared backend: the rollout is the team's
    if req.dry_run:
        existing = _shared(team.store.load_journal(ROLLOUTS) if team is not None else None, None, r) or load_current()
        resumed = existing if existing is not None and existing.key == key else None
        return RolloutResult("planned", _plan(req, budgets, policies, services, revision, subject, waves, resumed),
                             None)
    hold = (team.hold(ROLLOUTS, "rollout", f"fleet rollout{f' -l {req.selector}' if req.selector else ''}", r)
            if team is not None else nullcontext(None))
    with hold as run, locked_rollouts() as path:
        existing = (_shared(run.journal(), path, r) if run is not None else None) or load_current()
        if existing is not None:
            existing.remote = run
        j = _open(existing, path, req, revision, waves, r, services, run)
        view.attach(j)
        plan = _plan(req, budgets, policies, services, revision, subject, waves, j if j.resumed else None,
                     probe=False)
        return _Rollout(j, req, services, view, plan, budgets, policies, settings.approverNotStarter, clock).run()


def _plan(req: RolloutRequest, budgets: _Budgets, policies: dict[int, WavePolicy], services: RolloutServices,
          revision: str, subject: str, waves: dict[int, list[str]], journal: RolloutJournal | None, *,
          probe: bool = True) -> RolloutPlan:
    def one(name: str, wave: int) -> PlannedCluster:
        done = journal is not None and name in journal.clusters and journal.clusters[name].state == "passed"
        if done:
            return PlannedCluster(name, wave, "done", f"passed at {revision[:12]} in an earlier attempt")
        if not probe:
            return PlannedCluster(name, wave, "", "")
        p = services.probe(name)
        return PlannedCluster(name, wave, "update" if p.exists else "bootstrap", p.why)

    planned = tuple(
        PlannedWave(w, tuple(one(n, w) for n in names), policies[w].approval, policies[w].bake_s,
                    budgets.wave.allowed(len(names)), policies[w].why)
        for w, names in waves.items())
    return RolloutPlan(req.selector or "", revision, subject, req.max_parallel, str(budgets.wave), req.rollback,
                       planned, journal.id if journal is not None else None,
                       str(budgets.total) if budgets.total is not None else None, req.on_failure)


def _shared(data: dict[str, Any] | None, path: Path | None, r: Reporter) -> RolloutJournal | None:
    """The team's unfinished rollout from its bucket's journal (None: there is none); one that does not parse
    is not trusted, and said."""
    if data is None:
        return None
    try:
        return RolloutJournal.from_dict(data, path)
    except (KeyError, TypeError, ValueError, AttributeError):
        r.warn("the team's rollout journal in the backend's bucket does not parse: not resumed")
        return None


def _open(existing: RolloutJournal | None, path: Path, req: RolloutRequest, revision: str,
          waves: dict[int, list[str]], r: Reporter, services: RolloutServices,
          remote: TeamRun | None = None) -> RolloutJournal:
    options = {"max_parallel": req.max_parallel, "max_failures": str(parse_budget(req.max_failures, "")),
               "max_failures_total": (str(parse_budget(req.max_failures_total, ""))
                                      if req.max_failures_total is not None else None),
               "on_failure": req.on_failure, "rollback": req.rollback, "bake": parse_bake(req.bake),
               "gate_timeout": req.gate_timeout, "sync": req.sync}
    key = (req.selector or "", revision)
    if existing is not None and existing.key == key:
        existing.path = path
        existing.resumed += 1
        existing.state = "running"
        existing.ended = None
        existing.stopped_at = None
        existing.paused_at = None
        existing.stop_reason = ""
        existing.options = options
        done = [n for n, c in existing.clusters.items() if c.state == "passed"]
        r.step(f"resuming rollout {existing.id}" + (f" (done: {', '.join(done)})" if done else ""))
        existing.save()
        return existing
    if existing is not None:
        dest = existing.archive()
        r.warn(f'set aside the unfinished rollout {existing.id} (selector "{existing.selector}", '
               f"revision {existing.revision[:12]}, {existing.state}): {dest}")
    j = RolloutJournal.new(req.selector or "", revision, req.rev, waves, options)
    j.started_by = services.identity()
    j.path = path
    j.remote = remote
    j.save()
    what = f'selector "{req.selector}"' if req.selector else "every cluster"
    r.step(f"rollout {j.id}: {what} to {revision[:12]}, {len(waves)} waves, {len(j.clusters)} clusters")
    return j


class _Rollout:
    def __init__(self, j: RolloutJournal, req: RolloutRequest, services: RolloutServices, view: RolloutView,
                 plan: RolloutPlan, budgets: _Budgets, policies: dict[int, WavePolicy], separate_approver: bool,
                 clock: Clock) -> None:
        self.j, self.req, self.s, self.view, self.plan = j, req, services, view, plan
        self.budgets, self.separate_approver, self.clock = budgets, separate_approver, clock
        self.r = view.reporter
        self.cancel = threading.Event()
        total = budgets.total.allowed(len(j.clusters)) if budgets.total is not None else None
        self.total_allowed = total
        with j.lock:
            for w in j.waves:  # the policy of this attempt (fleet.yaml as it is now, the options given now)
                p = policies.get(w.wave, WavePolicy(w.wave))
                w.approval, w.bake_s, w.policy = p.approval, p.bake_s, p.why
                w.allowed = budgets.wave.allowed(len(w.clusters))
        j.save()

    def run(self) -> RolloutResult:
        j, r = self.j, self.r
        stopped = paused = False
        for wave in j.waves:
            if wave.state == "passed":
                r.ok(f"wave {wave.wave}: passed in an earlier attempt ({', '.join(wave.clusters)}); not run again")
                continue
            if stopped:
                break
            if wave.state == "baking" and wave.bake_until is not None:  # killed during its bake: continue it
                stopped = not self._bake(wave)
                continue
            if wave.approval and not self._approved(wave):
                self._pause(wave)
                paused = True
                break
            stopped = not self._wave(wave.wave)
        if self.req.rollback and not paused:
            self._rollback(stopped)
        failed = [c.name for c in j.clusters.values() if c.state == "failed"]
        outcome: Literal["succeeded", "degraded", "stopped", "paused"] = (
            "stopped" if stopped else "paused" if paused else ("degraded" if failed else "succeeded"))
        with j.lock:
            j.state = outcome
            j.ended = now_iso()
        j.save()
        report = write_report(build_report(j), rollout_dir(j.id))
        if outcome == "succeeded":
            j.archive()
            r.ok(f"rollout {j.id}: {len(j.clusters)} clusters at {j.revision[:12]} in {report.wall_s:.1f}s")
        elif outcome == "paused":
            w = j.wave(j.paused_at) if j.paused_at is not None else None
            assert w is not None
            r.wait(f"rollout {j.id} paused before wave {w.wave}: it needs an approval ({w.policy})")
            r.step(f"to continue, run: fleet rollout approve {j.id} --wave {w.wave} --reason TEXT; "
                   "then run this rollout again (the same command)")
        elif outcome == "degraded":
            r.warn(f"rollout {j.id}: every wave ran; {len(failed)} failed within the failure budget "
                   f"(--max-failures {self.budgets.wave}): {', '.join(failed)}; run the same command again to "
                   "retry them")
        else:
            later = [w.wave for w in j.waves if j.stopped_at is not None and w.wave > j.stopped_at]
            r.fail(f"rollout {j.id} stopped at wave {j.stopped_at} ({j.stop_reason}): {', '.join(failed)} failed"
                   + (f"; {_plural(len(later), 'wave')} {', '.join(map(str, later))} not started" if later else ""))
        waves = tuple(
            PlannedWave(w.wave, tuple(PlannedCluster(n, w.wave, j.clusters[n].action, j.clusters[n].why)
                                      for n in w.clusters), w.approval, w.bake_s, w.allowed, w.policy)
            for w in j.waves
        )
        return RolloutResult(outcome, replace(self.plan, waves=waves), report, j.id)

    # -- approvals ------------------------------------------------------------------------------
    def _approved(self, wave: WaveRun) -> bool:
        """The wave was approved for this rollout at this revision (an approval of another rollout, or of this
        one's id at another revision, does not count; nor one by the starter when fleet.yaml says so)."""
        j = self.j
        if wave.approved is not None:
            return True
        found = [a for a in self.s.approvals(j.id, j.revision) if a.wave == wave.wave]
        if self.separate_approver:
            found = [a for a in found if a.approved_by != j.started_by]
        if not found:
            return False
        a = found[0]
        with j.lock:
            wave.approved = {"by": a.approved_by, "at": _iso(a.approved_at), "reason": a.reason}
            j.paused_at = None
        j.save()
        self.r.ok(f"wave {wave.wave}: approved by {a.approved_by} at {_iso(a.approved_at)}"
                  + (f": {a.reason}" if a.reason else ""))
        return True

    def _pause(self, wave: WaveRun) -> None:
        with self.j.lock:
            wave.state = "waiting-approval"
            wave.waiting_since = wave.waiting_since or now_iso()
            self.j.paused_at = wave.wave
        self.j.save()

    # -- budgets --------------------------------------------------------------------------------
    def _over_budget(self, wave: WaveRun) -> str:
        """Which budget the failures so far exceed ("" when none)."""
        j = self.j
        failures = sum(1 for c in wave.clusters if j.clusters[c].state == "failed")
        if failures > wave.allowed:
            return (f"{failures} of {len(wave.clusters)} failed, --max-failures {self.budgets.wave} "
                    f"allows {wave.allowed}")
        if self.total_allowed is not None:
            total = sum(1 for c in j.clusters.values() if c.state == "failed")
            if total > self.total_allowed:
                return (f"{total} of {len(j.clusters)} failed in the rollout, --max-failures-total "
                        f"{self.budgets.total} allows {self.total_allowed}")
        return ""

    def _settle(self, wave: WaveRun, *, baked: bool) -> bool:
        """The wave's state from its clusters and the budgets; False when the rollout stops here."""
        j, r, n = self.j, self.r, wave.wave
        over = self._over_budget(wave)
        failures = sum(1 for c in wave.clusters if j.clusters[c].state == "failed")
        with j.lock:
            wave.failures = failures
            if over:
                wave.state = "failed"
                j.stopped_at, j.stop_reason = n, over
            elif wave.bake_s and not baked:
                wave.state = "baking"
            else:
                wave.state = "passed" if failures == 0 else "tolerated"
            if wave.state != "baking":
                wave.ended = now_iso()
        j.save()
        if wave.state == "baking":
            return self._bake(wave)
        took = _seconds(wave.started, wave.ended)
        if wave.state == "passed":
            r.ok(f"wave {n} passed in {took:.1f}s" + (f" (baked {_dur(wave.bake_s)})" if wave.bake_s else ""))
        elif wave.state == "tolerated":
            r.warn(f"wave {n}: {failures} of {len(wave.clusters)} failed, within --max-failures "
                   f"{self.budgets.wave} ({wave.allowed} allowed); going on")
        else:
            r.fail(f"wave {n}: {over}: stopping")
        return wave.state != "failed"

    # -- a wave ---------------------------------------------------------------------------------
    def _wave(self, n: int) -> bool:
        """Run wave ``n``; False when its failures exceed a budget (the rollout stops)."""
        j, r = self.j, self.r
        wave = j.wave(n)
        todo = [c for c in wave.clusters if j.clusters[c].state != "passed"]
        for c in wave.clusters:
            if c not in todo:
                self.view.cluster(c).ok(f"already at {j.revision[:12]} (earlier attempt); skipped")
        with j.lock:
            wave.state = "running"
            wave.started = wave.started or now_iso()
            wave.ended = None
            wave.bake_started = wave.bake_until = wave.baked = None  # a wave run again bakes again
            for c in todo:  # their failures of an earlier attempt count no more: they are tried again
                if j.clusters[c].state in ("failed", "not-started"):
                    j.clusters[c].state = "pending"
        j.save()
        width = min(self.req.max_parallel, max(len(todo), 1))
        r.step(f"wave {n}: {_plural(len(todo), 'cluster', count=True)} ({', '.join(todo)}), {width} at a time")
        queue = deque(todo)
        pool = ThreadPoolExecutor(max_workers=width, thread_name_prefix=f"wave{n}")
        running: dict[Future[None], str] = {}
        try:
            while queue or running:
                while queue and not self._over_budget(wave) and len(running) < width:
                    name = queue.popleft()
                    running[pool.submit(self._cluster, name)] = name
                if not running:
                    break
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                for f in done:
                    name = running.pop(f)
                    f.result()  # a bug (not a FleetError) ends the rollout; the journal keeps its place
                    if j.clusters[name].state == "failed" and queue and (over := self._over_budget(wave)):
                        r.warn(f"wave {n}: {over}; not starting {', '.join(queue)}")
        except BaseException:
            # interrupted (Ctrl-C): the clusters in flight stop at their next step, journals left to resume
            self._interrupted(running.values(), wait_for=running)
            raise
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
        with j.lock:
            for name in queue:
                j.clusters[name].state = "not-started"
        j.save()
        return self._settle(wave, baked=False)

    def _interrupted(self, names: Any, wait_for: Any) -> None:
        self.cancel.set()
        self.r.warn(f"interrupted: {', '.join(names)} stop at their next step; "
                    "run the same command again to continue")
        wait(wait_for)

    # -- bake -----------------------------------------------------------------------------------
    def _bake(self, wave: WaveRun) -> bool:
        """Watch the wave's passed clusters until its bake's end (kept in the journal: a rerun continues the
        wait); a gate that fails meanwhile fails its cluster. Then settle the wave."""
        j, r, n = self.j, self.r, wave.wave
        now = self.clock()
        resumed = wave.bake_until is not None
        with j.lock:
            if wave.bake_until is None:
                wave.bake_started = _iso(now)
                wave.bake_until = _iso(now + timedelta(seconds=wave.bake_s))
            wave.state = "baking"
        j.save()
        until = datetime.fromisoformat(wave.bake_until)
        members = [c for c in wave.clusters if j.clusters[c].state == "passed"]
        left = max((until - now).total_seconds(), 0.0)
        r.wait(("continuing the bake of" if resumed else "baking") + f" wave {n} until {_iso(until)} "
               f"({_dur(left)} left): watching {', '.join(members) or 'no cluster'}")
        if members:
            pool = ThreadPoolExecutor(max_workers=len(members), thread_name_prefix=f"bake{n}")
            futures = {pool.submit(self._bake_one, name, until): name for name in members}
            try:
                for f in futures:
                    f.result()
            except BaseException:
                self._interrupted(futures.values(), wait_for=futures)
                raise
            finally:
                pool.shutdown(wait=True, cancel_futures=True)
        with j.lock:
            wave.baked = now_iso()
        j.save()
        return self._settle(wave, baked=True)

    def _bake_one(self, name: str, until: datetime) -> None:
        j = self.j
        run = j.clusters[name]
        rep = Tracking(run, self.view.cluster(name), self.cancel)
        mode = run.sync_mode or self.s.sync_mode(name, self.req.sync)
        with j.lock:
            run.step = "bake"
        try:
            failure = self.s.bake(name, j.revision, mode, until, rep, self.cancel)
        except FleetError as e:
            failure = f"could not watch it: {e.message}"
        if failure is None:
            rep.ok(f"bake: its gates held until {_iso(until)}")
            return
        with j.lock:
            run.state, run.failed_step, run.error = "failed", "bake", failure
            run.ended = now_iso()
        j.save()
        rep.fail(f"failed during the bake: {failure}")
        if self.req.on_failure == "rollback":
            self._rollback_one(run)

    # -- a cluster ------------------------------------------------------------------------------
    def _cluster(self, name: str) -> None:
        j = self.j
        run = j.clusters[name]
        rep = Tracking(run, self.view.cluster(name), self.cancel)
        with j.lock:
            first = run.attempts == 0
            run.state, run.step, run.message = "running", "probe", ""
            run.started, run.ended, run.duration_s = now_iso(), None, None
            run.error = run.failed_step = None
            run.rollback = None
            run.attempts += 1
        j.save()
        t0 = time.monotonic()
        try:
            if first:
                run.previous_good = self.s.last_good(name)
                j.save()
            if run.action != "bootstrap":  # a bring-up that was interrupted continues as one
                probe = self.s.probe(name)
                run.action, run.why = ("update" if probe.exists else "bootstrap"), probe.why
                j.save()
            rep.step(f"{run.action}: {run.why}")
            team = getattr(self.s, "team", None)  # a shared backend: the cluster's lease in its bucket too
            with cluster_lock(name, f"fleet rollout {j.id} ({name})"), (
                    team.hold(name, "rollout", f"fleet rollout {j.id} ({name})", rep) if team is not None
                    else nullcontext()):
                if run.action == "bootstrap":
                    self._bring_up(run, rep)
                else:
                    self._update(run, rep)
        except (StepFailed, FleetError) as e:
            cause = e.cause if isinstance(e, StepFailed) else e  # the step is said apart: failed_step
            with j.lock:
                run.state = "failed"
                run.error = str(getattr(cause, "message", None) or cause)
                run.failed_step = run.failed_step or getattr(e, "step", None) or run.step
        else:
            run.state = "passed"
        finally:
            with j.lock:
                run.ended = now_iso()
                run.duration_s = round(time.monotonic() - t0, 3)
            j.save()
        if run.state == "passed":
            rep.ok(f"at {j.revision[:12]}, gates passed, last good recorded ({run.duration_s:.1f}s)")
        else:
            rep.fail(f"failed at {run.failed_step} after {run.duration_s:.1f}s: {run.error}")
            if self.req.on_failure == "rollback":
                self._rollback_one(run)

    def _bring_up(self, run: ClusterRun, rep: Reporter) -> None:
        res = self.s.bring_up(run.name, self.j.revision, sync=self.req.sync, gate_timeout=self.req.gate_timeout,
                              report_dir=rollout_dir(self.j.id) / "clusters" / run.name, reporter=rep)
        with self.j.lock:
            run.steps = list(res.steps)
            run.report = res.report
            run.sync_mode = run.sync_mode or ""
        if not res.ok:
            run.failed_step = res.failed_step
            raise FleetError(res.error or res.detail)

    def _update(self, run: ClusterRun, rep: Reporter, *, revision: str | None = None, reason: str | None = None,
                into: list[StepRecord] | None = None) -> tuple[dict[str, Any], ...]:
        """[operator], sync, gates, record at ``revision`` (default: the rollout's), each a journaled step
        (in ``run.steps``, or in ``into`` for a rollback)."""
        rev = revision or self.j.revision
        name = run.name
        mode = self.s.sync_mode(name, self.req.sync)
        timeout = self.req.gate_timeout if self.req.gate_timeout is not None else self.s.gate_timeout(name)
        names = (["operator"] if mode == "operator" else []) + ["sync", "gates", "record"]
        records = [StepRecord(s) for s in names]
        with self.j.lock:
            if into is None:
                run.sync_mode = mode
                run.steps = records
            else:
                into[:] = records
        sj = _StepJournal(self.j, name, rev, records)
        results: tuple[dict[str, Any], ...] = ()

        def step(label: str, fn: Callable[[], str]) -> None:
            rep.step(label)  # the step boundary: an interrupted rollout stops here
            try:
                detail = run_step(sj, label, fn, budget=self.req.budgets[label], reporter=rep,
                                  next_action="run the same command again to resume", describe=str)
            except (StepFailed, FleetError):
                if into is None:
                    run.failed_step = label
                raise
            rep.ok(f"{label}: {detail}")

        def gates() -> str:
            nonlocal results
            try:
                results = self.s.gates(name, rev, timeout, rep)
            except FleetError as e:
                results = tuple(getattr(e, "results", ()))
                raise
            # done means at the revision: gates that pass on what the cluster ran before (its operator still
            # at the previous revision, healthy) never count (the case of argo-cd issue 29410)
            elsewhere = self.s.at_revision(name, rev, mode)
            if elsewhere is not None:
                raise GateFailed(f"gates passed, but not at {rev[:12]}: {elsewhere}",
                                 hint="the operator has not applied the revision; see `fleet status`")
            counts = Counter(str(g.get("status") or ("passed" if g.get("passed") else "failed")) for g in results)
            return ", ".join(f"{n} {k}" for k, n in sorted(counts.items())) + f", at {rev[:12]}" \
                if results else f"no gates, at {rev[:12]}"

        t0 = time.monotonic()
        if mode == "operator":
            step("operator", lambda: self.s.pin_operator(name, rev, rep))
        step("sync", lambda: self.s.sync(name, rev, mode, rep))
        step("gates", gates)
        why = reason or f"fleet rollout {self.j.id} (wave {run.wave})"
        step("record", lambda: self.s.record(name, rev, why, results, round(time.monotonic() - t0, 3)))
        return results

    # -- rollback -------------------------------------------------------------------------------
    def _rollback(self, stopped: bool) -> None:
        j = self.j
        wave = j.stopped_at if stopped else None
        targets = [c for c in j.clusters.values()
                   if (c.state == "failed" and not (c.rollback and c.rollback.get("state") == "rolled-back"))
                   or (wave is not None and c.wave == wave and c.state == "passed")]
        if not targets:
            return
        self.r.step(f"rolling back {len(targets)} clusters to their last good revision: "
                    + ", ".join(c.name for c in targets))
        width = min(self.req.max_parallel, len(targets))
        with ThreadPoolExecutor(max_workers=width, thread_name_prefix="rollback") as pool:
            for f in [pool.submit(self._rollback_one, c) for c in targets]:
                f.result()

    def _rollback_one(self, run: ClusterRun) -> None:
        rep = Tracking(run, self.view.cluster(run.name), self.cancel)
        target = run.previous_good if run.attempts else self.s.last_good(run.name)
        t0 = time.monotonic()
        info: dict[str, Any] = {"target": target, "state": "", "detail": "", "duration_s": 0.0, "steps": []}
        if target is None:
            info.update(state="no-last-good", detail="no last good revision to return to: left as it is")
            rep.warn(f"rollback: {info['detail']}")
        elif target == self.j.revision:
            info.update(state="unchanged", detail=f"its last good already was {target[:12]}: left as it is")
            rep.warn(f"rollback: {info['detail']}")
        else:
            rep.step(f"rollback to {target[:12]}")
            run.step = "rollback"
            steps: list[StepRecord] = []
            try:
                self._update(run, rep, revision=target, reason=f"fleet rollout {self.j.id}: rollback", into=steps)
                info.update(state="rolled-back", detail=f"back at {target[:12]}, gates passed, last good recorded")
                if run.state == "passed":  # no longer at the revision: a resumed rollout runs it again
                    with self.j.lock:
                        run.state = "rolled-back"
                rep.ok(f"rollback: {info['detail']}")
            except (StepFailed, FleetError) as e:
                info.update(state="failed", detail=e.message)
                rep.fail(f"rollback to {target[:12]} failed: {e.message}")
            info["steps"] = [dict(vars(s)) for s in steps]
        info["duration_s"] = round(time.monotonic() - t0, 3)
        with self.j.lock:
            run.rollback = info
        self.j.save()


def _plural(n: int, word: str, *, count: bool = False) -> str:
    w = word if n == 1 else word + "s"
    return f"{n} {w}" if count else w


def _seconds(start: str | None, end: str | None) -> float:
    if not start or not end:
        return 0.0
    return (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds()


def _dur(seconds: float) -> str:
    s = round(seconds)
    return f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s"
