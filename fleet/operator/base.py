"""The operator seam: what fleet asks of the GitOps operator that applies a cluster, whatever it is.

An operator implementation (one module or package under :mod:`fleet.operator`, plus the Pulumi component
that installs it in :mod:`clusters.operator`) answers:

- **what to install**: :attr:`Operator.needs_repo_url`, :attr:`Operator.takes_age_key`,
  :attr:`Operator.runs_locally` (its controllers run as processes beside a local cluster) and
  :meth:`Operator.plan_lines` (the runbook's lines); :meth:`Operator.check_config` refuses a bad config
  before the engine runs;
- **how a revision is pinned**: the pin is part of the cluster's Pulumi stack (its one owner,
  ``fleet.provision`` with ``pin_revision``); :meth:`Operator.reconcile_now` asks the operator to act on it
  at once;
- **what it applied and whether it is Ready**: :meth:`Operator.installed`, :meth:`Operator.read` (an
  :class:`AppliedState`: :meth:`AppliedState.applied_at`, :meth:`AppliedState.checking_health`),
  :meth:`Operator.applied_refs`, :meth:`Operator.keeps`;
- **how to wait for it**: :meth:`Operator.wait_applied` (watch-driven, naming the object it waits for and
  quoting the latest cause it sees, the source's own error included);
- **what its gate checks**: :meth:`Operator.runs`, :meth:`Operator.gate`, :meth:`Operator.queries`
  (:class:`fleet.live.gates.OperatorGates`).

:func:`decide_sync` is the one rule that picks operator or direct sync, and says why.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol

from fleet.errors import InputError

if TYPE_CHECKING:
    from fleet.adapters.kube import Kube, KubeTarget
    from fleet.live.gates import Gate
    from fleet.live.objects import ObjectRef
    from fleet.live.watch import Query
    from fleet.output import Reporter
    from fleet.registry.model import ClusterSpec
    from fleet.stackconfig import StackConfig

__all__ = ["AppliedState", "Operator", "SyncDecision", "SyncRequest", "decide_sync"]

SyncRequest = Literal["auto", "operator", "direct"]


class AppliedState(Protocol):
    """The operator's own account of a cluster: what it fetched and applied, and whether it is Ready."""

    @property
    def installed(self) -> bool: ...
    @property
    def applied(self) -> str: ...
    @property
    def attempted(self) -> str: ...
    @property
    def ready(self) -> str: ...  # "True" | "False" | "Unknown" | ""
    @property
    def reason(self) -> str: ...
    @property
    def message(self) -> str: ...
    @property
    def source_message(self) -> str: ...
    @property
    def fetched_at(self) -> str: ...
    @property
    def ready_since(self) -> str: ...

    def applied_at(self, commit: str) -> bool: ...

    def rechecking(self, commit: str) -> bool: ...

    def objects_applied(self, commit: str) -> bool: ...

    def checking_health(self, commit: str) -> bool: ...  # applied, its own health checks still running

    def summary(self) -> str: ...


class Operator(Protocol):
    kind: str  # fleet.yaml's operator.kind
    title: str  # how a user calls it ("Flux")
    gate_label: str
    needs_repo_url: bool  # it clones the fleet repo: the stack needs a URL it can reach
    takes_age_key: bool  # it decrypts SOPS secrets itself: the age identity goes to the cluster
    runs_locally: bool  # on a local cluster its controllers run as processes beside the control plane
    # The Pulumi type whose resource, once made by an update, means the controllers' CRDs exist on the cluster:
    # a local cluster's controllers start then, while the update goes on ("": after the update)
    installed_by: str

    def check_config(self, cfg: StackConfig) -> None: ...

    def plan_lines(self, spec: ClusterSpec, revision: str, rendered_from: str, source: str) -> list[str]: ...

    def plan_notes(self, provider: str) -> list[str]: ...

    def installed(self, kube: Kube) -> bool: ...

    def runs(self, kube: Kube) -> tuple[bool, str]: ...

    def read(self, kube: Kube) -> AppliedState: ...

    def applies(self, kube: Kube) -> bool: ...

    def applied_refs(self, kube: Kube) -> list[ObjectRef]: ...

    def keeps(self, live: dict[str, Any]) -> bool: ...

    def reconcile_now(self, kube: Kube) -> None: ...

    def pinned(self, kube: Kube) -> str: ...

    def wait_applied(self, target: KubeTarget, revision: str, *, timeout: float, reporter: Reporter,
                     kube: Kube | None = None) -> str: ...

    def gate(self, revision: str, *, recheck_is_ready: bool = False, fleet_judges: bool = False) -> Gate: ...

    def queries(self) -> list[Query]: ...


@dataclass(frozen=True)
class SyncDecision:
    """How a revision reaches a cluster: ``operator`` (the operator applies it, fleet moves its pin and
    waits) or ``direct`` (fleet applies it, break-glass), and why, in words a user reads."""

    mode: Literal["operator", "direct"]
    reason: str


def decide_sync(requested: str, op: Operator, cluster: str, *, installed: bool | None = None) -> SyncDecision:
    """The one rule for operator or direct sync. ``installed``: whether the operator's objects are on the
    cluster (None: not known yet, as when a bootstrap plans to install it).

    - ``direct`` asked: direct (break-glass);
    - no operator (operator.kind none): direct; ``operator`` asked is bad input;
    - the operator installed, or about to be: through the operator, even while its controllers are still
      starting (fleet waits for them rather than applying behind their back);
    - not installed: ``auto`` applies directly and says so; ``operator`` asked is bad input.
    """
    if requested not in ("auto", "operator", "direct"):
        raise InputError(f'--sync must be auto, operator or direct, not "{requested}"')
    if requested == "direct":
        return SyncDecision("direct", "--sync direct: fleet applies the objects itself (break-glass)")
    if op.kind == "none":
        if requested == "operator":
            raise InputError('--sync operator needs an operator, but fleet.yaml says operator.kind "none"')
        return SyncDecision("direct", 'fleet.yaml says operator.kind "none": fleet applies the objects itself')
    if installed is None:
        return SyncDecision("operator", f"{op.title} is the fleet's operator: it applies the revision")
    if installed:
        return SyncDecision("operator", f'{op.title} is installed on "{cluster}": it applies the revision')
    if requested == "operator":
        raise InputError(f'--sync operator: {op.title} is not installed on "{cluster}"',
                         hint="provision it with `fleet provision`, or use --sync direct")
    return SyncDecision("direct", f'{op.title} is not installed on "{cluster}" (`fleet provision` installs it): '
                                  "fleet applies the objects itself")
