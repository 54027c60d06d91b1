"""Flux as fleet's operator: source-controller and kustomize-controller, fleet's GitRepository pinned to
a commit and its Kustomization of the cluster's overlay (or Flux directory).

- :mod:`.install`: the objects the cluster's Pulumi stack installs (CRDs and controllers from a pinned
  source, the GitRepository, the Kustomization, the SOPS and verification Secrets);
- :mod:`.status`: what Flux says it fetched and applied, waiting for it, promotion;
- :mod:`.gate`: the operator gate and whether the controllers run;
- :mod:`.applied`: Flux's inventory, for ``fleet diff``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fleet.live.watch import Query
from fleet.operator.flux import applied, gate
from fleet.operator.flux import status as st

if TYPE_CHECKING:
    from fleet.adapters.kube import Kube, KubeTarget
    from fleet.live.gates import Gate
    from fleet.live.objects import ObjectRef
    from fleet.output import Reporter
    from fleet.registry.model import ClusterSpec
    from fleet.stackconfig import StackConfig

__all__ = ["FluxOperator"]

_LOCAL_NOTE = (
    "on local clusters Flux's source-controller and kustomize-controller run as processes beside the "
    "control plane (kwok cannot run pods); the fleet repo is served to them on loopback when it has no "
    "http(s)/ssh remote. HelmReleases are not reconciled locally: helm-controller is not buildable here"
)


class FluxOperator:
    kind = "flux"
    title = "Flux"
    namespace = st.FLUX_NAMESPACE
    gate_label = f"Kustomization/{st.FLUX_NAMESPACE}/*"
    needs_repo_url = True
    takes_age_key = True
    runs_locally = True
    # clusters/operator.py makes the GitRepository after Flux's whole install set (its CRDs among it); the
    # install set's ConfigGroup is a remote component, of which the engine sends no outputs event
    installed_by = "kubernetes:source.toolkit.fluxcd.io/v1:GitRepository"

    # -- what to install ----------------------------------------------------------------------------
    def check_config(self, cfg: StackConfig) -> None:
        from fleet.operator.flux import install

        install.git_repository(cfg, with_auth=False)  # the URL Flux accepts
        install.install_source(cfg)  # a well-formed version

    def plan_lines(self, spec: ClusterSpec, revision: str, rendered_from: str, source: str) -> list[str]:
        from fleet.rendering.fluxtree import operator_name

        own = operator_name(spec.source is not None)
        return [
            f"Flux ({source}) in {self.namespace}",
            f"GitRepository {self.namespace}/{own} pinned to commit {revision[:12]}",
            f"Kustomization {self.namespace}/{own} for ./{rendered_from} ({len(spec.vars)} variables)",
        ]

    def plan_notes(self, provider: str) -> list[str]:
        return [_LOCAL_NOTE] if provider == "local" else []

    # -- what it applied ------------------------------------------------------------------------------
    def installed(self, kube: Kube) -> bool:
        return st.read_status(kube).installed

    def runs(self, kube: Kube) -> tuple[bool, str]:
        return gate.operator_runs(kube, self.namespace)

    def read(self, kube: Kube) -> st.FluxStatus:
        return st.read_status(kube)

    def applies(self, kube: Kube) -> bool:
        return st.read_status(kube).installed and gate.operator_runs(kube, self.namespace)[0]

    def applied_refs(self, kube: Kube) -> list[ObjectRef]:
        return applied.flux_inventory(kube)

    def keeps(self, live: dict[str, Any]) -> bool:
        return applied.flux_keeps(live)

    def pinned(self, kube: Kube) -> str:
        return st.read_status(kube).pinned

    # -- acting and waiting ---------------------------------------------------------------------------
    def reconcile_now(self, kube: Kube) -> None:
        st.request_reconcile(kube)

    def wait_applied(self, target: KubeTarget, revision: str, *, timeout: float, reporter: Reporter,
                     kube: Kube | None = None) -> str:
        """Wait until Flux fetched ``revision`` and applied its objects, and say when; its health (Ready
        at the revision, the workloads) is the gates'."""
        s = st.wait_applied(target, revision, timeout=timeout, reporter=reporter, kube=kube)
        when = s.health_since if s.applied != revision else s.ready_since
        return f"Flux fetched {revision[:12]} at {s.fetched_at or '?'} and applied it at {when or '?'}"

    # -- its gate -------------------------------------------------------------------------------------
    def gate(self, revision: str, *, recheck_is_ready: bool = False, fleet_judges: bool = False) -> Gate:
        return gate.operator_gate(revision, self.namespace, recheck_is_ready=recheck_is_ready,
                                  fleet_judges=fleet_judges)

    def queries(self) -> list[Query]:
        return [Query(gate.FLUX_API, "Kustomization", self.namespace),
                Query(gate.SOURCE_API, "GitRepository", self.namespace)]
