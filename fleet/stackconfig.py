"""The contract between fleet and its Pulumi program: what a cluster's stack config holds.

fleet writes it (:mod:`fleet.provision`, from the registry entry) and the program in ``clusters/``
reads it, so both sides import this module and nothing else of each other. Keys live in the
``fleet`` namespace of the stack config (the Pulumi project is named ``fleet``)::

    fleet:cluster    the cluster's registry entry (ClusterSpec as JSON)
    fleet:settings   fleet.yaml (FleetSettings as JSON)
    fleet:repoUrl    what the operator clones (http(s) or ssh)
    fleet:branch     the branch the operator follows
    fleet:revision   the commit the operator is pinned to ("" = follow the branch)
    fleet:verifyKeys the public keys the operator verifies commit signatures with (fleet.yaml verify:), JSON
                     {name.asc|name.sshpub: key}; {} when no signature is required
    fleet:gitAuth    secret: the Git credentials for the operator, JSON (username/password or
                     identity/known_hosts); set only when given, never read from the repo
    fleet:sopsAgeKey secret: the age identity Flux decrypts SOPS secrets with (fleet.yaml secrets.sops),
                     read from its key source outside the repo at each provision
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass

from fleet.errors import InputError
from fleet.registry.model import ClusterSpec, FleetSettings

__all__ = [
    "GIT_AUTH_KEY",
    "GIT_AUTH_KEYS",
    "PROJECT",
    "SOPS_AGE_KEY",
    "StackConfig",
    "flux_git_url",
    "parse_git_auth",
]

PROJECT = "fleet"
GIT_AUTH_KEY = "gitAuth"
SOPS_AGE_KEY = "sopsAgeKey"
# The data keys Flux's GitRepository reads from its secretRef (basic auth or SSH).
GIT_AUTH_KEYS = ("username", "password", "bearerToken", "identity", "identity.pub", "known_hosts")
_SHA = re.compile(r"^[0-9a-f]{40}([0-9a-f]{24})?$")
_SCP = re.compile(r"^(?P<user>[\w.-]+)@(?P<host>[\w.-]+):(?P<path>[^/].*)$")


@dataclass(frozen=True)
class StackConfig:
    """Everything the program needs to provision one cluster and point its operator at the repo."""

    cluster: ClusterSpec
    settings: FleetSettings
    repo_url: str
    branch: str
    revision: str | None = None  # a full commit id when pinned
    # Flux's GitRepository verifies with these (spec.verify): (Secret data key, public keys), from the
    # working tree's fleet.yaml verify: (fleet.verify.flux_keys), never from the pinned revision
    verify_keys: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        if self.revision is not None and not _SHA.match(self.revision):
            raise InputError(f'revision "{self.revision}" is not a full commit id')

    @property
    def stack(self) -> str:
        """One stack per cluster, named after it."""
        return self.cluster.name

    def values(self) -> dict[str, str]:
        """The plain (non-secret) config values, keys without the ``fleet:`` namespace."""
        return {
            "cluster": self.cluster.model_dump_json(),
            "settings": self.settings.model_dump_json(),
            "repoUrl": self.repo_url,
            "branch": self.branch,
            "revision": self.revision or "",
            "verifyKeys": json.dumps(dict(self.verify_keys), sort_keys=True),
        }

    @classmethod
    def parse(cls, get: Callable[[str], str | None]) -> StackConfig:
        """Read it back with ``get(key)`` (``pulumi.Config("fleet").get`` in the program)."""

        def need(key: str) -> str:
            v = get(key)
            if v is None:
                raise InputError(
                    f'stack config "{PROJECT}:{key}" is missing',
                    hint="fleet sets it from the registry: run `fleet provision CLUSTER`",
                )
            return v

        return cls(
            cluster=ClusterSpec.model_validate_json(need("cluster")),
            settings=FleetSettings.model_validate_json(need("settings")),
            repo_url=need("repoUrl"),
            branch=need("branch"),
            revision=get("revision") or None,
            verify_keys=_verify_keys(get("verifyKeys")),
        )


def _verify_keys(text: str | None) -> tuple[tuple[str, str], ...]:
    try:
        data = json.loads(text or "{}")
    except ValueError as e:
        raise InputError(f'stack config "{PROJECT}:verifyKeys" is not JSON: {e}') from e
    if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
        raise InputError(f'stack config "{PROJECT}:verifyKeys" must map key names to public keys')
    return tuple(sorted((str(k), v) for k, v in data.items()))


def parse_git_auth(text: str | None, *, source: str = GIT_AUTH_KEY) -> dict[str, str]:
    """The Git credentials (a JSON or YAML mapping of Flux secret keys); {} when there are none."""
    if not text:
        return {}
    import yaml

    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise InputError(f"{source}: not valid YAML or JSON: {e}") from e
    if not isinstance(data, dict) or not all(isinstance(v, (str, int)) for v in data.values()):
        raise InputError(f"{source}: expected a mapping of strings ({', '.join(GIT_AUTH_KEYS)})")
    unknown = sorted(set(map(str, data)) - set(GIT_AUTH_KEYS))
    if unknown:
        raise InputError(f"{source}: unknown key {unknown[0]!r}; allowed: {', '.join(GIT_AUTH_KEYS)}")
    if not ({"username", "password"} <= data.keys() or "identity" in data or "bearerToken" in data):
        raise InputError(f"{source}: give username and password, a bearerToken, or an ssh identity")
    return {str(k): str(v) for k, v in data.items()}


def flux_git_url(url: str) -> str:
    """The fleet repo's URL as Flux's GitRepository accepts it (http, https or ssh).

    ``git@host:org/repo.git`` becomes ``ssh://git@host/org/repo.git``; local paths and ``file://``
    are refused: the operator runs in the cluster and cannot read this machine's disk.
    """
    u = url.strip()
    if re.match(r"^(https?|ssh)://", u):
        return u
    m = _SCP.match(u)
    if m:
        return f"ssh://{m['user']}@{m['host']}/{m['path']}"
    raise InputError(
        f'git url "{url}" is not an http(s) or ssh URL the operator can clone',
        hint="set git.url in fleet.yaml (e.g. https://git.example.com/platform/fleet.git)",
    )
