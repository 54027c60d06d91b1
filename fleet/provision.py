"""Provisioning: one Pulumi stack per cluster, configured from its registry entry.

The program (``clusters.program``) is passed in by the composition root (``fleet.cli``) or the DR
pipeline, so fleet's core never imports ``clusters/``. This module does not import
``pulumi.automation`` either: :mod:`fleet.adapters.pulumi_auto` does.

    provision(repo, name, program=..., reporter=..., engine=...)  -> ProvisionResult   (pulumi up / preview)
    destroy(name, program=..., reporter=..., engine=...)           -> DestroyResult     (pulumi destroy, stack rm)
    stack_outputs(name, engine=...)                                -> dict              (outputs of the last up)

``engine`` (:class:`~fleet.adapters.pulumi_auto.EngineSettings`: backend, secrets, homes) is always
given: the composition root resolves it once; nothing here reads the environment for it.
"""

from __future__ import annotations

import contextlib
import os
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path, PurePath
from typing import Any, Literal, Protocol

from fleet.access import kubeconfig_cache_path
from fleet.adapters.git import GitRepo
from fleet.adapters.pulumi_auto import Engine, EngineSettings, OpResult, StackRequest
from fleet.errors import ConfigError, FleetError, InputError
from fleet.locks import cluster_lock
from fleet.operator import operator_for
from fleet.output import Reporter
from fleet.paths import write_private
from fleet.registry.load import Registry, load_registry, open_repo
from fleet.stackconfig import GIT_AUTH_KEY, SOPS_AGE_KEY, StackConfig

__all__ = [
    "DestroyResult",
    "DriftResult",
    "Phase",
    "Program",
    "ProvisionOutcome",
    "ProvisionResult",
    "check_operator_can_fetch",
    "destroy",
    "drift",
    "ensure_local_controllers",
    "operator_pinned",
    "provision",
    "provision_many",
    "refresh",
    "stack_config",
    "stack_outputs",
]

SECRET = "[secret]"
Phase = Literal["all", "cluster"]
PHASES: tuple[str, ...] = ("all", "cluster")
# The cluster component (type fleet:cluster:<Provider>) and everything under it, in any stack.
CLUSTER_TARGETS = ("urn:pulumi:{stack}::{project}::fleet:cluster:**",)


class Program(Protocol):
    """The Pulumi program for one cluster's stack (``clusters.program``)."""

    def __call__(self) -> None: ...  # runs inside the engine; reads the stack config

    def check(self, config: StackConfig) -> None: ...  # bad input -> InputError, before the engine runs


@dataclass(frozen=True)
class ProvisionResult:
    cluster: str
    stack: str
    preview: bool
    revision: str | None  # the commit the operator is pinned to, None when it follows the branch
    changes: dict[str, int]  # op -> resources ("same", "create", "update", "delete", "replace", ...)
    kubeconfig_path: Path | None  # where the kubeconfig was written (not on preview)
    duration_s: float
    outputs: dict[str, Any] = field(default_factory=dict)  # secrets shown as "[secret]"

    @property
    def unchanged(self) -> bool:
        return all(op == "same" for op, n in self.changes.items() if n)


@dataclass(frozen=True)
class DestroyResult:
    cluster: str
    stack: str
    existed: bool
    changes: dict[str, int]
    duration_s: float


@dataclass(frozen=True)
class ProvisionOutcome:
    """One cluster of :func:`provision_many`: its result, or the error that stopped it."""

    cluster: str
    result: ProvisionResult | None
    error: str | None
    exit_code: int = 0


def _cloneable(url: str) -> bool:
    """An URL an operator in the cluster can clone: http(s), ssh, or scp-like ``user@host:path``."""
    return bool(re.match(r"^(https?|ssh)://", url) or re.match(r"^[\w.-]+@[\w.-]+:[^/]", url))


def _served_path(g: GitRepo, url: str | None) -> Path:
    """What fleet serves a local cluster's operator: the remote when it is a path, else the repo."""
    local = Path(url.removeprefix("file://")) if url else g.root
    return local if local.is_absolute() else (g.root / local).resolve()


def _check_on_remote(g: GitRepo, reg: Registry, provider: str, revision: str) -> None:
    """The operator clones the remote: a pinned commit that was never pushed there cannot be applied."""
    url = reg.settings.git.url or g.remote_url(reg.settings.git.remote)
    if provider != "local" or url is None or _cloneable(url):
        return
    remote = _served_path(g, url)
    if remote == g.root:
        return
    from fleet.adapters import gitplain

    found = gitplain.has_commit(remote, revision)
    if not found and not gitplain.is_repository(remote):
        raise InputError(
            f"the remote {remote} that the operator clones is gone (not a git repository any more)",
            hint="restore it, or point fleet.yaml's git.url (or the git remote) at the repository the operator "
                 "should clone; nothing was changed",
        )
    if not found:
        raise InputError(
            f"commit {revision[:12]} is not on the remote {remote} that the operator clones",
            hint="run `fleet push` (Git is the operator's source of truth)",
        )


def check_operator_can_fetch(repo: GitRepo | str | Path, cluster: str, revision: str) -> None:
    """Refuse (exit 2) to pin a local cluster's operator to a commit its served remote does not hold."""
    g = open_repo(repo)
    reg = load_registry(g)
    _check_on_remote(g, reg, reg.get(cluster).provider, revision)


def _repo_url(g: GitRepo, reg: Registry, cluster: str, provider: str, *, serve: bool) -> str:
    """What the operator clones: fleet.yaml's git.url, else the remote's URL. A local cluster whose
    repo has no http(s)/ssh remote gets the remote (a local path), or else the repo itself, served on
    loopback beside it (:mod:`fleet.local.flux`); ``serve=False`` (plans, previews) only reads the URL
    a server was given before, and starts nothing."""
    git = reg.settings.git
    url = git.url or g.remote_url(git.remote)
    if url is not None and _cloneable(url):
        return url
    if provider != "local":
        if url is None:
            raise InputError(
                f'no git URL for the operator: fleet.yaml has no git.url and no remote "{git.remote}"',
                hint="set git.url in fleet.yaml, or `git remote add origin URL`",
            )
        return url  # the program refuses it, naming it (flux_git_url)
    local = _served_path(g, url)
    from fleet.local.clusters import LocalClusters

    op = LocalClusters().operator
    if serve:
        return op.serve_repo(cluster, local)
    return op.git_url(cluster) or "http://127.0.0.1/fleet.git"  # what a server will serve it at


def _absolute_source(reg: Registry) -> Registry:
    """A relative operator.source path is relative to the fleet repo's root."""
    op = reg.settings.operator
    src = op.source
    if src == "toolchain" or "://" in src or os.path.isabs(src):
        return reg
    path = (reg.root / src).resolve()
    if path != reg.root and reg.root.resolve() not in path.parents:  # a symlink out: never a host file
        raise ConfigError("operator.source leads out of the repository (a symlink); give a file inside it",
                          file="fleet.yaml", key="operator.source")
    settings = reg.settings.model_copy(update={"operator": op.model_copy(update={"source": str(path)})})
    return Registry(reg.root, reg.revision, settings, reg.clusters, reg.environments)


def stack_config(repo: GitRepo | str | Path, name: str, *, pin_revision: str | None = None,
                 serve: bool = False, kept_pin: str | None = None) -> StackConfig:
    """The stack config of cluster ``name``: its registry entry (at ``pin_revision`` when pinned, else
    the working tree), fleet.yaml, the repo's URL and branch, and the pinned commit. ``serve``: start
    the git endpoint a local cluster's operator clones from, if it needs one (see _repo_url).
    ``kept_pin``: the commit the stack pins already, kept as it is when no ``pin_revision`` moves it."""
    g = open_repo(repo)
    revision = g.resolve(pin_revision) if pin_revision else None
    reg = _absolute_source(load_registry(g, revision))
    spec = reg.get(name)
    needs_url = operator_for(reg.settings).needs_repo_url
    if needs_url and revision:
        _check_on_remote(g, reg, spec.provider, revision)
    revision = revision or kept_pin
    return StackConfig(
        cluster=spec,
        settings=reg.settings,
        repo_url=_repo_url(g, reg, name, spec.provider, serve=serve) if needs_url else "",
        branch=reg.settings.git.branch,
        revision=revision,
        verify_keys=_verify_keys(g) if needs_url else (),
    )


def _verify_keys(g: GitRepo) -> tuple[tuple[str, str], ...]:
    """The keys the operator verifies commits with: the working tree's fleet.yaml verify: (not the pinned
    revision's: a commit must not choose the keys it is checked with)."""
    from fleet.verify import flux_keys

    return tuple(sorted(flux_keys(g).items()))


def _plain_outputs(op: OpResult) -> dict[str, Any]:
    return {k: (SECRET if v.secret else v.value) for k, v in op.outputs.items()}


def _write_kubeconfig(name: str, text: str) -> Path:
    """The cluster's kubeconfig, written atomically and private (0600 in a 0700 folder) as every secret file
    of fleet is (:func:`fleet.paths.write_private`)."""
    return write_private(kubeconfig_cache_path(name), text)


def provision(
    repo: GitRepo | str | Path,
    name: str,
    *,
    program: Program,
    reporter: Reporter,
    preview: bool = False,
    pin_revision: str | None = None,
    refresh: bool = False,
    phase: Phase = "all",
    git_auth: Mapping[str, str] | None = None,
    follow_branch: bool = False,
    engine: EngineSettings,
) -> ProvisionResult:
    """Create or update cluster ``name`` and its operator (``pulumi up``), or show what would change
    (``preview``). After an up, the kubeconfig output is written to ``$FLEET_HOME/kubeconfigs/<name>.yaml``
    (mode 0600) for fleet's live commands. Bad input raises before the engine runs. The operator stays pinned
    where the stack pins it unless ``pin_revision`` moves the pin or ``follow_branch`` removes it.

    ``phase="cluster"`` updates only the cluster's resources (Pulumi targets), leaving the operator's
    as they are: the DR pipeline's provision step, before its operator step (``phase="all"``)."""
    with cluster_lock(name, f"fleet provision {name}"):  # taken once per process: re-entrant
        if follow_branch and pin_revision:
            raise InputError("--pin and --follow-branch: give one of them")
        return _provision(repo, name, program=program, reporter=reporter, preview=preview,
                          pin_revision=pin_revision, refresh=refresh, phase=phase, git_auth=git_auth, engine=engine,
                          follow_branch=follow_branch)


def _provision(
    repo: GitRepo | str | Path,
    name: str,
    *,
    program: Program,
    reporter: Reporter,
    preview: bool,
    pin_revision: str | None,
    refresh: bool,
    phase: Phase,
    git_auth: Mapping[str, str] | None,
    engine: EngineSettings,
    follow_branch: bool = False,
) -> ProvisionResult:
    started = time.monotonic()
    cfg = stack_config(repo, name, pin_revision=pin_revision)
    check = getattr(program, "check", None)
    if check is not None:
        check(cfg)  # bad input stops here, before anything is started or changed
    secrets: dict[str, str] = {}
    operator = operator_for(cfg.settings)
    if cfg.settings.secrets.sops is not None and operator.takes_age_key:
        from fleet.sops import key_for

        # the fleet uses SOPS: its age key (from outside the repo) goes to the stack as a secret; missing,
        # it stops here (exit 2), before anything is started or changed
        age_key = key_for(cfg.settings, open_repo(repo).root)
        if age_key is not None:
            secrets[SOPS_AGE_KEY] = age_key.identity
    if git_auth:
        import json

        secrets[GIT_AUTH_KEY] = json.dumps(dict(git_auth), sort_keys=True)
    eng = Engine(engine, reporter)
    # The stack owns the operator's pin (sync, bootstrap and rollout move it through here): a provision
    # that names no revision keeps the one pinned, never unpins it.
    kept = None if pin_revision or follow_branch else _kept_pin(eng, name)
    if kept:
        cfg = stack_config(repo, name, kept_pin=kept)
    pinned = f" pinned to {cfg.revision[:12]}" if cfg.revision else f' following "{cfg.branch}"'
    reporter.step(
        f'{"previewing" if preview else "provisioning"} cluster "{name}" '
        f"({cfg.cluster.provider}, {cfg.cluster.environment}){pinned}"
    )
    if phase not in PHASES:
        raise InputError(f'unknown provisioning phase "{phase}"; use {" or ".join(PHASES)}')
    program_phase = _program_phase(eng, cfg.stack, phase)
    if program_phase == "all":
        phase = "all"
    legacy = getattr(program, "legacy_types", ())
    if legacy and not preview:
        # Stacks of earlier fleet versions made the operator's objects with a kubectl dynamic provider:
        # forget those resources (the objects stay), and the provider's resources adopt the objects.
        dropped = eng.forget(cfg.stack, legacy)
        if dropped:
            reporter.step(f'stack "{cfg.stack}": {len(dropped)} resources of the kubectl dynamic provider are '
                          "now managed by the Kubernetes provider (the objects stay as they are)")
    local_operator = cfg.cluster.provider == "local" and operator.runs_locally
    if local_operator and not preview:
        cfg = stack_config(repo, name, pin_revision=pin_revision, serve=True,  # the git endpoint, if needed
                           kept_pin=kept)
    early = _EarlyControllers(name, operator.installed_by, reporter) \
        if phase == "all" and local_operator and not preview and operator.installed_by else None
    try:
        op = eng.up(
            StackRequest(cfg.stack, program, {**cfg.values(), "phase": program_phase}, secrets,
                         on_resource=early.seen if early is not None else None),
            preview=preview,
            refresh=refresh,
            targets=CLUSTER_TARGETS if phase == "cluster" else None,
        )
    except BaseException:
        if early is not None:
            early.join()
        if local_operator and not preview:
            _forget_operator_without_cluster(name)
        raise
    kubeconfig_path = None
    if not preview:
        kc = op.outputs.get("kubeconfig")
        if kc is not None and isinstance(kc.value, str) and kc.value:
            kubeconfig_path = _write_kubeconfig(name, kc.value)
        if phase == "all" and local_operator:
            if early is not None:
                early.join()
            _start_local_controllers(name, reporter)  # nothing to do if they started early; else the error
    result = ProvisionResult(
        cluster=name,
        stack=cfg.stack,
        preview=preview,
        revision=cfg.revision,
        changes=op.changes,
        kubeconfig_path=kubeconfig_path,
        duration_s=round(time.monotonic() - started, 3),
        outputs=_plain_outputs(op),
    )
    if result.unchanged:
        reporter.ok(f'cluster "{name}" is up to date')
    else:
        summary = ", ".join(f"{n} {k}" for k, n in sorted(op.changes.items()) if n and k != "same")
        reporter.ok(f'cluster "{name}" {"would change" if preview else "provisioned"}: {summary}')
    return result


def operator_pinned(outputs: Mapping[str, Any], kind: str, revision: str) -> bool:
    """Whether a stack's outputs (those of its last update) say its operator of ``kind`` is installed and
    pinned to ``revision``: the program exports ``kustomizationPath`` only when it registered the operator's
    component, ``operator`` its kind and ``revision`` the pinned commit. What the DR pipeline's operator step
    reads to skip a second update after a provision that installed everything already."""
    def value(key: str) -> Any:
        v = outputs.get(key)
        return getattr(v, "value", v)  # a StackOutput or a plain value

    return (bool(revision) and value("revision") == revision and value("operator") == kind
            and bool(value("kustomizationPath")))


def ensure_local_controllers(repo: GitRepo | str | Path, name: str, reporter: Reporter) -> None:
    """A local cluster's operator controllers run beside it (started if they are not): what a provision of
    the whole stack does after its update, for a step that skips the update."""
    reg = load_registry(open_repo(repo))
    if reg.get(name).provider == "local" and operator_for(reg.settings).runs_locally:
        _start_local_controllers(name, reporter)


def _kept_pin(eng: Engine, name: str) -> str | None:
    """The commit cluster ``name``'s stack pins its operator to (None: no stack, or it follows the branch)."""
    if not eng.exists(name):
        return None
    out = eng.outputs(name).get("revision")
    value = out.value if out is not None else None
    return value if isinstance(value, str) and value else None


def _program_phase(eng: Engine, stack: str, phase: Phase) -> str:
    """What the program registers. The cluster phase (Pulumi targets the cluster's resources) of a
    stack with no operator yet registers only the cluster ("cluster-only": a new Kubernetes provider
    would depend on the untargeted operator component). A stack that has an operator is brought up
    whole ("all"): a rebuilt cluster changes the provider's kubeconfig, and the engine cannot replace a
    provider under --target, nor leave a registered resource out."""
    if phase != "cluster":
        return phase
    has_operator = any(t.startswith("fleet:operator:") for t in eng.resource_types(stack))
    return "all" if has_operator else "cluster-only"


def _forget_operator_without_cluster(name: str) -> None:
    """An up that failed before the local cluster existed leaves no git endpoint running for it."""
    from fleet.local.clusters import LocalClusters

    lc = LocalClusters()
    if not lc.exists(name):
        lc.operator.remove(name)


class _EarlyControllers:
    """Starts a local cluster's operator controllers, in a thread of their own, as soon as the update made the
    resource that installs their CRDs (``installed_by``), while the engine goes on with the operator's
    objects and its checkpoint: the controllers are ready, and fetch the pinned commit, seconds before the
    update ends. A start that fails here is tried again after the update, which reports its error."""

    def __init__(self, name: str, installed_by: str, reporter: Reporter) -> None:
        self.name, self.installed_by, self.reporter = name, installed_by, reporter
        self.thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def seen(self, resource_type: str) -> None:
        if resource_type != self.installed_by:
            return
        with self._lock:
            if self.thread is None:
                self.thread = threading.Thread(target=self._start, name=f"controllers-{self.name}", daemon=True)
                self.thread.start()

    def _start(self) -> None:
        with contextlib.suppress(Exception):  # tried again, and reported, after the update
            _start_local_controllers(self.name, self.reporter)

    def join(self) -> None:
        with self._lock:
            thread = self.thread
        if thread is not None:
            thread.join()


def _start_local_controllers(name: str, reporter: Reporter) -> None:
    """On a local cluster Flux's controllers run as processes beside it, once its CRDs are installed."""
    from fleet.local.clusters import LocalClusters

    lc = LocalClusters()
    if lc.operator.running(name):
        return
    reporter.step(f'starting Flux\'s controllers beside local cluster "{name}"')
    lc.operator.start_controllers(name, lc.kubeconfig_path(name))
    reporter.ok(f'source-controller and kustomize-controller run beside "{name}" '
                f"(logs in {lc.operator.dir(name) / 'logs'})")


@dataclass(frozen=True)
class DriftResult:
    """``fleet drift``: what Pulumi manages for a cluster that no longer is what it last applied."""

    cluster: str
    stack: str
    drift: bool
    changes: dict[str, int]  # what a refresh would do to the state: update (drifted), delete (gone)
    resources: tuple[dict[str, Any], ...]  # {"op", "resource", "properties"}
    duration_s: float


def drift(name: str, *, program: Program, reporter: Reporter, engine: EngineSettings) -> DriftResult:
    """A dry-run ``pulumi refresh`` of the cluster's stack: the infrastructure drift of what Pulumi
    manages (the cluster, Flux's install set, the GitRepository and Kustomization), changing nothing."""
    started = time.monotonic()
    reporter.step(f'reading the live state of stack "{name}" (refresh, preview only)')
    op, drifted = Engine(engine, reporter).drift(StackRequest(name, program))
    changed = {k: n for k, n in op.changes.items() if n and k != "same"}
    resources = tuple({"op": o, "resource": r, "properties": list(p)} for o, r, p in drifted)
    res = DriftResult(name, name, bool(changed or resources), op.changes, resources,
                      round(time.monotonic() - started, 3))
    if res.drift:
        reporter.warn(f'stack "{name}" drifted: ' + ", ".join(f"{d['op']} {d['resource']}" for d in resources[:5]))
    else:
        reporter.ok(f'stack "{name}": no drift from what Pulumi last applied')
    return res


def refresh(name: str, *, program: Program, reporter: Reporter, engine: EngineSettings) -> OpResult:
    """Read the live state of every resource of the stack into its state (``pulumi refresh``)."""
    reporter.step(f'refreshing stack "{name}"')
    return Engine(engine, reporter).refresh(StackRequest(name, program))


def destroy(name: str, *, program: Program, reporter: Reporter, engine: EngineSettings) -> DestroyResult:
    """Destroy cluster ``name`` (every resource of its stack), remove the stack and the cached
    kubeconfig. A cluster without a stack has nothing to destroy (``existed`` is False)."""
    with cluster_lock(name, f"fleet destroy {name}"):
        return _destroy(name, program=program, reporter=reporter, engine=engine)


def _destroy(name: str, *, program: Program, reporter: Reporter, engine: EngineSettings) -> DestroyResult:
    started = time.monotonic()
    eng = Engine(engine, reporter)
    if not eng.exists(name):
        kubeconfig_cache_path(name).unlink(missing_ok=True)
        reporter.ok(f'cluster "{name}" has no stack; nothing to destroy')
        return DestroyResult(name, name, False, {}, round(time.monotonic() - started, 3))
    reporter.step(f'destroying cluster "{name}"')
    op = eng.destroy(StackRequest(name, program), remove=True)
    kubeconfig_cache_path(name).unlink(missing_ok=True)
    reporter.ok(f'destroyed cluster "{name}" and removed its stack')
    return DestroyResult(name, name, True, op.changes, round(time.monotonic() - started, 3))


def stack_outputs(name: str, *, engine: EngineSettings, show_secrets: bool = True) -> dict[str, Any]:
    """The outputs of cluster ``name``'s stack (``kubeconfig``, ``cluster``, ``revision``, ...)."""
    outs = Engine(engine).outputs(name)
    return {k: (v.value if show_secrets or not v.secret else SECRET) for k, v in outs.items()}


def unlock(name: str, *, engine: EngineSettings) -> list[PurePath]:
    """Remove every lock of the stack (file or S3 backend): for a lock left by an update that died."""
    return Engine(engine).unlock(name, force=True)


def provision_many(
    repo: GitRepo | str | Path,
    names: Sequence[str],
    *,
    program: Program,
    reporter_for: Callable[[str], Reporter],
    max_parallel: int = 4,
    preview: bool = False,
    pin_revision: str | None = None,
    engine: EngineSettings,
) -> list[ProvisionOutcome]:
    """Provision several clusters in parallel (threads: the Automation API keeps its per-run state in
    context variables). One failure does not stop the others; outcomes come back in ``names`` order."""
    if max_parallel < 1:
        raise InputError("--max-parallel must be at least 1")
    root = open_repo(repo).root

    def one(name: str) -> ProvisionOutcome:
        r = reporter_for(name)
        try:
            res = provision(
                root,
                name,
                program=program,
                reporter=r,
                preview=preview,
                pin_revision=pin_revision,
                engine=engine,
            )
            return ProvisionOutcome(name, res, None, 0)
        except FleetError as e:
            r.fail(e.message)
            return ProvisionOutcome(name, None, e.message, e.exit_code)

    with ThreadPoolExecutor(max_workers=min(max_parallel, max(len(names), 1))) as pool:
        return list(pool.map(one, names))
