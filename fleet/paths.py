"""Where fleet keeps its own files. The only module that reads fleet's environment variables.

Everything fleet writes under :func:`fleet_home` is private whatever the umask: directories 0700
(:func:`private_dir`), files 0600 (:func:`write_private`, :func:`open_private`).

A dry run writes nothing at all: inside :func:`no_writes` (the CLI enters it for every ``--dry-run``)
caches are read but not filled (:func:`writes_allowed`), a missing secret is not made, and a write
through these helpers is a bug (:class:`DryRunWrite`, an internal error), never a silent file.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

__all__ = [
    "DryRunWrite",
    "debug_from_env",
    "fleet_home",
    "hmac_of",
    "local_dir",
    "no_writes",
    "open_private",
    "private_dir",
    "private_secret",
    "repo_from_env",
    "scratch_dir",
    "toolchain_dir",
    "write_private",
    "writes_allowed",
]

DIR_MODE = 0o700
FILE_MODE = 0o600


def fleet_home() -> Path:
    """``$FLEET_HOME``, else ``$XDG_DATA_HOME/fleet`` (``~/.local/share/fleet``)."""
    if env := os.environ.get("FLEET_HOME"):
        return Path(env).expanduser()
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "fleet"


def local_dir() -> Path:
    """The local clusters' work directory: ``$FLEET_LOCAL_DIR``, else ``$FLEET_HOME/local``. Two operators
    on one machine (two fleet homes) name the same one to share their local clusters, as a team shares
    a cloud account."""
    if env := os.environ.get("FLEET_LOCAL_DIR"):
        return Path(env).expanduser()
    return fleet_home() / "local"


def toolchain_dir() -> Path:
    """``$FLEET_TOOLCHAIN_DIR``, else ``$XDG_CACHE_HOME/fleet/toolchain`` (same as tools/build.sh)."""
    if env := os.environ.get("FLEET_TOOLCHAIN_DIR"):
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "fleet" / "toolchain"


def repo_from_env() -> Path | None:
    """``$FLEET_REPO`` when set."""
    env = os.environ.get("FLEET_REPO")
    return Path(env).expanduser() if env else None


def debug_from_env() -> bool:
    """``$FLEET_DEBUG`` set to anything but empty, 0 or false: the same as ``--debug``."""
    return os.environ.get("FLEET_DEBUG", "").lower() not in ("", "0", "false", "no")


def age_key_file_from_env(name: str) -> str | None:
    """The age key file the environment variable ``name`` (fleet.yaml's secrets.sops.keySource.env,
    default ``FLEET_SOPS_AGE_KEY_FILE``) names, when set and not empty."""
    return os.environ.get(name) or None


# ---- dry runs ----------------------------------------------------------------------------------

_dry = 0  # how many no_writes() blocks are open (process-wide: a dry run's threads write nothing either)
_dry_lock = threading.Lock()
_scratch: Path | None = None  # a dry run's scratch directory (scratch_dir), made on first use


class DryRunWrite(RuntimeError):
    """A dry run tried to write under FLEET_HOME: a bug in fleet (exit 70), never a silent write."""


@contextlib.contextmanager
def no_writes() -> Iterator[None]:
    """Within: nothing is written through this module (see the module's docstring)."""
    global _dry, _scratch
    with _dry_lock:
        _dry += 1
    try:
        yield
    finally:
        with _dry_lock:
            _dry -= 1
            done, scratch = _dry == 0, _scratch
            if done:
                _scratch = None
        if done and scratch is not None:
            import shutil

            shutil.rmtree(scratch, ignore_errors=True)


def scratch_dir() -> Path:
    """In a dry run: a private temporary directory outside FLEET_HOME, removed when the dry run ends, for a
    tool that writes files to work even when it only reads (Pulumi's workspace settings and logs)."""
    global _scratch
    if writes_allowed():
        raise RuntimeError("scratch_dir() is for dry runs (fleet.paths.no_writes)")
    with _dry_lock:
        if _scratch is None:
            import tempfile

            _scratch = Path(tempfile.mkdtemp(prefix="fleet-dry-run-"))  # 0700
        return _scratch


def writes_allowed() -> bool:
    """False inside :func:`no_writes`: a cache is read but not filled."""
    return _dry == 0


def _refuse_in_dry_run(path: Path) -> None:
    if not writes_allowed() and not (_scratch is not None and _under(path, _scratch)):
        raise DryRunWrite(f"a dry run tried to write {path}")


# ---- private files -----------------------------------------------------------------------------


def private_dir(path: Path) -> Path:
    """Create ``path`` and its missing parents 0700 whatever the umask; an existing directory fleet owns
    under :func:`fleet_home` is narrowed to 0700. Raises OSError as the file system does."""
    if not writes_allowed() and path.is_dir():
        return path
    _refuse_in_dry_run(path)
    home = fleet_home()
    missing: list[Path] = []
    p = path
    while not p.exists():
        missing.append(p)
        if p.parent == p:
            break
        p = p.parent
    for d in reversed(missing):
        with contextlib.suppress(FileExistsError):
            os.mkdir(d, DIR_MODE)
        os.chmod(d, DIR_MODE)  # mkdir applies the umask; chmod does not
    if path.is_dir() and _under(path, home):
        for d in (path, *path.parents):
            if not _under(d, home):
                break
            if d.stat().st_mode & 0o077 and d.stat().st_uid == os.getuid():
                os.chmod(d, DIR_MODE)
    return path


def _under(path: Path, home: Path) -> bool:
    try:
        return path.absolute().is_relative_to(home.absolute())
    except (OSError, ValueError):
        return False


def write_private(path: Path, data: str | bytes, *, fsync: bool = False) -> Path:
    """Write ``path`` atomically, 0600 whatever the umask, its directory 0700 (the file is replaced, never
    written through a symlink); with ``fsync`` the data is on disk before the rename."""
    _refuse_in_dry_run(path)
    private_dir(path.parent)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, FILE_MODE)
    try:
        os.fchmod(fd, FILE_MODE)
        with os.fdopen(fd, "wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)
            if fsync:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def open_private(path: Path, mode: str = "a") -> IO[str]:
    """Open a text file for writing or appending, created 0600 (its directory 0700) whatever the umask."""
    _refuse_in_dry_run(path)
    private_dir(path.parent)
    flags = os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | (os.O_APPEND if "a" in mode else os.O_TRUNC)
    fd = os.open(path, flags, FILE_MODE)
    os.fchmod(fd, FILE_MODE)
    return os.fdopen(fd, mode, encoding="utf-8")


@contextlib.contextmanager
def exclusive_flock(path: Path, busy: Callable[[], Exception]) -> Iterator[int]:
    """Hold an exclusive ``flock`` on the private file ``path`` (0600 in a 0700 directory, never through a
    symlink) and yield its descriptor; raise ``busy()`` at once when another process holds it. The kernel
    releases it when the holder dies, SIGKILL included. The one flock of fleet: the cluster lock
    (:mod:`fleet.locks`) and the journals' locks (:func:`fleet.stepkit.journal.exclusive_lock`)."""
    _refuse_in_dry_run(path)
    private_dir(path.parent)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, FILE_MODE)
    try:
        os.fchmod(fd, FILE_MODE)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as e:
            raise busy() from e
        try:
            yield fd
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def flock_held(path: Path) -> bool:
    """Whether a process holds :func:`exclusive_flock` on ``path`` right now, asked without taking it (a shared
    lock is refused while an exclusive one is held) and without creating the file: reads only."""
    try:
        with path.open("rb") as f:
            try:
                fcntl.flock(f, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                return True
            fcntl.flock(f, fcntl.LOCK_UN)
            return False
    except OSError:
        return False


def hmac_of(secret_name: str, message: str) -> str | None:
    """The HMAC-SHA256 (hex) of ``message`` under the private secret ``secret_name`` (:func:`private_secret`);
    None when there is none and none can be made (a FLEET_HOME that cannot be written, a dry run)."""
    import hashlib
    import hmac

    try:
        secret = private_secret(secret_name)
    except OSError:
        return None
    return hmac.new(secret.encode(), message.encode(), hashlib.sha256).hexdigest()


def write_sealed(path: Path, version: str, key: str, body: str) -> bool:
    """Write ``body`` to ``path`` (0600) behind a first line ``<version> <seal>``, the seal an HMAC of version,
    key and body under the home's private ``render-cache`` secret, so that :func:`read_sealed` knows an entry
    fleet wrote for ``key`` from an edited, foreign or truncated one. Nothing is written in a dry run or
    when FLEET_HOME cannot be written (False): a cache only."""
    if not writes_allowed():
        return False
    seal = hmac_of("render-cache", f"{version}\n{key}\n{body}")
    if seal is None:
        return False
    try:
        write_private(path, f"{version} {seal}\n{body}")
    except OSError:
        return False
    return True


def read_sealed(path: Path, version: str, key: str) -> str | None:
    """The body :func:`write_sealed` wrote to ``path`` for ``version`` and ``key``, when its seal verifies;
    None when the file is missing or unreadable, or its seal does not verify (that bad entry is then
    removed, but never in a dry run)."""
    import hmac

    try:
        raw = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    header, sep, body = raw.partition("\n")
    seal = hmac_of("render-cache", f"{version}\n{key}\n{body}")
    if sep and seal is not None and hmac.compare_digest(header, f"{version} {seal}"):
        return body
    discard(path)
    return None


def discard(path: Path) -> None:
    """Remove a bad cache entry, unless this is a dry run (which leaves even a bad entry where it is)."""
    if writes_allowed():
        with contextlib.suppress(OSError):
            path.unlink(missing_ok=True)


def private_secret(name: str, nbytes: int = 32, *, home: Path | None = None) -> str:
    """A random secret kept in ``<home>/secrets/<name>`` (0600; ``home`` defaults to :func:`fleet_home`),
    made on first use (hex text). In a dry run a missing secret is not made: FileNotFoundError."""
    import secrets  # with hmac and OpenSSL: loaded by the commands that use a secret, not at every start-up

    path = (home or fleet_home()) / "secrets" / name
    try:
        text = path.read_text(encoding="utf-8").strip()
        if text:
            if path.stat().st_mode & 0o077:
                os.chmod(path, FILE_MODE)
            return text
    except FileNotFoundError:
        if not writes_allowed():
            raise
    value = secrets.token_hex(nbytes)
    tmp = write_private(path.with_name(f".{name}.{secrets.token_hex(4)}.new"), value + "\n")
    try:  # link: created with its content or not at all, so two processes on first use agree on one
        os.link(tmp, path)
    except FileExistsError:
        value = path.read_text(encoding="utf-8").strip()
    finally:
        tmp.unlink(missing_ok=True)
    return value
