"""How fleet reaches a cluster: which kubeconfig and context.

In order: the kubeconfig provisioning wrote for the cluster (``$FLEET_HOME/kubeconfigs/<name>.yaml``,
from the Pulumi stack's kubeconfig output), else the registry entry's ``access`` (a context and/or a
kubeconfig path outside the repo: credentials never live in Git), else an error with a next step.

A kubeconfig runs code (exec plugins, auth providers) and reads files (``tokenFile``, certificate paths),
so the one the registry names must be the user's own, as kubectl trusts only the user's configuration: a
path outside the repository (the registry loader refuses one that leads into it), a regular file owned by
this user that nobody else may write, whose ``tokenFile`` entries are files of the same kind, never under
``/proc``, ``/sys`` or ``/dev`` (a token file naming ``/proc/self/environ`` would send the environment as a
bearer token). Anything else is refused (exit 2) before a client is made.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fleet.errors import InputError, NotFound
from fleet.paths import fleet_home
from fleet.registry.model import ClusterSpec

if TYPE_CHECKING:  # importing the kube adapter loads the kubernetes client: only when it is needed
    from fleet.adapters.kube import KubeTarget

__all__ = ["check_own_kubeconfig", "kubeconfig_cache_path", "kubeconfig_for"]


def kubeconfig_cache_path(name: str) -> Path:
    """Where provisioning writes (and fleet reads) the kubeconfig of cluster ``name``."""
    return fleet_home() / "kubeconfigs" / f"{name}.yaml"


def kubeconfig_for(cluster: ClusterSpec) -> KubeTarget:
    """The kubeconfig and context fleet uses for ``cluster``."""
    from fleet.adapters.kube import KubeTarget

    cached = kubeconfig_cache_path(cluster.name)
    if cached.is_file():
        return KubeTarget(cluster.name, cached, None, source=f"provisioned ({cached})")
    access = cluster.access
    if access is not None and (access.context or access.kubeconfig):
        kubeconfig = Path(access.kubeconfig).expanduser() if access.kubeconfig else None
        if kubeconfig is not None:
            check_own_kubeconfig(kubeconfig, cluster.name)
        where = f"context {access.context!r}" if access.context else "current context"
        return KubeTarget(
            cluster.name, kubeconfig, access.context,
            source=f"registry access: {where} of {kubeconfig or 'the default kubeconfig'}",
        )
    raise NotFound(
        f'no kubeconfig for cluster "{cluster.name}": it was not provisioned by fleet and '
        f"clusters/{cluster.name}.yaml has no access.context",
        hint=f"run `fleet provision {cluster.name}`, or set access.context (and access.kubeconfig) "
        f"in clusters/{cluster.name}.yaml",
    )


_SPECIAL = (Path("/proc"), Path("/sys"), Path("/dev"))


def _own_file(path: Path, what: str, cluster: str) -> bool:
    """Refuse ``path`` unless it is a regular file of this user that nobody else may write; False when it
    does not exist (the client then says so, and nothing was run or read)."""
    real = Path(os.path.realpath(path))
    if any(real == s or s in real.parents for s in _SPECIAL):
        raise InputError(f'{what} of cluster "{cluster}" is {real}, not a file of yours: refused')
    try:
        st = real.stat()
    except FileNotFoundError:
        return False
    except OSError as e:
        raise InputError(f'{what} of cluster "{cluster}" ({path}) cannot be read: {e.strerror or e}') from None
    if not stat.S_ISREG(st.st_mode):
        raise InputError(f'{what} of cluster "{cluster}" ({path}) is not a regular file: refused')
    if st.st_uid != os.getuid():
        raise InputError(f'{what} of cluster "{cluster}" ({path}) belongs to another user (uid {st.st_uid}): '
                         "fleet uses only your own kubeconfigs, as kubectl does",
                         hint="copy it to a file of yours (mode 0600) and name that in access.kubeconfig")
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise InputError(f'{what} of cluster "{cluster}" ({path}) may be written by others (mode '
                         f"{stat.S_IMODE(st.st_mode):04o}): refused",
                         hint=f"chmod go-w {path}")
    return True


def check_own_kubeconfig(path: Path, cluster: str) -> None:
    """The kubeconfig the registry names for ``cluster`` is the user's own, and so is every ``tokenFile`` it
    names (see the module docstring); InputError (exit 2) otherwise. A missing file is left to the client."""
    if not _own_file(path, "the kubeconfig", cluster):
        return
    import yaml

    try:
        doc: Any = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return  # the client reads it and says what is wrong with it
    users = doc.get("users") if isinstance(doc, dict) else None
    for entry in users if isinstance(users, list) else []:
        user = entry.get("user") if isinstance(entry, dict) else None
        token_file = user.get("tokenFile") if isinstance(user, dict) else None
        if token_file:
            p = Path(str(token_file)).expanduser()
            _own_file(p if p.is_absolute() else path.parent / p, "a tokenFile in the kubeconfig", cluster)
