"""Server-side apply, delete and existence checks of YAML manifests with the toolchain's kubectl.

Used by the dynamic providers (they run in the ``pulumi-resource-pulumi-python`` plugin process).
The kubeconfig is written to a private temp file for each call; nothing is left behind.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from fleet import toolchain
from fleet.adapters import proc
from fleet.errors import InputError, KubeError, Unreachable

__all__ = [
    "FIELD_MANAGER",
    "ObjectRef",
    "apply",
    "delete",
    "existing",
    "parse_manifests",
    "refs",
    "sha256",
    "to_yaml",
]

FIELD_MANAGER = "fleet-pulumi"
_FIRST_KINDS = ("Namespace", "CustomResourceDefinition")
# What kubectl says when nothing listens at the API server's address (the cluster is gone).
_NO_TYPE = ("no matches for kind", "doesn't have a resource type")  # their CRD is gone: so are they
_GONE = ("connection refused", "no such host", "was refused", "no route to host")


@dataclass(frozen=True, order=True)
class ObjectRef:
    """An object's identity: group, kind, namespace and name."""

    group: str
    kind: str
    namespace: str
    name: str

    def __str__(self) -> str:
        kind = f"{self.kind}.{self.group}" if self.group else self.kind
        return f"{kind}/{self.namespace}/{self.name}" if self.namespace else f"{kind}/{self.name}"


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def parse_manifests(text: str) -> list[dict[str, Any]]:
    """The objects of a multi-document YAML stream (empty documents dropped, Lists flattened)."""
    try:
        docs = [d for d in yaml.safe_load_all(text) if d]
    except yaml.YAMLError as e:
        raise InputError(f"manifests are not valid YAML: {e}") from e
    out: list[dict[str, Any]] = []
    for d in docs:
        if not isinstance(d, dict) or "kind" not in d or "apiVersion" not in d:
            raise InputError("every manifest needs apiVersion and kind")
        if d["kind"].endswith("List") and isinstance(d.get("items"), list):
            out.extend(i for i in d["items"] if isinstance(i, dict))
        else:
            out.append(d)
    return out


def to_yaml(objs: Sequence[dict[str, Any]]) -> str:
    return "".join("---\n" + yaml.safe_dump(o, sort_keys=True) for o in objs)


def ref_of(obj: dict[str, Any]) -> ObjectRef:
    api = str(obj["apiVersion"])
    group = api.rsplit("/", 1)[0] if "/" in api else ""
    meta = obj.get("metadata") or {}
    return ObjectRef(group, str(obj["kind"]), str(meta.get("namespace") or ""), str(meta.get("name") or ""))


def refs(text: str) -> list[ObjectRef]:
    return [ref_of(o) for o in parse_manifests(text)]


@contextmanager
def _kubeconfig_file(kubeconfig: str) -> Iterator[Path]:
    fd, name = tempfile.mkstemp(prefix="fleet-kubeconfig-", suffix=".yaml")
    try:
        with os.fdopen(fd, "w") as f:  # mkstemp creates it 0600
            f.write(kubeconfig)
        yield Path(name)
    finally:
        Path(name).unlink(missing_ok=True)


def _kubectl(kubeconfig: Path, args: Sequence[str], stdin: str | None, timeout: float) -> proc.Completed:
    return proc.run(
        [toolchain.find("kubectl"), "--kubeconfig", str(kubeconfig), *args],
        input=stdin,
        env=toolchain.env_with_toolchain(),
        timeout=timeout,
        error=KubeError,
    )


def _fail(what: str, done: proc.Completed) -> KubeError:
    tail = " | ".join((done.stderr.strip() or done.stdout.strip()).splitlines()[-4:])
    if any(s in tail.lower() for s in _GONE):
        return Unreachable(f"{what}: the API server cannot be reached: {tail}")
    return KubeError(f"{what} failed: {tail}")


def apply(kubeconfig: str, text: str, *, timeout: float = 180) -> list[ObjectRef]:
    """Server-side apply every object; Namespaces and CRDs first (waiting until CRDs are Established)."""
    objs = parse_manifests(text)
    first = [o for o in objs if o["kind"] in _FIRST_KINDS]
    rest = [o for o in objs if o["kind"] not in _FIRST_KINDS]
    with _kubeconfig_file(kubeconfig) as kc:
        for batch in (first, rest):
            if not batch:
                continue
            done = _kubectl(
                kc,
                [
                    "apply",
                    "--server-side",
                    f"--field-manager={FIELD_MANAGER}",
                    "--force-conflicts",
                    "-f",
                    "-",
                ],
                to_yaml(batch),
                timeout,
            )
            if not done.ok:
                raise _fail(f"applying {len(batch)} objects", done)
            crds = [f"crd/{o['metadata']['name']}" for o in batch if o["kind"] == "CustomResourceDefinition"]
            if crds:
                done = _kubectl(kc, ["wait", "--for=condition=Established", "--timeout=60s", *crds], None, 90)
                if not done.ok:
                    raise _fail("waiting for CRDs to be Established", done)
    return [ref_of(o) for o in objs]


def delete(kubeconfig: str, text: str, *, timeout: float = 180, gone_ok: bool = True) -> None:
    """Delete the objects (reverse order: CRDs and Namespaces last). Missing objects are fine; so is
    a cluster that no longer answers at all when ``gone_ok`` (its objects went with it)."""
    objs = parse_manifests(text)
    first = [o for o in objs if o["kind"] in _FIRST_KINDS]
    rest = [o for o in objs if o["kind"] not in _FIRST_KINDS]
    with _kubeconfig_file(kubeconfig) as kc:
        for batch in (rest[::-1], first[::-1]):
            if not batch:
                continue
            done = _kubectl(
                kc,
                # --wait=false: deletion is requested, not waited for (a Namespace finalizes on its own;
                # when the whole cluster goes, nothing is left to wait for)
                ["delete", "--ignore-not-found", "--wait=false", f"--timeout={int(timeout)}s", "-f", "-"],
                to_yaml(batch),
                timeout + 30,
            )
            if not done.ok:
                err = _fail(f"deleting {len(batch)} objects", done)
                if gone_ok and isinstance(err, Unreachable):
                    return
                raise err


def existing(kubeconfig: str, text: str, *, timeout: float = 60) -> int:
    """How many of the objects exist on the cluster."""
    objs = parse_manifests(text)
    if not objs:
        return 0
    with _kubeconfig_file(kubeconfig) as kc:
        done = _kubectl(kc, ["get", "--ignore-not-found", "-o", "name", "-f", "-"], to_yaml(objs), timeout)
    if not done.ok and not any(s in done.stderr for s in _NO_TYPE):
        raise _fail(f"reading {len(objs)} objects", done)
    return len([ln for ln in done.stdout.splitlines() if ln.strip()])
