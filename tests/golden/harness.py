"""Golden files of the CLI's output, in the manner of the flux CLI's: each read command runs in-process
(``fleet.cli.main``) on a fleet repo built the same way every time, and what it prints is compared with
``tests/golden/<case>.txt`` (the default output: a table, the manifests or a plan) and
``tests/golden/<case>.json`` (``-o json``). ``UPDATE_GOLDEN=1`` rewrites the files; review the diff.

The repo is deterministic: a fixed git identity (tests/conftest.py) and fixed GIT_AUTHOR_DATE and
GIT_COMMITTER_DATE per commit, so every commit id is the same on every machine. What cannot be fixed
(the temporary directories, the time a last good revision was recorded, durations) is replaced with a
placeholder before comparing: ``<REPO>``, ``<HOME>``, ``<TIME>``, ``<SECONDS>``.
"""

from __future__ import annotations

import contextlib
import difflib
import io
import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import yaml

from tests.helpers import git

__all__ = ["GOLDEN", "Case", "build_fleet", "check", "fixed_date", "normalize", "run"]

GOLDEN = Path(__file__).resolve().parent
UPDATE = os.environ.get("UPDATE_GOLDEN", "").lower() not in ("", "0", "false", "no")

# keys whose values change from run to run, in any JSON the CLI prints
VOLATILE_KEYS = ("duration_s", "seconds", "recorded_at")
FIXED_DAY = "2026-01-05"  # the day of every commit of the golden fleet
# a timestamp of now (not of the fixture's commits)
_ISO = re.compile(rf"\b(?!{FIXED_DAY})\d{{4}}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:[+-]\d\d:\d\d|Z)?")


@dataclass(frozen=True)
class Case:
    """One read command: ``<name>.txt`` holds its default output, ``<name>.json`` its ``-o json``."""

    name: str
    args: tuple[str, ...]
    code: int = 0  # the exit code both outputs are expected with
    json: bool = True  # also ``-o json`` (and ``-o yaml``, which must parse to the same data)
    table: tuple[str, ...] = ()  # options for the text output, e.g. ("-o", "table")
    repo: bool = True  # the command reads the fleet repo (--repo is added)
    no_path: bool = False  # run with an empty PATH (``doctor``: no tool found anywhere, on any machine)
    yaml: bool = True  # ``-o yaml`` is the JSON's data in YAML (``render``: it is the manifests instead)

    def __str__(self) -> str:
        return self.name


@contextlib.contextmanager
def fixed_date(n: int) -> Iterator[None]:
    """Commits made inside get the n-th fixed date (one hour apart, UTC)."""
    stamp = datetime.fromisoformat(f"{FIXED_DAY}T09:00:00+00:00") + timedelta(hours=n)
    when = f"{int(stamp.timestamp())} +0000"  # git's own format, which GitPython reads too
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GIT_AUTHOR_DATE", when)
        mp.setenv("GIT_COMMITTER_DATE", when)
        yield


def run(*args: str) -> tuple[int, str, str]:
    """``fleet ARGS`` in-process: (exit code, stdout, stderr)."""
    from fleet.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(args))
    return code, out.getvalue(), err.getvalue()


def _ok(*args: str) -> str:
    code, out, err = run(*args)
    assert code == 0, f"fleet {' '.join(args)}: exit {code}: {err}"
    return out


def build_fleet(parent: Path, home: Path) -> Path:
    """The golden fleet: prod, staging and dev clusters in two regions; eu-1 has a last good revision
    and one newer change to its overlay."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FLEET_HOME", str(home))
        mp.setenv("TZ", "UTC")
        mp.delenv("FLEET_REPO", raising=False)
        repo = parent / "acme"
        with fixed_date(0):
            _ok("init", str(repo))
        r = ("--repo", str(repo))
        with fixed_date(1):
            _ok("cluster", "add", "eu-1", "--env", "prod", "--region", "eu", "--wave", "1", "-l", "team=web",
                "-l", "tier=gold", "--var", "REPLICAS=4", *r)
        with fixed_date(2):
            _ok("cluster", "add", "eu-2", "--env", "staging", "--region", "eu", "--wave", "0", "-l", "team=web", *r)
        with fixed_date(3):
            _ok("cluster", "add", "us-1", "--env", "dev", "--region", "us", "--wave", "2", "--provider", "kind",
                "--var", "LOG_LEVEL=debug", *r)
        with fixed_date(4):
            _ok("good", "eu-1", "--set", "HEAD", "--reason", "gates passed", "--duration", "42", *r)
        with fixed_date(5):
            hello = repo / "environments" / "prod" / "hello.yaml"
            hello.write_text(hello.read_text().replace("${REPLICAS:=3}", "${REPLICAS:=5}"))
            git(repo, "commit", "-q", "-am", "prod: five replicas unless a cluster says otherwise")
    return repo


def normalize(text: str, *paths: tuple[Path, str], table: bool = False) -> str:
    """Placeholders for what differs between runs: the given paths, timestamps of now, durations (in a
    ``table``, padded to the width of what they replace, so the columns stay as printed)."""
    for path, name in sorted(paths, key=lambda p: -len(str(p[0]))):
        text = text.replace(str(path), name)
    keys = "|".join(VOLATILE_KEYS)
    text = re.sub(rf'("(?:{keys})": )(-?[0-9.e+-]+|"[^"]*")', r'\1"<SECONDS>"', text)
    text = re.sub(rf"^(\s*-?\s*(?:{keys}): )(\S.*)$", r"\1<SECONDS>", text, flags=re.M)
    text = text.replace('"recorded_at": "<SECONDS>"', '"recorded_at": "<TIME>"')
    text = re.sub(r"^(\s*-?\s*recorded_at: )<SECONDS>$", r"\1<TIME>", text, flags=re.M)
    return _ISO.sub(lambda m: "<TIME>".ljust(len(m.group())) if table else "<TIME>", text)


def check(name: str, actual: str) -> None:
    """Compare with ``tests/golden/<name>``, or write it under ``UPDATE_GOLDEN=1``."""
    path = GOLDEN / name
    if UPDATE:
        path.write_text(actual, encoding="utf-8")
        return
    if not path.exists():
        pytest.fail(f"{path.relative_to(GOLDEN.parents[1])} does not exist: run the test with UPDATE_GOLDEN=1")
    expected = path.read_text(encoding="utf-8")
    if actual != expected:
        diff = "".join(difflib.unified_diff(expected.splitlines(True), actual.splitlines(True),
                                            f"golden/{name}", "actual"))
        pytest.fail(f"output differs from tests/golden/{name} (UPDATE_GOLDEN=1 rewrites it if the change is "
                    f"meant, and then it is a change of the output contract: docs/output.md):\n{diff}",
                    pytrace=False)


def check_case(case: Case, repo: Path, *placeholders: tuple[Path, str]) -> None:
    """Run one case's text and JSON outputs and compare both; ``-o yaml`` must carry the JSON's data."""
    r = ("--repo", str(repo)) if case.repo else ()
    code, out, err = run(*case.args, *case.table, *r)
    assert code == case.code, f"fleet {' '.join(case.args)}: exit {code}, expected {case.code}: {err}"
    check(f"{case.name}.txt", normalize(out, *placeholders, table=True))
    if not case.json:
        return
    code, out, err = run(*case.args, "-o", "json", *r)
    assert code == case.code, f"fleet {' '.join(case.args)} -o json: exit {code}, expected {case.code}: {err}"
    data = json.loads(out)
    check(f"{case.name}.json", normalize(out, *placeholders))
    if not case.yaml:
        return
    code, out_yaml, err = run(*case.args, "-o", "yaml", *r)
    assert code == case.code, err
    assert json.loads(normalize(json.dumps(yaml.safe_load(out_yaml)), *placeholders)) == json.loads(
        normalize(json.dumps(data), *placeholders))
