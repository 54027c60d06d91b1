"""The Pulumi program of one cluster's stack: the cluster, then its operator.

Reads the stack config fleet sets from the registry (:class:`fleet.stackconfig.StackConfig`) and
exports ``kubeconfig`` (secret), ``cluster``, ``provider``, ``environment``, ``branch``, ``revision``,
``repoUrl``, ``operator`` and ``kustomizationPath``.
"""

from __future__ import annotations

import pulumi

from clusters import providers
from clusters.operator import LEGACY_TYPES, OPERATORS
from fleet.stackconfig import GIT_AUTH_KEY, PROJECT, SOPS_AGE_KEY, StackConfig, flux_git_url

__all__ = ["FleetProgram", "program", "run"]


def run() -> None:
    """The program body (inside the engine)."""
    cfg = pulumi.Config(PROJECT)
    sc = StackConfig.parse(cfg.get)
    cluster = providers.create(sc.cluster)
    pulumi.export("kubeconfig", cluster.kubeconfig)
    pulumi.export("cluster", sc.cluster.name)
    pulumi.export("provider", sc.cluster.provider)
    pulumi.export("environment", sc.cluster.environment)
    pulumi.export("branch", sc.branch)
    pulumi.export("revision", sc.revision or "")
    pulumi.export("operator", sc.settings.operator.kind)
    # "cluster-only": fleet.provision's cluster phase of a stack that has no operator yet.
    component = OPERATORS.get(sc.settings.operator.kind)  # None: operator.kind none
    if component is not None and cfg.get("phase") != "cluster-only":
        op = component(
            sc.settings.operator.kind,
            kubeconfig=cluster.kubeconfig,
            config=sc,
            git_auth=cfg.get_secret(GIT_AUTH_KEY),
            sops_age_key=cfg.get_secret(SOPS_AGE_KEY) if sc.settings.secrets.sops is not None else None,
            opts=pulumi.ResourceOptions(depends_on=[cluster]),
        )
        pulumi.export("repoUrl", flux_git_url(sc.repo_url))
        pulumi.export("kustomizationPath", op.path)


class FleetProgram:
    """``clusters.program``: call it inside the engine; ``check`` validates before the engine runs."""

    __name__ = "fleet_program"  # the Automation API prints the program's name
    legacy_types = LEGACY_TYPES  # resource types of earlier versions that fleet.provision migrates

    def __call__(self) -> None:
        run()

    def check(self, config: StackConfig) -> None:
        """Bad input (provider settings, a missing SDK, the repo URL, the operator source) raises an
        InputError/ConfigError/ToolMissing (exit 2) here, before anything changes."""
        providers.check(config.cluster)
        from fleet.operator import operator_for

        operator_for(config.settings).check_config(config)  # the URL it accepts, a well-formed source


program = FleetProgram()
