"""``fleet rollout``: bring up a new region, or roll a revision across the fleet, wave by wave.

    for each wave, in order (wave N+1 starts only when every cluster of wave N passed its gates):
        up to --max-parallel clusters at once:
            it does not exist yet  -> the DR pipeline at REV (provision, operator, sync, gates, record)
            it exists              -> [operator pinned to REV], sync, gates, record last good
        more than --max-failures failures in the wave -> stop; later waves are left untouched;
            with --rollback, the failed clusters (and the whole stopping wave) return to the revision that
            was their last good before the rollout (sync + gates + record)

Journaled (:mod:`rollout.journal`): a rollout killed at any point, SIGKILL included, continues
where it stopped when run again with the same selector and revision; clusters already done at that
revision are skipped and a wave whose clusters all passed is not run again. The rollout talks to the
world only through :class:`RolloutServices` (:mod:`rollout.services` wires the real ones) and
says what it does through a :class:`RolloutView` (plain lines, or the CLI's live table).
"""

from __future__ import annotations

import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from fleet.errors import FleetError, InputError, StepFailed
from fleet.locks import cluster_lock
from fleet.output import Reporter
from fleet.stepkit.journal import Journal, StepRecord, now_iso
from fleet.stepkit.steps import run_step
from rollout.journal import (
    ClusterRun,
    RolloutJournal,
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
from rollout.progress import RolloutView, Tracking
from rollout.report import build_report, write_report

__all__ = ["order_waves", "run_rollout"]


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


def _check(req: RolloutRequest) -> None:
    if req.max_parallel < 1:
        raise InputError(f"--max-parallel must be at least 1 (got {req.max_parallel})")
    if req.max_failures < 0:
        raise InputError(f"--max-failures must be 0 or more (got {req.max_failures})")
    if req.gate_timeout is not None and req.gate_timeout <= 0:
        raise InputError(f"--gate-timeout must be more than 0 seconds (got {req.gate_timeout:g})")
    if req.sync not in ("auto", "operator", "direct"):
        raise InputError(f'--sync must be one of auto, operator, direct (got "{req.sync}")')


def run_rollout(req: RolloutRequest, services: RolloutServices, view: RolloutView) -> RolloutResult:
    """Run (or resume) a rollout; with ``dry_run``, only say what it would do."""
    _check(req)
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
    key = (req.selector or "", revision)
    if req.dry_run:
        existing = load_current()
        resumed = existing if existing is not None and existing.key == key else None
        return RolloutResult("planned", _plan(req, services, revision, subject, waves, resumed), None)
    with locked_rollouts() as path:
        j = _open(load_current(), path, req, revision, waves, r)
        view.attach(j)
        plan = _plan(req, services, revision, subject, waves, j if j.resumed else None, probe=False)
        return _Rollout(j, req, services, view, plan).run()


def _plan(req: RolloutRequest, services: RolloutServices, revision: str, subject: str,
          waves: dict[int, list[str]], journal: RolloutJournal | None, *, probe: bool = True) -> RolloutPlan:
    def one(name: str, wave: int) -> PlannedCluster:
        done = journal is not None and name in journal.clusters and journal.clusters[name].state == "passed"
        if done:
            return PlannedCluster(name, wave, "done", f"passed at {revision[:12]} in an earlier attempt")
        if not probe:
            return PlannedCluster(name, wave, "", "")
        p = services.probe(name)
        return PlannedCluster(name, wave, "update" if p.exists else "bootstrap", p.why)

    planned = tuple(PlannedWave(w, tuple(one(n, w) for n in names)) for w, names in waves.items())
    return RolloutPlan(req.selector or "", revision, subject, req.max_parallel, req.max_failures, req.rollback,
                       planned, journal.id if journal is not None else None)


def _open(existing: RolloutJournal | None, path: Path, req: RolloutRequest, revision: str,
          waves: dict[int, list[str]], r: Reporter) -> RolloutJournal:
    options = {"max_parallel": req.max_parallel, "max_failures": req.max_failures, "rollback": req.rollback,
               "gate_timeout": req.gate_timeout, "sync": req.sync}
    key = (req.selector or "", revision)
    if existing is not None and existing.key == key:
        existing.path = path
        existing.resumed += 1
        existing.state = "running"
        existing.ended = None
        existing.stopped_at = None
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
    j.path = path
    j.save()
    what = f'selector "{req.selector}"' if req.selector else "every cluster"
    r.step(f"rollout {j.id}: {what} to {revision[:12]}, {len(waves)} waves, {len(j.clusters)} clusters")
    return j


class _Rollout:
    def __init__(self, j: RolloutJournal, req: RolloutRequest, services: RolloutServices, view: RolloutView,
                 plan: RolloutPlan) -> None:
        self.j, self.req, self.s, self.view, self.plan = j, req, services, view, plan
        self.r = view.reporter
        self.cancel = threading.Event()

    def run(self) -> RolloutResult:
        j, r = self.j, self.r
        stopped = False
        for wave in j.waves:
            if wave.state == "passed":
                r.ok(f"wave {wave.wave}: passed in an earlier attempt ({', '.join(wave.clusters)}); not run again")
                continue
            if stopped:
                break
            stopped = not self._wave(wave.wave)
        if self.req.rollback:
            self._rollback(stopped)
        failed = [c.name for c in j.clusters.values() if c.state == "failed"]
        outcome: Literal["succeeded", "degraded", "stopped"] = (
            "stopped" if stopped else ("degraded" if failed else "succeeded"))
        with j.lock:
            j.state = outcome
            j.ended = now_iso()
        j.save()
        report = write_report(build_report(j), rollout_dir(j.id))
        if outcome == "succeeded":
            j.archive()
            r.ok(f"rollout {j.id}: {len(j.clusters)} clusters at {j.revision[:12]} in {report.wall_s:.1f}s")
        elif outcome == "degraded":
            r.warn(f"rollout {j.id}: every wave ran; {len(failed)} failed within --max-failures "
                   f"{self.req.max_failures}: {', '.join(failed)}; run the same command again to retry them")
        else:
            later = [w.wave for w in j.waves if j.stopped_at is not None and w.wave > j.stopped_at]
            r.fail(f"rollout {j.id} stopped at wave {j.stopped_at}: {', '.join(failed)} failed"
                   + (f"; {_plural(len(later), 'wave')} {', '.join(map(str, later))} not started" if later else ""))
        waves = tuple(
            PlannedWave(w.wave, tuple(PlannedCluster(n, w.wave, j.clusters[n].action, j.clusters[n].why)
                                      for n in w.clusters))
            for w in j.waves
        )
        return RolloutResult(outcome, replace(self.plan, waves=waves), report, j.id)

    # -- a wave ---------------------------------------------------------------------------------
    def _wave(self, n: int) -> bool:
        """Run wave ``n``; False when its failures exceed --max-failures (the rollout stops)."""
        j, r, limit = self.j, self.r, self.req.max_failures
        wave = next(w for w in j.waves if w.wave == n)
        todo = [c for c in wave.clusters if j.clusters[c].state != "passed"]
        for c in wave.clusters:
            if c not in todo:
                self.view.cluster(c).ok(f"already at {j.revision[:12]} (earlier attempt); skipped")
        with j.lock:
            wave.state = "running"
            wave.started = wave.started or now_iso()
            wave.ended = None
        j.save()
        width = min(self.req.max_parallel, max(len(todo), 1))
        r.step(f"wave {n}: {_plural(len(todo), 'cluster', count=True)} ({', '.join(todo)}), {width} at a time")
        failures = 0
        queue = deque(todo)
        pool = ThreadPoolExecutor(max_workers=width, thread_name_prefix=f"wave{n}")
        running: dict[Future[None], str] = {}
        try:
            while queue or running:
                while queue and failures <= limit and len(running) < width:
                    name = queue.popleft()
                    running[pool.submit(self._cluster, name)] = name
                if not running:
                    break
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                for f in done:
                    name = running.pop(f)
                    f.result()  # a bug (not a FleetError) ends the rollout; the journal keeps its place
                    if j.clusters[name].state == "failed":
                        failures += 1
                        if failures > limit and queue:
                            r.warn(f"wave {n}: {failures} failed (--max-failures {limit}); not starting "
                                   f"{', '.join(queue)}")
        except BaseException:
            # interrupted (Ctrl-C): the clusters in flight stop at their next step, journals left to resume
            self.cancel.set()
            r.warn(f"interrupted: {', '.join(running.values())} stop at their next step; "
                   "run the same command again to continue")
            wait(running)
            raise
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
        with j.lock:
            for name in queue:
                j.clusters[name].state = "not-started"
            wave.failures = failures
            wave.ended = now_iso()
            wave.state = "passed" if failures == 0 else ("tolerated" if failures <= limit else "failed")
            if wave.state == "failed":
                j.stopped_at = n
        j.save()
        took = _seconds(wave.started, wave.ended)
        if wave.state == "passed":
            r.ok(f"wave {n} passed in {took:.1f}s")
        elif wave.state == "tolerated":
            r.warn(f"wave {n}: {failures} of {len(wave.clusters)} failed, within --max-failures {limit}; going on")
        else:
            r.fail(f"wave {n}: {failures} of {len(wave.clusters)} failed (--max-failures {limit}): stopping")
        return wave.state != "failed"

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
            with cluster_lock(name, f"fleet rollout {j.id} ({name})"):
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
            counts = Counter(str(g.get("status") or ("passed" if g.get("passed") else "failed")) for g in results)
            return ", ".join(f"{n} {k}" for k, n in sorted(counts.items())) or "no gates"

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
                   if c.state == "failed" or (wave is not None and c.wave == wave and c.state == "passed")]
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
