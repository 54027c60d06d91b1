"""Every error fleet raises, in one tree.

    FleetError                  base; exit code 1 unless said otherwise
    ├── InputError              bad input from the user: a flag, a file, a name (exit 2)
    │   ├── ConfigError         a file of the fleet repo is malformed or invalid (file, line, key)
    │   ├── NotFound            a named thing does not exist (cluster, revision, environment)
    │   ├── DirtyTree           the working tree has changes where that matters
    │   ├── UnverifiedCommit    fleet.yaml requires signed commits and this commit does not verify
    │   ├── Unwritable          a path fleet must write cannot be (read-only repo or FLEET_HOME, a lock)
    │   ├── BackendRefused      the shared state backend refused: no such bucket, credentials, passphrase
    │   └── SecretsError        a SOPS file or its age key: missing, for another recipient, tampered with
    ├── ToolMissing             a binary of the local toolchain is missing (exit 2, with a hint)
    ├── GitError                git itself failed
    ├── RenderError             kustomize or variable substitution failed (exit 2: the input is bad)
    │   ├── BuildLimit          a build ran over its time or memory budget (the builder stopped it)
    │   ├── FluxTreeError       a Flux cluster directory cannot be expanded as Flux would apply it
    │   ├── HelmError           a HelmRelease cannot be rendered as helm-controller would install it
    │   ├── ChartUnreachable    an OCI registry cannot be reached (the release is listed unresolved)
    │   ├── SubstitutionError   a malformed ``${...}`` expression
    │   └── MissingVariables    variables a manifest uses are not set (``names``)
    ├── KubeError               the Kubernetes API failed or refused a request
    │   ├── Unreachable         the API server cannot be reached
    │   ├── Forbidden           RBAC refused the request
    │   ├── ApiRefused          the API server answered with an error status (``status``, ``reason``)
    │   └── NotServed           the API server serves no such kind (its CRD is not installed)
    ├── GateFailed              a health gate did not pass
    ├── StepFailed              a step of the DR pipeline or a rollout failed within its budget (``step``, ``cause``)
    ├── PulumiError             the Pulumi engine failed
    │   ├── StackNotFound
    │   ├── ConcurrentUpdate    another update holds the stack's lock
    │   ├── BackendUnreachable  the shared state backend (S3) is down or answers 5xx, retries spent
    │   └── ProgramError        the program failed; carries the useful part of its output
    ├── LocalClusterError       kwokctl could not create, start or delete a local cluster
    └── KindError               the kind CLI failed (the kind provider of the Pulumi program)

    Cancelled (a BaseException, not a FleetError): a rollout was interrupted (Ctrl-C); a cluster stops at
    its next step, so that no step runner takes it for the step's own failure

Adapters turn library errors into these (``raise ... from e``); nothing above them sees a library
exception. The CLI maps them to exit codes in one place (``fleet.cli``); an exception that is not a
FleetError is a bug in fleet and exits 70.

One retry decision. Every error carries ``transient`` (False unless the adapter that raised it says
otherwise, per instance): the adapter is the only place that classifies. The kube adapter marks
connection resets, timeouts, HTTP 5xx and 429 (once its own retries are spent); the Pulumi adapter a
provider's transient engine failure. The step runners (``fleet.stepkit.steps``) retry a step only when
``e.transient``, and never by the error's type or text. Never transient, at any layer: TLS
verification, authentication and authorization (:class:`Forbidden`), :class:`NotFound` and every
:class:`InputError`. A stack lock (:class:`ConcurrentUpdate`) is waited for in the Pulumi adapter alone,
within its one bound; once that bound is spent the error is not transient. A bug inside a step (not a
FleetError) is neither retried nor reported as a step failure: it propagates as it was raised.
"""

from __future__ import annotations

from pathlib import Path

__all__ = [
    "MISSING_HINT",
    "ApiRefused",
    "BackendRefused",
    "BackendUnreachable",
    "BuildLimit",
    "Cancelled",
    "ChartUnreachable",
    "ConcurrentUpdate",
    "ConfigError",
    "DirtyTree",
    "FleetError",
    "FluxTreeError",
    "Forbidden",
    "GateFailed",
    "GitError",
    "HelmError",
    "InputError",
    "KindError",
    "KubeError",
    "LocalClusterError",
    "MissingVariables",
    "NotFound",
    "NotServed",
    "ProgramError",
    "PulumiError",
    "RenderError",
    "SecretsError",
    "StackNotFound",
    "StepFailed",
    "SubstitutionError",
    "ToolMissing",
    "Unreachable",
    "UnverifiedCommit",
    "Unwritable",
]


class FleetError(Exception):
    """Base of every fleet error. ``exit_code`` is what the CLI exits with; ``transient``: another
    attempt may succeed (set only by the adapter that raised it; see the module docstring)."""

    exit_code = 1
    transient: bool = False

    def __init__(self, message: str, *, hint: str | None = None, transient: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        if transient:
            self.transient = True


class InputError(FleetError):
    exit_code = 2


class ConfigError(InputError):
    """A file of the fleet repo is invalid; the message starts with ``file:line: key:``."""

    def __init__(
        self,
        message: str,
        *,
        file: str | Path | None = None,
        line: int | None = None,
        key: str | None = None,
        hint: str | None = None,
    ) -> None:
        where = ""
        if file is not None:
            where = str(file)
            if line is not None:
                where += f":{line}"
            where += ": "
        if key:
            where += f"{key}: "
        super().__init__(where + message, hint=hint)
        self.file = str(file) if file is not None else None
        self.line = line
        self.key = key


class NotFound(InputError):
    pass


class DirtyTree(InputError):
    pass


class Unwritable(InputError):
    """The environment refuses a write: a read-only repository or FLEET_HOME, missing permissions, a
    lock file another (or a crashed) process left. Nothing was changed."""

    @classmethod
    def of(cls, path: str | Path, err: OSError, what: str = "") -> Unwritable:
        reason = err.strerror or type(err).__name__
        return cls(f"cannot write {path}{f' ({what})' if what else ''}: {reason}")


class BackendRefused(InputError):
    """The shared Pulumi backend refused fleet: its bucket does not exist, the credentials or the stacks'
    passphrase are wrong. Names the backend (never a credential); nothing was written there."""


class ToolMissing(FleetError):
    exit_code = 2


class GitError(FleetError):
    pass


class RenderError(FleetError):
    exit_code = 2


class BuildLimit(RenderError):
    """A build ran over its wall-clock or memory budget: fleet-build stopped it (running it again on
    more of the tree cannot help)."""


class KubeError(FleetError):
    pass


class Unreachable(KubeError):
    pass


class Forbidden(KubeError):
    pass


class NotServed(KubeError):
    """The API server serves no such kind (e.g. its CRD is not installed)."""


class ApiRefused(KubeError):
    """The API server answered with an error status; ``message`` carries its own words."""

    def __init__(self, message: str, *, status: int, reason: str = "", hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.status = status
        self.reason = reason


class GateFailed(FleetError):
    pass


class PulumiError(FleetError):
    pass


class StackNotFound(PulumiError):
    pass


class ConcurrentUpdate(PulumiError):
    pass


class BackendUnreachable(PulumiError):
    """The shared Pulumi backend cannot be reached (down, timing out, 5xx) once the retries are spent."""


class ProgramError(PulumiError):
    """A Pulumi operation failed; ``urn``: the resource whose operation failed, as the engine's events
    named it (None when no resource did: the program itself failed)."""

    urn: str | None = None


class LocalClusterError(FleetError):
    pass


class KindError(FleetError):
    pass


class StepFailed(FleetError):
    """A step (of the DR pipeline or a rollout) failed once its attempts or its budget were spent: ``cause``
    is the last error, ``next_action`` (the hint) what to do."""

    def __init__(self, step: str, cause: BaseException, next_action: str) -> None:
        msg = f'step "{step}" failed: {getattr(cause, "message", None) or cause}'
        super().__init__(msg, hint=next_action)
        self.step = step
        self.cause = cause
        self.next_action = next_action


class Cancelled(BaseException):
    """The rollout was interrupted: a cluster stops at its next step, its journal left to resume.
    A BaseException, so that no step runner takes it for the step's own failure."""


class FluxTreeError(RenderError):
    """A Flux cluster directory cannot be expanded as Flux would apply it: a Kustomization's field, a
    dependsOn nothing defines or a cycle, a substituteFrom the tree lacks, an object two Kustomizations
    produce differently (exit 2). ``kustomization`` (``namespace/name``) and ``key`` say which field, so
    the file and line that define it can be named."""

    def __init__(
        self, message: str, *, hint: str | None = None, kustomization: str | None = None, key: str | None = None
    ) -> None:
        super().__init__(message, hint=hint)
        self.kustomization = kustomization
        self.key = key


class HelmError(RenderError):
    """A HelmRelease cannot be rendered as helm-controller would install it: its chart or version does not
    exist, its values fail the chart's schema, a valuesFrom it needs is missing, a template fails (exit 2;
    the message names the HelmRelease). A chart source that cannot be reached is not an error: the release
    is listed as unresolved."""


class ChartUnreachable(RenderError):
    """An OCI registry a chart comes from cannot be reached (fleet-build could not connect): as for an HTTP
    repository, a warning, and the release is listed unresolved."""


class SubstitutionError(RenderError):
    """A malformed ``${...}`` expression."""


# Text that is not meant for Flux (a shell script's ${VAR} in a ConfigMap, say) is the usual cause.
MISSING_HINT = (
    "set it with `fleet cluster set NAME --var KEY=VALUE`, or give a default: ${VAR:=value}; text not meant "
    "for substitution (a script's ${VAR}) escapes it as $${VAR}, or its object opts out with the annotation "
    "kustomize.toolkit.fluxcd.io/substitute: disabled"
)


class MissingVariables(RenderError):
    def __init__(self, names: tuple[str, ...], where: str = "") -> None:
        self.names = names
        listed = ", ".join(f'"{n}"' for n in names)
        noun = "variable" if len(names) == 1 else "variables"
        super().__init__(f"{noun} {listed} not set{where}", hint=MISSING_HINT)


class SecretsError(InputError):
    """A SOPS-encrypted manifest cannot be decrypted, or its age key cannot be had: no key, a key for
    another recipient, a MAC mismatch, a malformed value (exit 2). Messages name the object, the path
    and the key's public recipient, never a value or the key itself."""


class UnverifiedCommit(InputError):
    """fleet.yaml requires signed commits and this one does not verify (exit 2): ``reason`` is
    ``unsigned``, ``unknown-key``, ``bad-signature``, ``expired``, ``revoked`` or ``unsupported``."""

    def __init__(self, revision: str, reason: str, message: str, *, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.revision = revision
        self.reason = reason
