"""Where fleet keeps its own files. The only module that reads fleet's environment variables."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["debug_from_env", "fleet_home", "repo_from_env", "toolchain_dir"]


def fleet_home() -> Path:
    """``$FLEET_HOME``, else ``$XDG_DATA_HOME/fleet`` (``~/.local/share/fleet``)."""
    if env := os.environ.get("FLEET_HOME"):
        return Path(env).expanduser()
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "fleet"


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
