"""The DR pipeline's operator step skips its update only when the stack's outputs say the operator is
installed at the pinned revision (fleet.provision.operator_pinned)."""

from __future__ import annotations

from fleet.adapters.pulumi_auto import StackOutput
from fleet.provision import operator_pinned

REV = "4c1e2a9" + "0" * 33


def whole(revision: str = REV, operator: str = "flux") -> dict[str, StackOutput]:
    """The outputs of an update that registered the cluster and its operator (clusters.program.run)."""
    return {
        "kubeconfig": StackOutput("apiVersion: v1", True),
        "cluster": StackOutput("eu-1-drill", False),
        "revision": StackOutput(revision, False),
        "operator": StackOutput(operator, False),
        "repoUrl": StackOutput("http://127.0.0.1:40123/fleet.git", False),
        "kustomizationPath": StackOutput("./environments/prod", False),
    }


def test_a_stack_brought_up_whole_at_the_revision_needs_no_second_update() -> None:
    assert operator_pinned(whole(), "flux", REV)
    # the plain values ProvisionResult.outputs holds (secrets shown as "[secret]") say the same
    assert operator_pinned({k: ("[secret]" if v.secret else v.value) for k, v in whole().items()}, "flux", REV)


def test_a_stack_with_the_cluster_alone_gets_the_operator_step_update() -> None:
    cluster_only = {k: v for k, v in whole().items() if k not in ("repoUrl", "kustomizationPath")}
    assert not operator_pinned(cluster_only, "flux", REV)


def test_another_pin_another_operator_or_no_pin_is_not_pinned() -> None:
    assert not operator_pinned(whole(revision="f" * 40), "flux", REV)
    assert not operator_pinned(whole(revision=""), "flux", "")  # following the branch: nothing pinned
    assert not operator_pinned(whole(operator="none"), "flux", REV)
    assert not operator_pinned({}, "flux", REV)
