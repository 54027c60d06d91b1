"""Flux's objects for one cluster, as plain dicts and YAML: the install set (CRDs and controllers), the
fleet repo's GitRepository (and its credentials Secret), and the Kustomization of the cluster's overlay.

Where the install set comes from (``operator.source`` in fleet.yaml):

- ``toolchain`` (the default): for ``local`` clusters, the CRDs (and RBAC) of source-controller and
  kustomize-controller that ``make toolchain`` extracted from the controllers' Go modules
  (``$FLEET_TOOLCHAIN_DIR/share/flux``), made into an install set here, without the controller
  Deployments: the controllers themselves run as processes beside the cluster; for every other
  provider, the official release's ``install.yaml`` of ``operator.version`` (a toolchain is a local thing);
- a URL or a path to an ``install.yaml``: used as it is, for every provider.
"""

from __future__ import annotations

import base64
import re
from pathlib import Path
from typing import Any

import yaml

from fleet import toolchain
from fleet.adapters import net
from fleet.errors import ConfigError, InputError
from fleet.rendering.build import cluster_vars, overlay_dir
from fleet.rendering.fluxtree import OPERATOR_NAME, operator_name
from fleet.stackconfig import StackConfig, flux_git_url

__all__ = [
    "AUTH_SECRET",
    "CONTROLLERS",
    "NAMESPACE",
    "SOURCE_NAME",
    "VERIFY_SECRET",
    "git_auth_secret",
    "git_repository",
    "install_objects",
    "install_source",
    "kustomization",
    "kustomization_path",
    "object_name",
    "release_url",
    "verify_keys_secret",
]

NAMESPACE = "flux-system"
SOURCE_NAME = OPERATOR_NAME  # the GitRepository and the Kustomization (flux-system for a Flux directory)
RECONCILE_DISABLED = ("kustomize.toolkit.fluxcd.io/reconcile", "disabled")
AUTH_SECRET = "fleet-git-auth"
VERIFY_SECRET = "fleet-verify-keys"  # spec.verify.secretRef of the GitRepository: public keys (fleet.yaml verify:)
SOPS_SECRET = "sops-age"  # spec.decryption.secretRef of the Kustomization (fleet.sops.SECRET_NAME)
SOPS_SECRET_KEY = "age.agekey"  # Flux reads age identities from keys ending in .agekey
CONTROLLERS = ("source-controller", "kustomize-controller")
RELEASES = "https://github.com/fluxcd/flux2/releases/download"
_LABELS = {"app.kubernetes.io/part-of": "flux", "app.kubernetes.io/managed-by": "fleet"}


def release_url(version: str) -> str:
    """The official install.yaml of a Flux release (``v2.7`` means ``v2.7.0``)."""
    v = version if version.startswith("v") else f"v{version}"
    if re.fullmatch(r"v\d+\.\d+", v):
        v += ".0"
    if not re.fullmatch(r"v\d+\.\d+\.\d+(-[\w.]+)?", v):
        raise ConfigError(
            f'"{version}" is not a Flux version (like v2.7.0)', file="fleet.yaml", key="operator.version"
        )
    return f"{RELEASES}/{v}/install.yaml"


def install_source(cfg: StackConfig) -> str:
    """``toolchain``, or the URL/path of the install.yaml this cluster gets."""
    src = cfg.settings.operator.source
    if src == "toolchain":
        return "toolchain" if cfg.cluster.provider == "local" else release_url(cfg.settings.operator.version)
    return src


def _toolchain_objects() -> list[dict[str, Any]]:
    root = toolchain.flux_manifests_dir()
    objs: list[dict[str, Any]] = [
        {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": NAMESPACE, "labels": {**_LABELS, "app.kubernetes.io/instance": NAMESPACE}},
        }
    ]
    for ctl in CONTROLLERS:
        for f in sorted((root / ctl / "crds").glob("*.yaml")):
            objs.extend(d for d in yaml.safe_load_all(f.read_text()) if d)
    for ctl in CONTROLLERS:
        manager = root / ctl / "manager"
        kust = yaml.safe_load((manager / "kustomization.yaml").read_text()) or {}
        objs.append(
            {
                "apiVersion": "v1",
                "kind": "ServiceAccount",
                "metadata": {"name": ctl, "namespace": NAMESPACE, "labels": dict(_LABELS)},
            }
        )
        for res in kust.get("resources", []):
            for d in yaml.safe_load_all((manager / res).read_text()):
                if not d:
                    continue
                if d["kind"] in ("Deployment", "Service"):
                    # A local cluster's controllers run as processes beside it (fleet.local.flux): on kwok a
                    # controller Deployment would only get fake pods that look healthy and do nothing.
                    continue
                d.setdefault("metadata", {})["namespace"] = NAMESPACE
                d["metadata"].setdefault("labels", {}).update(_LABELS)
                objs.append(d)
    objs.append(
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": f"cluster-reconciler-{NAMESPACE}", "labels": dict(_LABELS)},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": "cluster-admin",
            },
            "subjects": [{"kind": "ServiceAccount", "name": c, "namespace": NAMESPACE} for c in CONTROLLERS],
        }
    )
    return objs


def _read_source(src: str) -> str:
    if src.startswith(("http://", "https://")):
        try:
            return net.fetch(src, timeout=60).decode()  # a URL the user configured
        except OSError as e:
            raise InputError(
                f'cannot download the Flux install manifests from "{src}": {e}',
                hint="set operator.source in fleet.yaml to a reachable URL or a local path",
            ) from e
    path = Path(src.removeprefix("file://")).expanduser()
    if not path.is_file():
        raise ConfigError(
            f'Flux install manifests "{src}" not found', file="fleet.yaml", key="operator.source"
        )
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        raise ConfigError("cannot read the Flux install manifests as UTF-8 text", file="fleet.yaml",
                          key="operator.source") from None


def install_objects(cfg: StackConfig) -> list[dict[str, Any]]:
    """Flux's CRDs, namespace and controllers for this cluster."""
    src = install_source(cfg)
    if src == "toolchain":
        return _toolchain_objects()
    try:
        docs = [d for d in yaml.safe_load_all(_read_source(src)) if d]
    except yaml.YAMLError as e:  # the line number, never the text: nothing of the file is echoed
        mark = getattr(e, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"the Flux install manifests are not valid YAML{at}", file="fleet.yaml",
                          key="operator.source") from None
    if not all(isinstance(d, dict) for d in docs):
        raise ConfigError("the Flux install manifests are not Kubernetes objects", file="fleet.yaml",
                          key="operator.source")
    return docs


def git_repository(cfg: StackConfig, *, with_auth: bool) -> dict[str, Any]:
    """The fleet repo as a GitRepository: pinned to ``cfg.revision`` (``ref.commit``), else following
    the branch."""
    ref: dict[str, str] = {"branch": cfg.branch}
    if cfg.revision:
        ref["commit"] = cfg.revision
    spec: dict[str, Any] = {
        "interval": cfg.settings.operator.interval,
        "url": flux_git_url(cfg.repo_url),
        "ref": ref,
        "timeout": "60s",
    }
    if with_auth:
        spec["secretRef"] = {"name": AUTH_SECRET}
    if cfg.verify_keys:  # fleet.yaml verify: mode head; Flux refuses a commit these keys did not sign
        spec["verify"] = {"mode": "HEAD", "secretRef": {"name": VERIFY_SECRET}}
    return {
        "apiVersion": "source.toolkit.fluxcd.io/v1",
        "kind": "GitRepository",
        "metadata": _metadata(cfg),
        "spec": spec,
    }


def kustomization_path(cfg: StackConfig) -> str:
    """What the operator applies: the cluster's own Flux directory (``source.flux``), else its environment's
    overlay where fleet.yaml's ``environments.path`` puts it."""
    if cfg.cluster.source is not None:
        return f"./{cfg.cluster.source.flux}"
    return f"./{overlay_dir(cfg.cluster.environment, cfg.settings.layout)}"


def kustomization(cfg: StackConfig) -> dict[str, Any]:
    """The cluster's environment overlay (or its Flux directory) with its variables, pruned, health-checked,
    with a timeout."""
    gates = cfg.cluster.gates or cfg.settings.gates
    spec: dict[str, Any] = {
        "interval": cfg.settings.operator.interval,
        "retryInterval": cfg.settings.operator.interval,
        "path": kustomization_path(cfg),
        "prune": True,
        "wait": True,  # health checks: every object it applies must become Ready
        "timeout": f"{gates.timeout}s",
        "sourceRef": {"kind": "GitRepository", "name": object_name(cfg)},
        "postBuild": {"substitute": cluster_vars(cfg.cluster)},
    }
    if cfg.settings.secrets.sops is not None:  # kustomize-controller decrypts SOPS (age) natively
        spec["decryption"] = {"provider": "sops", "secretRef": {"name": SOPS_SECRET}}
    return {
        "apiVersion": "kustomize.toolkit.fluxcd.io/v1",
        "kind": "Kustomization",
        "metadata": _metadata(cfg),
        "spec": spec,
    }


def object_name(cfg: StackConfig) -> str:
    """The operator's GitRepository and Kustomization: ``fleet``, or ``flux-system`` on a cluster of a Flux
    directory (the names ``flux bootstrap`` gives them, which the directory's own Kustomizations build from)."""
    return operator_name(cfg.cluster.source is not None)


def _metadata(cfg: StackConfig) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": object_name(cfg), "namespace": NAMESPACE, "labels": _cluster_labels(cfg)}
    if cfg.cluster.source is not None:
        # The directory holds its own flux-system GitRepository and Kustomization (following the team's
        # branch): kustomize-controller applies no object over, and prunes none of, an in-cluster object so
        # annotated, so fleet's pinned ones stand (docs/adopting.md).
        meta["annotations"] = {RECONCILE_DISABLED[0]: RECONCILE_DISABLED[1]}
    return meta


def _secret(name: str, data: dict[str, bytes]) -> dict[str, Any]:
    """A Secret of fleet's in ``flux-system``; ``data``, not stringData: server-side apply tracks data's fields."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": {"name": name, "namespace": NAMESPACE, "labels": dict(_LABELS)},
        "data": {k: base64.b64encode(v).decode() for k, v in sorted(data.items())},
    }


def git_auth_secret(auth: dict[str, str]) -> dict[str, Any]:
    return _secret(AUTH_SECRET, {k: v.encode() for k, v in auth.items()})


def sops_age_secret(identity: str) -> dict[str, Any]:
    """``flux-system/sops-age``: the age identity under ``age.agekey``, where Flux's kustomize-controller
    reads it (``spec.decryption.secretRef``)."""
    return _secret(SOPS_SECRET, {SOPS_SECRET_KEY: identity.strip().encode() + b"\n"})


def verify_keys_secret(keys: dict[str, str]) -> dict[str, Any]:
    """``flux-system/fleet-verify-keys``: the public keys source-controller verifies commits with, OpenPGP
    under ``*.asc`` and SSH (authorized_keys lines) under ``*.sshpub`` (:func:`fleet.verify.flux_keys`)."""
    return _secret(VERIFY_SECRET, {k: v.encode() for k, v in keys.items()})


def _cluster_labels(cfg: StackConfig) -> dict[str, str]:
    return {
        **_LABELS,
        "fleet.dev/cluster": cfg.cluster.name,
        "fleet.dev/environment": cfg.cluster.environment,
    }
