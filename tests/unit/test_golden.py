"""Golden files: the table and JSON output of every read command that needs neither a cluster nor a
toolchain binary, on a fleet repo whose commit ids are the same on every machine (tests/golden/harness.py).

    UPDATE_GOLDEN=1 .venv/bin/python -m pytest tests/unit/test_golden.py   # rewrite them, then review

``render`` and ``bootstrap --dry-run`` need kustomize: tests/integration/test_golden_render.py. ``diff``,
``sync``, ``gate`` and ``status`` of a reachable cluster: tests/integration/test_golden_live.py; ``drift``
and ``local list`` with clusters: tests/unit/test_golden_fixed.py (see docs/output.md).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.golden.harness import Case, build_fleet, check_case, run

CASES = [
    Case("cluster-list", ("cluster", "list")),
    Case("cluster-list-selector", ("cluster", "list", "-l", "team=web,wave in (1)")),
    Case("cluster-list-empty", ("cluster", "list", "-l", "region=mars")),
    Case("cluster-show", ("cluster", "show", "eu-1")),
    Case("good", ("good", "eu-1")),
    Case("good-none", ("good", "eu-2"), code=1),
    Case("history", ("history", "eu-1")),
    Case("region-list", ("region", "list")),
    Case("region-add-dry-run", ("region", "add", "ap", "--from", "eu", "--dry-run")),
    Case("status", ("status",)),
    Case("rollout-dry-run", ("rollout", "--dry-run")),
    Case("schema", ("schema",), table=("-o", "table"), repo=False),
    Case("doctor", ("doctor",), code=1, repo=False, no_path=True),
    Case("local-list", ("local", "list"), repo=False),
    Case("drill-history", ("drill", "history", "eu-1")),
    Case("runs-none", ("runs",), repo=False),  # this home's journals (file backend); the team's: e2e/test_team_runs
]


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("golden")
    return build_fleet(base, base / "home")


@pytest.fixture
def places(fleet: Path, fleet_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[
        tuple[tuple[Path, str], ...]]:
    """The placeholders for this test's paths."""
    monkeypatch.setenv("TZ", "UTC")
    monkeypatch.setenv("COLUMNS", "120")
    yield ((fleet, "<REPO>"), (fleet_home, "<HOME>"), (Path(os.environ["FLEET_TOOLCHAIN_DIR"]), "<TOOLCHAIN>"),
           (tmp_path / "empty-bin", "<PATH>"))


@pytest.mark.parametrize("case", CASES, ids=str)
def test_golden(case: Case, fleet: Path, places: tuple[tuple[Path, str], ...], tmp_path: Path,
                monkeypatch: pytest.MonkeyPatch) -> None:
    if case.no_path:
        monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    check_case(case, fleet, *places)


def test_every_read_command_has_a_golden_case_or_a_reason() -> None:
    """A new read command gets a golden case here, in tests/integration/test_golden_render.py (kustomize),
    tests/integration/test_golden_live.py (a live cluster), tests/unit/test_golden_fixed.py (fixed data at
    the service boundary), or a line in ``engine`` (it changes what the Pulumi engine manages)."""
    from fleet.cli import COMMANDS

    engine = {"provision", "destroy"}  # they create and delete stacks: the e2e tests pin their shapes
    writes = {"init", "adopt", "push", "pull"}  # no -o: nothing to golden-test
    elsewhere = {"render", "bootstrap",  # tests/integration/test_golden_render.py
                 "diff", "sync", "gate",  # tests/integration/test_golden_live.py (and status of a live cluster)
                 "drift",  # tests/unit/test_golden_fixed.py (and local list with clusters)
                 "metrics"}  # tests/unit/test_drills.py parses it with Prometheus' parser (ages: the clock)
    live = engine
    covered = {c.args[0] for c in CASES}
    assert set(COMMANDS) - live - writes - elsewhere <= covered | {"cluster", "region", "local"}
    assert set(COMMANDS) - live - writes - elsewhere - covered == set()


def test_the_fleet_is_the_same_on_every_run(tmp_path: Path, fleet: Path) -> None:
    """Commit ids in the golden files hold only if building the fleet again gives the same ones."""
    from tests.helpers import git

    again = build_fleet(tmp_path, tmp_path / "home")
    assert git(again, "rev-parse", "HEAD") == git(fleet, "rev-parse", "HEAD")
    assert run("good", "eu-1", "-o", "json", "--repo", str(again))[1].split('"recorded_at"')[0] == run(
        "good", "eu-1", "-o", "json", "--repo", str(fleet))[1].split('"recorded_at"')[0]


# Bad input on the golden fleet: the one line (and hint) on stderr, and the exit code, are part of the
# output contract too (docs/output.md). None of these reaches a cluster or a toolchain binary, and none
# changes the shared fleet (each is refused before anything is written).
ERRORS = [
    ("render", "nope"),
    ("good", "eu-1", "--set", "no-such-revision"),
    ("sync", "eu-1", "--sync", "sideways"),
    ("bootstrap", "eu-2", "--dry-run"),
    ("cluster", "add", "eu-1", "--env", "prod", "--region", "eu"),
    ("cluster", "show", "eu-9"),
    ("rollout", "--dry-run", "-l", "team=="),
    ("history", "eu-1", "--limit", "0"),
]


def test_golden_error_lines(fleet: Path, places: tuple[tuple[Path, str], ...]) -> None:
    from tests.golden.harness import check, normalize

    out = []
    for args in ERRORS:
        code, stdout, stderr = run(*args, "--repo", str(fleet))
        assert stdout == "", f"fleet {' '.join(args)} printed data with an error: {stdout}"
        out.append(f"$ fleet {' '.join(args)}\nexit {code}\n{normalize(stderr, *places)}")
    check("errors.txt", "\n".join(out))
