"""Cluster providers: each is a ComponentResource whose ``kubeconfig`` output is a Pulumi secret.

    local  a real control plane on this machine (kwokctl), through a dynamic provider
    kind   kind clusters (needs docker), through a dynamic provider driving the ``kind`` CLI
    eks    pulumi_eks / pulumi_aws            (``pip install "fleet[aws]"``)
    gke    pulumi_gcp                         (``pip install "fleet[gcp]"``)
    aks    pulumi_azure_native                (``pip install "fleet[azure]"``)

The cloud SDKs are large and optional: a provider's module imports its SDK only when a cluster uses
it, and :func:`check` says which extra to install before the engine runs.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Callable
from types import ModuleType

import pulumi

from fleet.errors import ConfigError, ToolMissing
from fleet.registry.model import PROVIDERS, ClusterSpec

__all__ = [
    "ClusterComponent",
    "check",
    "create",
    "require_module",
    "setting_int",
    "setting_str",
]

# provider -> (the Python packages it needs, the fleet extra that installs them)
EXTRAS: dict[str, tuple[tuple[str, ...], str]] = {
    "eks": (("pulumi_aws", "pulumi_eks"), "aws"),
    "gke": (("pulumi_gcp",), "gcp"),
    "aks": (("pulumi_azure_native",), "azure"),
}


class ClusterComponent(pulumi.ComponentResource):
    """A provisioned cluster. ``kubeconfig`` is a secret Output[str]."""

    kubeconfig: pulumi.Output[str]

    def __init__(self, type_: str, spec: ClusterSpec, opts: pulumi.ResourceOptions | None) -> None:
        super().__init__(type_, spec.name, None, opts)
        self.spec = spec

    def _finish(self, kubeconfig: pulumi.Input[str]) -> None:
        self.kubeconfig = pulumi.Output.secret(kubeconfig)
        self.register_outputs({"kubeconfig": self.kubeconfig})


def _file(spec: ClusterSpec) -> str:
    return f"clusters/{spec.name}.yaml"


def setting_str(
    spec: ClusterSpec,
    key: str,
    default: str | None = None,
    *,
    required: bool = False,
    fallback: str | None = None,
) -> str | None:
    """A string from ``settings``; ``fallback`` is used when absent (e.g. the entry's region)."""
    v = spec.settings.get(key)
    if v is None:
        v = fallback if fallback is not None else default
    if v is None:
        if required:
            raise ConfigError(
                f"the {spec.provider} provider needs this setting", file=_file(spec), key=f"settings.{key}"
            )
        return None
    if isinstance(v, bool) or not isinstance(v, (str, int)):
        raise ConfigError(f"expected a string, got {v!r}", file=_file(spec), key=f"settings.{key}")
    return str(v)


def setting_int(spec: ClusterSpec, key: str, default: int, *, minimum: int = 0) -> int:
    v = spec.settings.get(key, default)
    if isinstance(v, bool) or (not isinstance(v, int) and not (isinstance(v, str) and v.isdigit())):
        raise ConfigError(f"expected a whole number, got {v!r}", file=_file(spec), key=f"settings.{key}")
    n = int(v)
    if n < minimum:
        raise ConfigError(f"must be at least {minimum}, got {n}", file=_file(spec), key=f"settings.{key}")
    return n


def setting_bool(spec: ClusterSpec, key: str, default: bool) -> bool:
    v = spec.settings.get(key, default)
    if not isinstance(v, bool):
        raise ConfigError(f"expected true or false, got {v!r}", file=_file(spec), key=f"settings.{key}")
    return v


def region(spec: ClusterSpec) -> str:
    """A cloud region: ``settings.region``, else the entry's ``region`` unless it is "local"."""
    r = setting_str(spec, "region", fallback=None if spec.region == "local" else spec.region, required=True)
    assert r is not None
    return r


def require_module(provider: str, module: str) -> ModuleType:
    """Import a cloud SDK, or say which fleet extra installs it."""
    extra = EXTRAS.get(provider, ((), ""))[1]
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise ToolMissing(
            f"the {provider} provider needs the Python package {module.replace('_', '-')} (not installed)",
            hint=f'pip install "fleet[{extra}]"',
        ) from e


def _modules() -> dict[str, str]:
    return {
        "local": "clusters.providers.local",
        "kind": "clusters.providers.kind",
        "eks": "clusters.providers.eks",
        "gke": "clusters.providers.gke",
        "aks": "clusters.providers.aks",
    }


def _module(spec: ClusterSpec) -> ModuleType:
    if spec.provider not in PROVIDERS:
        raise ConfigError(
            f'unknown provider "{spec.provider}"; known: {", ".join(PROVIDERS)}',
            file=_file(spec),
            key="provider",
        )
    return importlib.import_module(_modules()[spec.provider])


def check(spec: ClusterSpec) -> None:
    """Bad input for the provider (missing settings, SDK not installed) raises here, before any change."""
    mod = _module(spec)
    packages, extra = EXTRAS.get(spec.provider, ((), ""))
    for pkg in packages:
        if importlib.util.find_spec(pkg) is None:
            raise ToolMissing(
                f'cluster "{spec.name}" uses the {spec.provider} provider, which needs the Python package '
                f"{pkg.replace('_', '-')}",
                hint=f'pip install "fleet[{extra}]"',
            )
    checker: Callable[[ClusterSpec], None] = mod.check
    checker(spec)


def create(spec: ClusterSpec, opts: pulumi.ResourceOptions | None = None) -> ClusterComponent:
    """The cluster component of ``spec.provider``."""
    factory: Callable[[ClusterSpec, pulumi.ResourceOptions | None], ClusterComponent] = _module(spec).create
    return factory(spec, opts)
