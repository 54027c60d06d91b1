"""The operator as fleet 0.1 made it: Flux's objects applied with kubectl from a Pulumi dynamic resource
(``pulumi-python:dynamic/fleet:Manifests``), kept only to build a stack of that version and prove it is
migrated to the Kubernetes provider without recreating the cluster or the operator's objects.

The engine's dynamic-provider plugin imports this module by name: the test puts tests/e2e on its
PYTHONPATH.
"""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path
from typing import Any

import pulumi
import pulumi.dynamic as dyn
import yaml

FIELD_MANAGER = "fleet-pulumi"


def _kubectl(kubeconfig: str, args: list[str], stdin: str) -> None:
    from fleet import toolchain

    with tempfile.NamedTemporaryFile("w", suffix=".yaml") as kc:
        kc.write(kubeconfig)
        kc.flush()
        files = ["-f", "-"] if stdin else []
        done = subprocess.run([str(toolchain.find("kubectl")), "--kubeconfig", kc.name, *args, *files],
                              input=stdin, capture_output=True, text=True, timeout=180)
    if done.returncode != 0:
        raise RuntimeError(done.stderr.strip()[-500:])


class LegacyManifestsProvider(dyn.ResourceProvider):
    def create(self, props: dict[str, Any]) -> dyn.CreateResult:
        objs = [d for d in yaml.safe_load_all(props["manifests"]) if d]
        first = [o for o in objs if o["kind"] in ("Namespace", "CustomResourceDefinition")]
        rest = [o for o in objs if o not in first]
        for batch in (first, rest):
            if batch:
                _kubectl(props["kubeconfig"], ["apply", "--server-side", f"--field-manager={FIELD_MANAGER}",
                                               "--force-conflicts"], yaml.safe_dump_all(batch))
            crds = [f"crd/{o['metadata']['name']}" for o in batch if o["kind"] == "CustomResourceDefinition"]
            if crds:
                _kubectl(props["kubeconfig"], ["wait", "--for=condition=Established", "--timeout=60s", *crds], "")
        return dyn.CreateResult(id_=str(props["label"]), outs=props)

    def delete(self, _id: str, _props: dict[str, Any]) -> None:
        _kubectl(_props["kubeconfig"], ["delete", "--ignore-not-found", "--wait=false"], _props["manifests"])


class Manifests(dyn.Resource, module="fleet", name="Manifests"):
    def __init__(self, name: str, *, kubeconfig: pulumi.Input[str], manifests: str,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        props = {"label": name, "kubeconfig": pulumi.Output.secret(kubeconfig), "manifests": manifests}
        super().__init__(LegacyManifestsProvider(), name, props, opts)


def legacy_program() -> None:
    """The program of fleet 0.1: the cluster, then Flux's object groups as Manifests resources."""
    from clusters import providers
    from fleet.operator.flux import install as flux
    from fleet.stackconfig import PROJECT, StackConfig

    sc = StackConfig.parse(pulumi.Config(PROJECT).get)
    cluster = providers.create(sc.cluster)
    pulumi.export("kubeconfig", cluster.kubeconfig)
    comp = pulumi.ComponentResource("fleet:operator:Flux", "flux", None,
                                    pulumi.ResourceOptions(depends_on=[cluster]))

    def group(name: str, objs: list[dict[str, Any]], *deps: pulumi.Resource) -> Manifests:
        return Manifests(name, kubeconfig=cluster.kubeconfig, manifests=yaml.safe_dump_all(objs),
                         opts=pulumi.ResourceOptions(parent=comp, depends_on=list(deps)))

    install = group("flux-install", flux.install_objects(sc))
    source = group("flux-source", [flux.git_repository(sc, with_auth=False)], install)
    group("flux-sync", [flux.kustomization(sc)], source)


legacy_program.__name__ = "fleet_program"
HERE = Path(__file__).resolve().parent
