"""The fleet's operator, behind one seam (:mod:`fleet.operator.base`): :func:`operator_for` gives the
implementation fleet.yaml names (:mod:`fleet.operator.flux`, :mod:`fleet.operator.none`),
:func:`~fleet.operator.base.decide_sync` the one rule for operator or direct sync, :func:`gate_config` the
registry's gates with that operator's gate."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fleet.operator.base import AppliedState, Operator, SyncDecision, decide_sync

if TYPE_CHECKING:
    from fleet.live.gates import GateConfig
    from fleet.registry.model import ClusterSpec, FleetSettings

__all__ = ["AppliedState", "Operator", "SyncDecision", "decide_sync", "gate_config", "operator_for"]


def operator_for(kind_or_settings: str | FleetSettings) -> Operator:
    """The operator of a fleet (its settings) or of a kind (``flux``, ``none``)."""
    kind = kind_or_settings if isinstance(kind_or_settings, str) else kind_or_settings.operator.kind
    if kind == "flux":
        from fleet.operator.flux import FluxOperator

        return FluxOperator()
    if kind == "none":
        from fleet.operator.none import NoOperator

        return NoOperator()
    from fleet.errors import InputError

    raise InputError(f'unknown operator kind "{kind}"; fleet knows flux and none')


def gate_config(settings: FleetSettings, cluster: ClusterSpec | None = None, *,
                operator_gate: str | None = None) -> GateConfig:
    """The registry's gates for ``cluster`` with the fleet's operator's gate
    (:func:`fleet.live.gates.gate_config`)."""
    from fleet.live import gates

    op = operator_for(settings)
    return gates.gate_config(settings, cluster, operator_gate=operator_gate,
                             operator=op if op.kind != "none" else None)
