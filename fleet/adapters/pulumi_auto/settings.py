"""Where the Pulumi engine keeps its state and how it encrypts secrets: :class:`EngineSettings`.

Resolved once, by the composition root (the CLI), with :func:`resolve_settings` from the environment
it hands over (:func:`default_settings`: this process's); services, the DR pipeline and the engine take
the result as given and never read the environment for it. Resolving reads only: it writes nothing.

- backend ``file://$FLEET_HOME/pulumi`` (no account), or ``PULUMI_BACKEND_URL``;
- secrets: ``PULUMI_CONFIG_PASSPHRASE`` / ``PULUMI_CONFIG_PASSPHRASE_FILE``, or a secrets provider
  in ``PULUMI_SECRETS_PROVIDER`` (read by fleet; e.g. ``awskms://...``); with neither, for the file
  backend, a random passphrase per FLEET_HOME kept 0600 in ``secrets/pulumi-passphrase``
  (:func:`local_passphrase`; a home with stacks made before it keeps :data:`LOCAL_PASSPHRASE`), made
  when the engine first needs it (:func:`engine_passphrase`), never in a dry run;
- ``PULUMI_HOME`` private under ``$FLEET_HOME/pulumi-home``; update checks and plugin downloads off.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from urllib.parse import urlparse

from fleet.errors import Unwritable
from fleet.paths import fleet_home, private_dir, private_secret, write_private, writes_allowed

__all__ = ["LOCAL_PASSPHRASE", "PASSPHRASE_SECRET", "EngineSettings", "default_settings", "engine_passphrase",
           "local_passphrase", "private_state_dir", "resolve_settings"]

LOCAL_PASSPHRASE = "fleet-local-state"  # the old fixed one: homes with stacks made before keep it


@dataclass(frozen=True)
class EngineSettings:
    """Where state lives and how the engine runs; :func:`resolve_settings` builds it from an environment."""

    backend_url: str
    pulumi_home: Path
    work_root: Path  # per-stack work dirs (Pulumi.yaml, Pulumi.<stack>.yaml) under here
    passphrase: str | None = LOCAL_PASSPHRASE
    # The FLEET_HOME whose private passphrase (secrets/pulumi-passphrase) a file backend uses when none was
    # configured: made when the engine first needs it (:func:`engine_passphrase`); ``passphrase`` is then None.
    passphrase_home: Path | None = None
    secrets_provider: str | None = None
    pulumi_bin: Path | None = None  # default: toolchain.find("pulumi")
    extra_path: tuple[Path, ...] = ()  # put first on the engine's PATH (default: this python's bin)
    env: Mapping[str, str] = field(default_factory=dict)
    lock_attempts: int = 4
    backend_attempts: int = 4  # an S3 backend's requests (fleet's own: the bucket check, locks, dry-run copies)
    transient_attempts: int = 3
    retry_wait_s: float = 3.0

    @property
    def is_file_backend(self) -> bool:
        return self.backend_url.startswith("file://")

    @property
    def file_backend_dir(self) -> Path | None:
        return Path(urlparse(self.backend_url).path) if self.is_file_backend else None

    def with_retries(self, *, lock_attempts: int, transient_attempts: int = 1, wait_s: float = 0.1) -> EngineSettings:
        return replace(self, lock_attempts=lock_attempts, transient_attempts=transient_attempts, retry_wait_s=wait_s)


def resolve_settings(environ: Mapping[str, str], home: Path) -> EngineSettings:
    """The engine settings that ``environ`` (``PULUMI_*``) and the fleet home ``home`` give (see the module
    docstring). Reads nothing else and writes nothing: a file backend with no passphrase configured gets
    ``passphrase_home``, and its passphrase is made when the engine first needs it."""
    backend = environ.get("PULUMI_BACKEND_URL") or f"file://{home / 'pulumi'}"
    secrets_provider = environ.get("PULUMI_SECRETS_PROVIDER") or None
    passphrase: str | None = environ.get("PULUMI_CONFIG_PASSPHRASE")
    passphrase_file = environ.get("PULUMI_CONFIG_PASSPHRASE_FILE") or None
    local = passphrase is None and passphrase_file is None and backend.startswith("file://") and not secrets_provider
    return EngineSettings(
        backend_url=backend,
        pulumi_home=home / "pulumi-home",
        work_root=home / "pulumi-work",
        passphrase=passphrase,
        passphrase_home=home if local else None,
        secrets_provider=secrets_provider,
        env={"PULUMI_CONFIG_PASSPHRASE_FILE": passphrase_file} if passphrase is None and passphrase_file else {},
    )


def default_settings() -> EngineSettings:
    """The engine settings of this process's environment and fleet home: what the CLI resolves, once, and
    hands to the services it builds. Writes nothing."""
    return resolve_settings(os.environ, fleet_home())


def engine_passphrase(s: EngineSettings) -> str | None:
    """The passphrase the engine runs with: the configured one, or the home's private one
    (:func:`local_passphrase`, made now if it is not there yet; in a dry run, not made)."""
    if s.passphrase_home is None:
        return s.passphrase
    backend_dir = s.file_backend_dir or s.passphrase_home / "pulumi"
    return local_passphrase(s.passphrase_home, backend_dir)


PASSPHRASE_SECRET = "pulumi-passphrase"


def private_state_dir(d: Path) -> Path:
    """A directory 0700 (state, work dirs and PULUMI_HOME hold secrets); Unwritable when it cannot be."""
    try:
        return private_dir(d)
    except OSError as e:
        raise Unwritable.of(d, e) from e


def local_passphrase(home: Path, backend_dir: Path) -> str:
    """The default file backend's passphrase: random per FLEET_HOME, kept private (0600) in
    ``$FLEET_HOME/secrets/pulumi-passphrase``. A home whose stacks were made with the old fixed passphrase
    (:data:`LOCAL_PASSPHRASE`) before that file existed keeps that one, recorded in the same file, so its
    stacks' encryption salts still match (change it with ``pulumi stack change-secrets-provider``)."""
    secret = home / "secrets" / PASSPHRASE_SECRET
    if not writes_allowed() and not secret.exists():  # a dry run makes no secret: what a run would use
        return LOCAL_PASSPHRASE if _has_stacks(backend_dir, home / "pulumi-work") else secrets.token_hex(32)
    try:
        if not secret.exists() and _has_stacks(backend_dir, home / "pulumi-work"):
            write_private(secret, LOCAL_PASSPHRASE + "\n")
        return private_secret(PASSPHRASE_SECRET, home=home)
    except OSError as e:
        raise Unwritable.of(secret, e, "the local Pulumi backend's passphrase") from e


def _has_stacks(backend_dir: Path, work_root: Path) -> bool:
    """Whether stacks exist already (state in the backend, or a stack config with an encryption salt)."""
    stacks = backend_dir / ".pulumi" / "stacks"
    if stacks.is_dir() and any(p.is_file() for p in stacks.rglob("*")):
        return True
    if work_root.is_dir():
        for cfg in work_root.rglob("Pulumi.*.yaml"):
            with contextlib.suppress(OSError, UnicodeDecodeError):
                if "encryptionsalt:" in cfg.read_text(encoding="utf-8"):
                    return True
    return False
