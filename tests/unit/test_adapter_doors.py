"""Adapters are the only doors: no module outside fleet.adapters runs the ``git`` program (the import
contracts cover libraries: tenacity, urllib, socket, signal, subprocess, GitPython, kubernetes, pulumi)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_only_the_git_adapters_run_git() -> None:
    runs_git = re.compile(r"""\[\s*["']git["']\s*,""")
    found = []
    for top in ("fleet", "bootstrap", "rollout", "clusters"):
        for path in (ROOT / top).rglob("*.py"):
            rel = path.relative_to(ROOT).as_posix()
            if rel in ("fleet/adapters/git.py", "fleet/adapters/gitplain.py"):
                continue
            found += [f"{rel}:{n}" for n, line in enumerate(path.read_text().splitlines(), 1) if runs_git.search(line)]
    assert not found, f"git run outside fleet.adapters.git/gitplain: {found}"
