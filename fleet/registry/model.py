"""The fleet repo's schema: ``fleet.yaml`` and ``clusters/<name>.yaml``, as typed frozen objects.

Parsed once, at the edge (:mod:`fleet.registry.load`); everything above works with these.
``fleet schema`` exports them as JSON Schema for editors.
"""

from __future__ import annotations

import difflib
import functools
import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from fleet.registry.layout import DEFAULT_ENVIRONMENTS, DEFAULT_REGISTRY, Layout, path_problem

__all__ = [
    "DNS_LABEL",
    "MAX_TEXT",
    "MAX_VALUE",
    "VAR_NAME",
    "ClusterSource",
    "ClusterSpec",
    "CustomGate",
    "EnvironmentsLayout",
    "FleetSettings",
    "GateSettings",
    "KubeAccess",
    "OperatorSettings",
    "Provider",
    "RecoveryDefaults",
    "RecoveryObjective",
    "RegistryLayout",
    "SecretsSettings",
    "SopsKeySource",
    "SopsSettings",
    "VerifySettings",
    "check_text",
    "check_url",
    "duration_problem",
    "parse_duration",
    "shown",
    "text_problem",
    "url_problem",
]

# \Z, not $: "$" also matches before a final newline, and "eu-1\n" is no DNS label
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?\Z")
LABEL_NAME = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?\Z")
DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\Z")
VAR_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*\Z")  # as Flux's postBuild checks variable names
MAX_VALUE = 8192  # a variable's value
MAX_TEXT = 1024  # any other free-text value (region, settings, reasons)

# Characters refused in every value fleet stores or prints: C0/C1 controls (newlines, tabs, ESC...),
# DEL, line and paragraph separators, bidirectional overrides (text that reads one way and is another),
# and lone surrogates (bytes that were not UTF-8 on the command line).
_BAD_CHAR = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069\ud800-\udfff]")


def shown(value: str, limit: int = 80) -> str:
    """``value`` for a one-line message: control characters escaped, cut at ``limit``."""
    out = _BAD_CHAR.sub(lambda m: f"\\u{ord(m.group()):04x}", value)
    return out if len(out) <= limit else out[:limit] + "..."


def text_problem(value: str, limit: int = MAX_TEXT, *, echo: bool = True) -> str | None:
    """Why ``value`` cannot be stored (a control character, too long), or None. Without ``echo`` the
    value itself is left out of the message (it may be a secret)."""
    what = f'"{shown(value, 40)}" ' if echo else ""
    bad = _BAD_CHAR.search(value)
    if bad:
        c = bad.group()
        kind = "bytes that are not UTF-8" if 0xD800 <= ord(c) <= 0xDFFF else "a control character"
        return f"{what}contains {kind} (U+{ord(c):04X} at position {bad.start()})"
    if len(value) > limit:
        return f"{what}is too long ({len(value)} characters; at most {limit})"
    return None


def check_text(value: str, limit: int = MAX_TEXT) -> str:
    """A pydantic validator body: ``value`` when it can be stored, else ValueError saying why."""
    problem = text_problem(value, limit)
    if problem:
        raise ValueError(problem)
    return value


_SCP_LIKE = re.compile(r"^(?P<user>[^@/:]+(?::(?P<password>[^@/]*))?)@[^:/]+:")
_SECRET_QUERY = re.compile(r"(?:^|[?&;])(?:access_token|private_token|token|password|passwd|secret|key)=", re.I)


def url_problem(url: str) -> str | None:
    """Why ``url`` must not be stored in Git (credentials in it), or None. Refused: a password in any URL,
    any user name in an http(s) URL (a token is often passed as the user name), and credential-looking
    query parameters. ``ssh://git@host/...`` and ``git@host:org/repo.git`` (user name only) are fine."""
    from urllib.parse import urlsplit

    if url.startswith("-") or url.strip() != url:
        return "starts with \"-\" or has spaces around it (git would read it as an option)"
    m = _SCP_LIKE.match(url)
    if m and "://" not in url.split("@", 1)[0]:
        return "holds a password" if m["password"] is not None else None
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if parts.password is not None or (parts.netloc and ":" in parts.netloc.rpartition("@")[0]):
        return "holds credentials (user:password@)"
    if parts.username and parts.scheme.lower() in ("http", "https"):
        return "holds a user name or token (user@)"
    if _SECRET_QUERY.search(parts.query):
        return "holds a credential in its query string"
    return None


def check_url(url: str) -> str:
    problem = url_problem(url)
    if problem:
        host = url.rpartition("@")[2].split("?", 1)[0] if "@" in url else url.split("?", 1)[0]
        if problem.startswith("starts with"):
            raise ValueError(f"the URL {problem}; give a URL (https://..., ssh://..., git@host:path)")
        raise ValueError(
            f"the URL {problem}; credentials never go into the fleet repo (URL ...@{host}): "
            "give git its credentials from outside the repo (a credential helper, ~/.git-credentials, "
            "GIT_ASKPASS or an SSH key)"
        )
    return url


def _check_strings(data: object, limit: int = MAX_TEXT) -> None:
    """Every string in ``data`` (keys and values, nested) must be storable."""
    if isinstance(data, str):
        check_text(data, limit)
    elif isinstance(data, dict):
        for k, v in data.items():
            _check_strings(k, limit)
            _check_strings(v, limit)
    elif isinstance(data, (list, tuple)):
        for v in data:
            _check_strings(v, limit)
Provider = Literal["local", "kind", "eks", "gke", "aks"]
PROVIDERS: tuple[str, ...] = ("local", "kind", "eks", "gke", "aks")
# The ``settings`` each provider reads (clusters/providers/*.py): any other key is refused at load, not
# dropped silently (a typo would otherwise provision with the default).
PROVIDER_SETTINGS: dict[str, tuple[str, ...]] = {
    "local": ("nodes", "kubeVersion"),
    "kind": ("nodes", "image", "kubeVersion"),
    "eks": ("region", "nodes", "clusterName", "instanceType", "minNodes", "maxNodes", "kubeVersion", "subnetIds",
            "vpcId"),
    "gke": ("project", "region", "deletionProtection", "releaseChannel", "kubeVersion", "nodes", "machineType"),
    "aks": ("region", "nodes", "vmSize", "kubeVersion", "resourceGroup", "subscriptionId"),
}
# Built-in kinds (and Flux's) that live in a namespace: a custom gate on one must name its namespace. A kind
# not listed here (a CRD's) is checked against the server when the gates start.
NAMESPACED_KINDS = frozenset({
    "Pod", "Service", "ConfigMap", "Secret", "ServiceAccount", "PersistentVolumeClaim", "Endpoints", "Event",
    "LimitRange", "ResourceQuota", "ReplicationController", "Deployment", "StatefulSet", "DaemonSet", "ReplicaSet",
    "ControllerRevision", "Job", "CronJob", "Ingress", "NetworkPolicy", "Role", "RoleBinding",
    "HorizontalPodAutoscaler", "PodDisruptionBudget", "Lease", "EndpointSlice",
    "Kustomization", "GitRepository", "OCIRepository", "HelmRepository", "HelmChart", "HelmRelease", "Bucket",
})
_KIND = re.compile(r"^[A-Z][A-Za-z0-9]{0,62}\Z")
_API_VERSION = re.compile(r"^(?:[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?/)?v[0-9]+(?:(?:alpha|beta)[0-9]+)?\Z")


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    @field_validator("*", mode="before")
    @classmethod
    def _no_control_characters(cls, v: Any, info: ValidationInfo) -> Any:
        """Free text in every field: no control characters, bounded length. Variables' values have
        their own bound and are never echoed (ClusterSpec)."""
        if info.field_name != "vars":
            _check_strings(v)
        return v


class CustomGate(_Frozen):
    """A gate a user declares: a condition on any object must have a status (default ``True``)."""

    # Checked at load (exit 2): a name the API server would refuse, a namespace that is no DNS label, a
    # namespaced built-in kind without a namespace; none of them waits out a gate timeout.

    apiVersion: str
    kind: str
    name: str
    namespace: str | None = None
    condition: str = "Ready"
    status: str = "True"

    @field_validator("apiVersion")
    @classmethod
    def _api_version(cls, v: str) -> str:
        if not _API_VERSION.match(v):
            raise ValueError(f'"{shown(v)}" is not an apiVersion (v1, apps/v1, example.com/v1beta1)')
        return v

    @field_validator("kind")
    @classmethod
    def _kind(cls, v: str) -> str:
        if not _KIND.match(v):
            raise ValueError(f'"{shown(v)}" is not a kind (Deployment, Kustomization, ...)')
        return v

    @field_validator("name")
    @classmethod
    def _object_name(cls, v: str) -> str:
        # what the API server requires of every object name (a path segment): not empty, not . or .., no / or %
        if not v or v in (".", "..") or "/" in v or "%" in v or len(v) > 253:
            raise ValueError(f'"{shown(v)}" is not an object name (not empty, not . or .., no / or %)')
        return v

    @field_validator("namespace")
    @classmethod
    def _namespace(cls, v: str | None) -> str | None:
        if v is not None and not DNS_LABEL.match(v):
            raise ValueError(f'"{shown(v)}" is not a namespace (a DNS label)')
        return v

    @field_validator("condition")
    @classmethod
    def _condition(cls, v: str) -> str:
        if not v or len(v) > 316 or any(c.isspace() for c in v):
            raise ValueError(f'"{shown(v)}" is not a condition type (Ready, Available, ...)')
        return v

    @model_validator(mode="after")
    def _namespaced(self) -> CustomGate:
        if self.namespace is None and self.kind in NAMESPACED_KINDS:
            raise ValueError(f'{self.kind} "{self.name}" lives in a namespace: give its namespace')
        return self


class GateSettings(_Frozen):
    timeout: Annotated[
        int, Field(ge=1, le=86400, strict=True, description="Seconds all gates may take together.")
    ] = 300
    custom: tuple[CustomGate, ...] = ()
    operator: Annotated[
        Literal["auto", "on", "off"],
        Field(description="The operator gate (Flux Kustomizations Ready at the revision): auto = only when "
                          "the operator's controllers run on the cluster; on = required; off = skipped."),
    ] = "auto"


_UNIT_S = {"w": 7 * 86400, "d": 86400, "h": 3600, "m": 60, "s": 1}


@functools.lru_cache(maxsize=4)
def _grammar(units: str, bare_seconds: bool) -> re.Pattern[str]:
    """A duration's text: whole numbers, each followed by one of ``units`` (in that order, each at most once);
    with ``bare_seconds``, the last number may stand without its ``s``."""
    parts = [rf"(?:(\d+){u})?" for u in units[:-1]]
    parts.append(rf"(?:(\d+){units[-1]}{'?' if bare_seconds else ''})?")
    return re.compile("^" + "".join(parts) + r"\Z")


def _duration_text(text: str, units: str, *, bare_seconds: bool) -> int | None:
    """The seconds ``text`` (stripped) says in the grammar of ``units`` (:func:`_grammar`), or None: the one
    parser of fleet.yaml's durations; each field keeps its own grammar and range."""
    m = _grammar(units, bare_seconds).match(text.strip())
    if m is None or not any(m.groups()):
        return None
    return sum(int(g) * _UNIT_S[u] for g, u in zip(m.groups(), units, strict=True) if g)


def parse_duration(value: str | int) -> int:
    """Seconds in a duration such as ``15m``, ``1h30m``, ``7d``, ``2w`` or ``90s`` (units w, d, h, m, s, each
    needed in text; a bare integer: seconds), 1 s to a year. ValueError saying what is allowed when it does not
    parse."""
    if isinstance(value, bool):
        raise ValueError(f'"{value}" is not a duration (e.g. 90s, 15m, 1h30m, 7d, 2w)')
    if isinstance(value, int):
        seconds = value
    else:
        parsed = _duration_text(value, "wdhms", bare_seconds=False) if isinstance(value, str) else None
        if parsed is None:
            raise ValueError(f'"{shown(str(value))}" is not a duration (e.g. 90s, 15m, 1h30m, 7d, 2w)')
        seconds = parsed
    if seconds <= 0:
        raise ValueError(f'"{value}" is not a positive duration')
    if seconds > 366 * 86400:
        raise ValueError(f'"{value}" is longer than a year')
    return seconds


def duration_problem(value: str | int) -> str | None:
    try:
        parse_duration(value)
    except ValueError as e:
        return str(e)
    return None


class RecoveryObjective(_Frozen):
    """What a rebuild of the cluster must achieve, proven by ``fleet drill``: the recovery time objective
    (``rto``: the whole rebuild, every gate passed) and how often it must be proven (``drill_every``)."""

    rto: Annotated[
        str | int | None,
        Field(description="The longest a rebuild may take, gates passed: a duration (90s, 15m, 1h30m)."),
    ] = None
    drill_every: Annotated[
        str | int | None,
        Field(description="A passing drill older than this is stale: a duration (1d, 7d, 2w)."),
    ] = None

    @field_validator("rto", "drill_every")
    @classmethod
    def _duration(cls, v: str | int | None) -> str | int | None:
        if v is not None:
            parse_duration(v)
        return v

    @property
    def rto_s(self) -> int | None:
        return parse_duration(self.rto) if self.rto is not None else None

    @property
    def drill_every_s(self) -> int | None:
        return parse_duration(self.drill_every) if self.drill_every is not None else None

    def over(self, base: RecoveryObjective | None) -> RecoveryObjective:
        """This objective, each key it does not set taken from ``base``."""
        if base is None:
            return self
        return RecoveryObjective(rto=self.rto if self.rto is not None else base.rto,
                                 drill_every=self.drill_every if self.drill_every is not None else base.drill_every)


class RecoveryDefaults(RecoveryObjective):
    """fleet.yaml ``recovery:``: the fleet-wide objective, and one per environment (``environments:``)."""

    environments: Annotated[
        dict[str, RecoveryObjective],
        Field(description="Per environment (e.g. prod: {rto: 15m, drill_every: 7d}); a cluster's own "
                          "recovery: keys win over these, these over the fleet-wide ones."),
    ] = Field(default_factory=dict)

    def for_cluster(self, environment: str, own: RecoveryObjective | None) -> RecoveryObjective | None:
        """The objective of a cluster of ``environment`` that declares ``own``; None when nothing is declared."""
        fleet_wide = RecoveryObjective(rto=self.rto, drill_every=self.drill_every)
        env = self.environments.get(environment)
        merged = fleet_wide if env is None else env.over(fleet_wide)
        if own is not None:
            merged = own.over(merged)
        return merged if (merged.rto is not None or merged.drill_every is not None) else None


class OperatorSettings(_Frozen):
    kind: Literal["flux", "none"] = "flux"
    # Where Flux's manifests come from: "toolchain" (extracted by `make toolchain`), or a URL/path.
    source: str = "toolchain"
    version: str = "v2.7"
    interval: str = "1m"

    @field_validator("source")
    @classmethod
    def _no_credentials(cls, v: str) -> str:
        return check_url(v)


class RegistryLayout(_Frozen):
    """Where the registry lives: one ``<name>.yaml`` per cluster in this folder."""

    path: Annotated[
        str,
        Field(description="The registry folder, relative to the repo root (default clusters; an adopted "
                          "Flux repo uses e.g. fleet/clusters, beside Flux's clusters/<name>/ folders)."),
    ] = DEFAULT_REGISTRY

    @field_validator("path")
    @classmethod
    def _relative(cls, v: str) -> str:
        problem = path_problem(v)
        if problem:
            raise ValueError(problem)
        return v


class EnvironmentsLayout(_Frozen):
    """Where the environment overlays live: a path pattern with ``{env}`` as one segment."""

    path: Annotated[
        str,
        Field(description="The overlay of each environment: a path relative to the repo root with {env} as "
                          "one whole segment (default environments/{env}; e.g. deploy/overlays/{env})."),
    ] = DEFAULT_ENVIRONMENTS

    @field_validator("path")
    @classmethod
    def _pattern(cls, v: str) -> str:
        problem = path_problem(v, pattern=True)
        if problem:
            raise ValueError(problem)
        return v


def _key_path_problem(value: str) -> str | None:
    """Why ``value`` cannot name a key file: outside the repo (absolute or ``~/``), or inside it (relative,
    read from the working tree, never from the commit being verified)."""
    if value.startswith(("/", "~/")) or value == "~":
        return None if value not in ("/", "~") else f'"{value}" must name a file or a directory'
    return path_problem(value)


class VerifySettings(_Frozen):
    """Signed commits: which commits fleet (and the operator) accept. Read from the working tree's
    fleet.yaml and key files, never from the commit being verified (docs/security.md)."""

    mode: Annotated[
        Literal["none", "head"],
        Field(description="head: the commit fleet syncs, rebuilds, rolls out or records as good must carry "
                          "a valid signature by an allowed key (as Flux's GitRepository verify mode HEAD); "
                          "none: no verification."),
    ] = "none"
    allowedSigners: Annotated[
        str | None,
        Field(description="An SSH allowed-signers file (git's gpg.ssh.allowedSignersFile): a path relative "
                          "to the repo root (read from the working tree) or outside the repo (/... or ~/...)."),
    ] = None
    publicKeys: Annotated[
        str | None,
        Field(description="OpenPGP public keys, ASCII-armored: a file, or a directory of *.asc files; "
                          "relative to the repo root (read from the working tree) or outside it."),
    ] = None

    @field_validator("mode", mode="before")
    @classmethod
    def _flux_spelling(cls, v: Any) -> Any:
        return "head" if v == "HEAD" else v  # Flux's spelling too

    @field_validator("allowedSigners", "publicKeys")
    @classmethod
    def _key_path(cls, v: str | None) -> str | None:
        problem = _key_path_problem(v) if v is not None else None
        if problem:
            raise ValueError(problem)
        return v.removeprefix("./") if v is not None else v

    @model_validator(mode="after")
    def _keys_when_verifying(self) -> VerifySettings:
        if self.mode != "none" and self.allowedSigners is None and self.publicKeys is None:
            raise ValueError(f"mode {self.mode} needs allowedSigners (SSH) or publicKeys (OpenPGP), or both")
        return self


AGE_RECIPIENT = re.compile(r"^age1[02-9ac-hj-np-z]{58}\Z")  # bech32 of an X25519 public key
ENV_NAME = re.compile(r"^[A-Z_][A-Z0-9_]*\Z")


class SopsKeySource(_Frozen):
    """Where fleet (and the DR path) finds the age identity: never in the repo."""

    env: Annotated[
        str,
        Field(description="An environment variable naming the age key file; used when set "
                          "(default FLEET_SOPS_AGE_KEY_FILE)."),
    ] = "FLEET_SOPS_AGE_KEY_FILE"
    file: Annotated[
        str,
        Field(description="Else this age key file: relative to FLEET_HOME, or absolute; never inside the "
                          "repo (default secrets/sops-age.agekey)."),
    ] = "secrets/sops-age.agekey"

    @field_validator("env")
    @classmethod
    def _env_name(cls, v: str) -> str:
        if not ENV_NAME.match(v):
            raise ValueError(f'"{shown(v)}" is not an environment variable name ([A-Z_][A-Z0-9_]*)')
        return v

    @field_validator("file")
    @classmethod
    def _file(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("the key file path is empty")
        return v


class SopsSettings(_Frozen):
    """Secrets encrypted with SOPS to age recipients: Flux decrypts them (``spec.decryption``), fleet's
    direct sync in memory; the DR path installs the age identity as Secret ``flux-system/sops-age``."""

    ageRecipients: Annotated[
        tuple[str, ...],
        Field(min_length=1, description="The age public keys (age1...) the repo's secrets are encrypted to; "
                                        "the key fleet installs must be one of them."),
    ]
    keySource: SopsKeySource = Field(default_factory=SopsKeySource)

    @field_validator("ageRecipients")
    @classmethod
    def _recipients(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        for r in v:
            if not AGE_RECIPIENT.match(r):
                raise ValueError(f'"{shown(r)}" is not an age recipient (age1 followed by 58 bech32 characters)')
        if len(set(v)) != len(v):
            raise ValueError("a recipient is listed twice")
        return v


class SecretsSettings(_Frozen):
    sops: SopsSettings | None = None


class HelmSettings(_Frozen):
    """How ``fleet render`` and ``fleet diff --base`` find the charts of HelmReleases (docs/registry.md)."""

    mirror: Annotated[
        str | None,
        Field(description="A local chart mirror, asked before a HelmRepository's URL (offline use): a directory "
                          "of the repo, or an http(s) URL, holding a Helm repository (index.yaml and the charts)."),
    ] = None

    @field_validator("mirror")
    @classmethod
    def _mirror(cls, v: str | None) -> str | None:
        if v is None:
            return v
        if "://" in v:
            if not v.startswith(("http://", "https://")):
                raise ValueError(f'"{shown(v)}" is neither a directory of the repo nor an http(s) URL')
            return check_url(v)
        problem = path_problem(v)
        if problem:
            raise ValueError(problem)
        return v.removeprefix("./").rstrip("/")


MAX_BAKE_S = 7 * 86400


def duration_seconds(v: Any) -> int:
    """``600``, ``"90s"``, ``"10m"``, ``"1h30m"`` -> whole seconds (0 to 7 days; units h, m, s, and a bare
    number, also last after others, is seconds); ValueError otherwise."""
    if isinstance(v, bool):
        raise ValueError(f"{v!r} is not a duration (examples: 90s, 10m, 1h30m)")
    if isinstance(v, int):
        seconds = v
    else:
        parsed = _duration_text(str(v), "hms", bare_seconds=True)
        if parsed is None:
            raise ValueError(f'"{shown(str(v))}" is not a duration (examples: 90s, 10m, 1h30m)')
        seconds = parsed
    if not 0 <= seconds <= MAX_BAKE_S:
        raise ValueError(f"{seconds}s is out of range (0 to {MAX_BAKE_S}s, 7 days)")
    return seconds


class WavePolicySettings(_Frozen):
    """What a wave of a rollout requires, for a wave number or an environment (``rollout.waves.N``,
    ``rollout.environments.ENV``)."""

    approval: Annotated[
        bool,
        Field(description="The rollout pauses before this wave until `fleet rollout approve ID --wave N`."),
    ] = False
    bake: Annotated[
        int | None,
        Field(description="After the wave passed its gates, watch its clusters this long before the next wave "
                          "(seconds, or a duration: 90s, 10m, 1h30m)."),
    ] = None

    @field_validator("bake", mode="before")
    @classmethod
    def _bake(cls, v: Any) -> int | None:
        return None if v is None else duration_seconds(v)


class RolloutSettings(_Frozen):
    """``rollout:`` in fleet.yaml: approvals and bake time of ``fleet rollout``'s waves."""

    bake: Annotated[
        int,
        Field(description="Bake time of every wave unless its wave or environment says otherwise (seconds, "
                          "or a duration: 90s, 10m); default 0, none."),
    ] = 0
    waves: Annotated[
        dict[int, WavePolicySettings],
        Field(description="Per wave number: {approval: true, bake: 10m}."),
    ] = Field(default_factory=dict)
    environments: Annotated[
        dict[str, WavePolicySettings],
        Field(description="Per environment: a wave with a cluster of this environment requires what it says "
                          "(approval if any requires it; the longest bake)."),
    ] = Field(default_factory=dict)
    approverNotStarter: Annotated[
        bool,
        Field(description="An approval must come from another git identity than the one that started the rollout."),
    ] = False

    @field_validator("bake", mode="before")
    @classmethod
    def _bake(cls, v: Any) -> int:
        return duration_seconds(v)


class FleetSettings(_Frozen):
    """``fleet.yaml``: fleet-wide settings."""

    apiVersion: Literal["fleet.dev/v1"] = "fleet.dev/v1"
    kind: Literal["Fleet"] = "Fleet"
    name: str = "fleet"
    registry: RegistryLayout = Field(
        default_factory=RegistryLayout, description="Where the registry lives: {path: clusters} by default."
    )
    environments: EnvironmentsLayout = Field(
        default_factory=EnvironmentsLayout,
        description='Where the environment overlays live: {path: "environments/{env}"} by default.',
    )
    git: GitSettings = Field(default_factory=lambda: GitSettings())
    operator: OperatorSettings = Field(default_factory=OperatorSettings)
    gates: GateSettings = Field(default_factory=GateSettings)
    verify: VerifySettings = Field(
        default_factory=VerifySettings,
        description="Signed commits: {mode: head, allowedSigners: FILE, publicKeys: FILE|DIR}; mode none by default.",
    )
    recovery: RecoveryDefaults = Field(
        default_factory=RecoveryDefaults,
        description="Recovery objectives proven by `fleet drill`: {rto: 15m, drill_every: 7d, "
                    "environments: {prod: {rto: 10m}}}; a cluster's own recovery: wins.",
    )
    secrets: SecretsSettings = Field(
        default_factory=SecretsSettings,
        description="secrets.sops: {ageRecipients: [age1...], keySource: {env, file}} when the repo holds "
                    "SOPS-encrypted manifests.",
    )
    helm: HelmSettings = Field(
        default_factory=HelmSettings,
        description="helm.mirror: a local chart mirror (a repo directory or an http(s) URL) asked first for "
                    "the charts of HelmReleases.",
    )
    rollout: RolloutSettings = Field(
        default_factory=RolloutSettings,
        description="fleet rollout's policy: {bake: 10m, waves: {2: {approval: true}}, environments: "
                    "{prod: {approval: true, bake: 30m}}, approverNotStarter: true}.",
    )

    @property
    def layout(self) -> Layout:
        """Where this fleet repo keeps its registry and its environment overlays."""
        return Layout.of(self.registry.path, self.environments.path)


class GitSettings(_Frozen):
    remote: str = "origin"
    url: str | None = None  # what the operator clones; default: the remote's URL
    branch: str = "main"

    @field_validator("url")
    @classmethod
    def _no_credentials(cls, v: str | None) -> str | None:
        return check_url(v) if v is not None else v


class KubeAccess(_Frozen):
    """How fleet reaches a cluster it did not provision: a kubeconfig context (credentials never in Git)."""

    context: str | None = None
    kubeconfig: str | None = None  # a path outside the repo; default $KUBECONFIG / ~/.kube/config

    @field_validator("kubeconfig")
    @classmethod
    def _outside(cls, v: str | None) -> str | None:
        # a relative path would name a file of the repository (the working directory): a kubeconfig runs
        # exec plugins and reads token files, so it comes from the user's own configuration, never from Git
        if v is not None and not (v.startswith("/") or v.startswith("~/")):
            raise ValueError(f'"{shown(v)}" must be a path outside the repository (absolute, or ~/...): a '
                             "kubeconfig is the user's own configuration, never a file of the fleet repo")
        return v


class ClusterSource(_Frozen):
    """Where a cluster's desired state comes from when it is not its environment's overlay."""

    flux: Annotated[
        str,
        Field(description="A Flux cluster directory (e.g. clusters/prod-eu): rendered as Flux would, every "
                          "Flux Kustomization of the fleet repo it reaches expanded at the same revision."),
    ]

    @field_validator("flux")
    @classmethod
    def _relative(cls, v: str) -> str:
        problem = path_problem(v)
        if problem:
            raise ValueError(problem)
        return v.removeprefix("./").rstrip("/")


class ClusterSpec(_Frozen):
    """``clusters/<name>.yaml``: one cluster of the fleet."""

    apiVersion: Literal["fleet.dev/v1"] = "fleet.dev/v1"
    kind: Literal["Cluster"] = "Cluster"
    name: str
    environment: str
    provider: Provider = "local"
    region: str = "local"
    wave: Annotated[int, Field(ge=0, le=1000, strict=True)] = 0  # strict: `wave: true`, `wave: "3"` refused
    labels: dict[str, str] = Field(default_factory=dict)
    vars: dict[str, str] = Field(default_factory=dict)
    settings: dict[str, str | int | bool] = Field(default_factory=dict, description="Provider settings.")
    access: KubeAccess | None = None
    gates: GateSettings | None = None
    recovery: Annotated[
        RecoveryObjective | None,
        Field(description="The cluster's recovery objective: {rto: 15m, drill_every: 7d} (fleet drill)."),
    ] = None
    source: Annotated[
        ClusterSource | None,
        Field(description="Take the desired state from a Flux cluster directory instead of the overlay of "
                          "environment (which then only names the cluster's environment, for selectors)."),
    ] = None

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

    @field_validator("settings")
    @classmethod
    def _provider_settings(cls, v: dict[str, str | int | bool], info: ValidationInfo) -> dict[str, str | int | bool]:
        known = PROVIDER_SETTINGS.get(str(info.data.get("provider", "local")), ())
        for k in v:
            if k not in known:
                close = difflib.get_close_matches(k, known, n=1)
                hint = f' (did you mean "{close[0]}"?)' if close else ""
                raise ValueError(f'unknown setting "{shown(k)}" of provider {info.data.get("provider", "local")}'
                                 f"{hint}; known: {', '.join(known)}")
        return v

    @field_validator("vars")
    @classmethod
    def _var_names(cls, v: dict[str, str]) -> dict[str, str]:
        for k, val in v.items():
            if not VAR_NAME.match(k):
                raise ValueError(f'variable name "{shown(k)}" must match [A-Za-z_][A-Za-z0-9_]*')
            problem = text_problem(val, MAX_VALUE, echo=False)  # never echoed: it may be a secret
            if problem:
                raise ValueError(f'the value of variable "{k}" {problem}')
        return v


FleetSettings.model_rebuild()
