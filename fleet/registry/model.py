"""The fleet repo's schema: ``fleet.yaml`` and ``clusters/<name>.yaml``, as typed frozen objects.

Parsed once, at the edge (:mod:`fleet.registry.load`); everything above works with these.
``fleet schema`` exports them as JSON Schema for editors.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = [
    "DNS_LABEL",
    "ClusterSpec",
    "CustomGate",
    "FleetSettings",
    "GateSettings",
    "KubeAccess",
    "OperatorSettings",
    "Provider",
]

DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
LABEL_NAME = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")
DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
Provider = Literal["local", "kind", "eks", "gke", "aks"]
PROVIDERS: tuple[str, ...] = ("local", "kind", "eks", "gke", "aks")


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CustomGate(_Frozen):
    """A gate a user declares: a condition on any object must have a status (default ``True``)."""

    apiVersion: str
    kind: str
    name: str
    namespace: str | None = None
    condition: str = "Ready"
    status: str = "True"


class GateSettings(_Frozen):
    timeout: Annotated[int, Field(ge=1, le=86400, description="Seconds all gates may take together.")] = 300
    custom: tuple[CustomGate, ...] = ()
    operator: Annotated[
        Literal["auto", "on", "off"],
        Field(description="The operator gate (Flux Kustomizations Ready at the revision): auto = only when "
                          "the operator's controllers run on the cluster; on = required; off = skipped."),
    ] = "auto"


class OperatorSettings(_Frozen):
    kind: Literal["flux", "none"] = "flux"
    # Where Flux's manifests come from: "toolchain" (extracted by `make toolchain`), or a URL/path.
    source: str = "toolchain"
    version: str = "v2.7"
    interval: str = "1m"


class FleetSettings(_Frozen):
    """``fleet.yaml``: fleet-wide settings."""

    apiVersion: Literal["fleet.dev/v1"] = "fleet.dev/v1"
    kind: Literal["Fleet"] = "Fleet"
    name: str = "fleet"
    git: GitSettings = Field(default_factory=lambda: GitSettings())
    operator: OperatorSettings = Field(default_factory=OperatorSettings)
    gates: GateSettings = Field(default_factory=GateSettings)


class GitSettings(_Frozen):
    remote: str = "origin"
    url: str | None = None  # what the operator clones; default: the remote's URL
    branch: str = "main"


class KubeAccess(_Frozen):
    """How fleet reaches a cluster it did not provision: a kubeconfig context (credentials never in Git)."""

    context: str | None = None
    kubeconfig: str | None = None  # a path outside the repo; default $KUBECONFIG / ~/.kube/config


class ClusterSpec(_Frozen):
    """``clusters/<name>.yaml``: one cluster of the fleet."""

    apiVersion: Literal["fleet.dev/v1"] = "fleet.dev/v1"
    kind: Literal["Cluster"] = "Cluster"
    name: str
    environment: str
    provider: Provider = "local"
    region: str = "local"
    wave: Annotated[int, Field(ge=0, le=1000)] = 0
    labels: dict[str, str] = Field(default_factory=dict)
    vars: dict[str, str] = Field(default_factory=dict)
    settings: dict[str, str | int | bool] = Field(default_factory=dict, description="Provider settings.")
    access: KubeAccess | None = None
    gates: GateSettings | None = None

    @field_validator("name")
    @classmethod
    def _dns_label(cls, v: str) -> str:
        if not DNS_LABEL.match(v):
            raise ValueError(f'"{v}" is not a DNS label (lowercase letters, digits and "-", at most 63)')
        return v

    @field_validator("environment")
    @classmethod
    def _env_name(cls, v: str) -> str:
        if not DNS_LABEL.match(v):
            raise ValueError(f'"{v}" is not a valid environment name (a DNS label)')
        return v

    @field_validator("labels")
    @classmethod
    def _label_syntax(cls, v: dict[str, str]) -> dict[str, str]:
        for k, val in v.items():
            prefix, _, name = k.rpartition("/")
            if not LABEL_NAME.match(name) or (prefix and not DNS_SUBDOMAIN.match(prefix)):
                raise ValueError(f'label key "{k}" is not a valid Kubernetes label key')
            if val and not LABEL_NAME.match(val):
                raise ValueError(f'label value "{val}" (key "{k}") is not a valid Kubernetes label value')
        return v

    @field_validator("vars")
    @classmethod
    def _var_names(cls, v: dict[str, str]) -> dict[str, str]:
        for k in v:
            if not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", k):
                raise ValueError(f'variable name "{k}" must match [A-Za-z_][A-Za-z0-9_]*')
        return v


FleetSettings.model_rebuild()
