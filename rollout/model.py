"""The vocabulary of a rollout: what is asked (:class:`RolloutRequest`), what the world must offer
(:class:`RolloutServices`), and what comes back (:class:`RolloutResult`, :class:`RolloutPlan`)."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal, Protocol

from bootstrap.pipeline import DEFAULT_BUDGETS
from fleet.output import Reporter
from fleet.registry.model import RolloutSettings
from fleet.stepkit.journal import StepRecord
from fleet.stepkit.steps import Budget
from rollout.policy import Approval, FailureBudget
from rollout.report import RolloutReport

__all__ = [
    "BringUp",
    "OnFailure",
    "Outcome",
    "PlannedCluster",
    "PlannedWave",
    "Probe",
    "RolloutPlan",
    "RolloutRequest",
    "RolloutResult",
    "RolloutServices",
    "SyncMode",
]

SyncMode = Literal["auto", "operator", "direct"]
OnFailure = Literal["hold", "rollback"]
Outcome = Literal["succeeded", "degraded", "stopped", "paused", "planned"]


@dataclass(frozen=True)
class RolloutRequest:
    repo: Path
    selector: str | None = None
    rev: str = "HEAD"
    max_parallel: int = 2
    # a wave's budget: failures (2) or a percent of its clusters ("10%"); the total: of every selected cluster
    max_failures: int | str | FailureBudget = 0
    max_failures_total: int | str | FailureBudget | None = None
    on_failure: OnFailure = "hold"  # rollback: a failed cluster returns to its own last good at once
    rollback: bool = False  # when the rollout stops: the stopping wave (and failed clusters) return too
    bake: int | str | None = None  # seconds or a duration ("10m"): every wave's bake, over fleet.yaml's
    gate_timeout: float | None = None
    sync: SyncMode = "auto"
    dry_run: bool = False
    budgets: dict[str, Budget] = field(default_factory=lambda: dict(DEFAULT_BUDGETS))


@dataclass(frozen=True)
class Probe:
    exists: bool
    why: str  # "no kubeconfig: not provisioned by fleet", "reachable (provisioned ...)", ...


@dataclass(frozen=True)
class BringUp:
    """What the DR pipeline did for a cluster that did not exist."""

    ok: bool
    detail: str
    steps: tuple[StepRecord, ...] = ()
    failed_step: str | None = None
    error: str | None = None
    report: str | None = None  # its recovery report (Markdown)


class RolloutServices(Protocol):
    """What a rollout needs from the registry, the live layer and the DR pipeline; each call idempotent."""

    def resolve(self, rev: str) -> tuple[str, str]: ...  # (full sha, subject)
    def select(self, selector: str | None, revision: str) -> list[tuple[str, int]]: ...  # (name, wave)
    def last_good(self, cluster: str) -> str | None: ...
    def probe(self, cluster: str) -> Probe: ...
    def bring_up(self, cluster: str, revision: str, *, sync: SyncMode, gate_timeout: float | None,
                 report_dir: Path, reporter: Reporter) -> BringUp: ...
    def sync_mode(self, cluster: str, requested: SyncMode) -> str: ...  # "direct" | "operator"
    def gate_timeout(self, cluster: str) -> float: ...
    def pin_operator(self, cluster: str, revision: str, reporter: Reporter) -> str: ...
    def sync(self, cluster: str, revision: str, mode: str, reporter: Reporter) -> str: ...
    def gates(self, cluster: str, revision: str, timeout: float, reporter: Reporter) -> tuple[dict[str, Any], ...]: ...
    def record(self, cluster: str, revision: str, reason: str, gates: tuple[dict[str, Any], ...],
               duration_s: float) -> str: ...
    # -- policy
    # None when the cluster's operator (or fleet's inventory, synced directly) reports ``revision`` applied
    # and Ready; else what it reports instead
    def at_revision(self, cluster: str, revision: str, mode: str) -> str | None: ...
    # watch the cluster's gates at ``revision`` until ``until`` (one look when it is past): None when they
    # held, else the first that failed
    def bake(self, cluster: str, revision: str, mode: str, until: datetime, reporter: Reporter,
             cancel: threading.Event) -> str | None: ...
    def rollout_settings(self) -> RolloutSettings: ...
    def environments(self, revision: str) -> dict[str, str]: ...  # cluster -> environment
    def identity(self) -> str: ...  # "Name <email>": who runs the rollout
    def approvals(self, rollout_id: str, revision: str) -> list[Approval]: ...



@dataclass(frozen=True)
class PlannedCluster:
    name: str
    wave: int
    action: str  # bootstrap | update | done (passed in an earlier attempt of this rollout)
    why: str


@dataclass(frozen=True)
class PlannedWave:
    wave: int
    clusters: tuple[PlannedCluster, ...]
    approval: bool = False
    bake_s: int = 0
    max_failures: int = 0  # what its budget allows
    policy: str = ""  # what asks for its approval or bake


@dataclass(frozen=True)
class RolloutPlan:
    selector: str
    revision: str
    subject: str
    max_parallel: int
    max_failures: str  # "2" or "10%" (of each wave's clusters)
    rollback: bool
    waves: tuple[PlannedWave, ...]
    resumes: str | None = None  # the id of the rollout this run continues
    max_failures_total: str | None = None  # of every selected cluster
    on_failure: str = "hold"


@dataclass(frozen=True)
class RolloutResult:
    outcome: Outcome
    plan: RolloutPlan
    report: RolloutReport | None
    id: str | None = None
