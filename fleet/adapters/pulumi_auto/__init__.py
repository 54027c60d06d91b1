"""The Pulumi Automation API adapter: the only package that imports ``pulumi`` in fleet and bootstrap.

    engine.py     :class:`Engine`: stack operations, the one choke point for retries and typed errors
    settings.py   :class:`EngineSettings`: backend, secrets and homes, resolved from an environment by the CLI
    progress.py   engine events as progress lines; the useful part of a failure
    locks.py      the file backend's stack locks: held by whom, stale or not
"""

from __future__ import annotations

from fleet.adapters.pulumi_auto.engine import PROJECT, Engine, OpResult, StackOutput, StackRequest
from fleet.adapters.pulumi_auto.settings import (
    LOCAL_PASSPHRASE,
    PASSPHRASE_SECRET,
    EngineSettings,
    default_settings,
    engine_passphrase,
    local_passphrase,
    resolve_settings,
)

__all__ = [
    "LOCAL_PASSPHRASE",
    "PASSPHRASE_SECRET",
    "PROJECT",
    "Engine",
    "EngineSettings",
    "OpResult",
    "StackOutput",
    "StackRequest",
    "default_settings",
    "engine_passphrase",
    "local_passphrase",
    "resolve_settings",
]
