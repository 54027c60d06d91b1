"""``operator.kind: none``: no operator; fleet applies every revision itself (server-side apply, inventory,
prune), and there is no operator gate."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fleet.errors import FleetError

if TYPE_CHECKING:
    from fleet.adapters.kube import Kube, KubeTarget
    from fleet.live.gates import Gate
    from fleet.live.objects import ObjectRef
    from fleet.live.watch import Query
    from fleet.output import Reporter
    from fleet.registry.model import ClusterSpec
    from fleet.stackconfig import StackConfig

__all__ = ["NoOperator"]


class NoOperator:
    kind = "none"
    title = "no operator"
    gate_label = "operator"
    needs_repo_url = False
    takes_age_key = False
    runs_locally = False
    installed_by = ""

    def check_config(self, cfg: StackConfig) -> None:
        return None

    def plan_lines(self, spec: ClusterSpec, revision: str, rendered_from: str, source: str) -> list[str]:
        return []

    def plan_notes(self, provider: str) -> list[str]:
        return []

    def installed(self, kube: Kube) -> bool:
        return False

    def runs(self, kube: Kube) -> tuple[bool, str]:
        return False, 'the fleet\'s operator is "none"'

    def read(self, kube: Kube) -> Any:
        raise FleetError('the fleet has no operator (operator.kind "none")')

    def applies(self, kube: Kube) -> bool:
        return False

    def applied_refs(self, kube: Kube) -> list[ObjectRef]:
        return []

    def keeps(self, live: dict[str, Any]) -> bool:
        return False

    def reconcile_now(self, kube: Kube) -> None:
        return None

    def pinned(self, kube: Kube) -> str:
        return ""

    def wait_applied(self, target: KubeTarget, revision: str, *, timeout: float, reporter: Reporter,
                     kube: Kube | None = None) -> str:
        raise FleetError('the fleet has no operator (operator.kind "none") to wait for')

    def gate(self, revision: str, *, recheck_is_ready: bool = False, fleet_judges: bool = False) -> Gate:
        raise FleetError('the fleet has no operator (operator.kind "none"): no operator gate')

    def queries(self) -> list[Query]:
        return []
