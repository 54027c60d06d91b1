"""The fleet-build adapter against a fake builder of the test's own (a script speaking the same JSON
lines): one process for many requests, a new one after the builder ended or ran over a budget, a
builder that hangs stopped, a confused answer refused, and a clean environment for the child."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from fleet.adapters import fluxbuild
from fleet.errors import BuildLimit, RenderError, ToolMissing

FAKE = """#!{python}
import json, os, sys, time
here = os.path.dirname(os.path.abspath(__file__))
for line in sys.stdin:
    req = json.loads(line)
    mode = open(os.path.join(here, "mode")).read().strip()
    with open(os.path.join(here, "log"), "a") as log:
        log.write(json.dumps({{"pid": os.getpid(), "mode": mode, "env": sorted(os.environ)}}) + "\\n")
    if mode == "die":
        sys.exit(1)
    if mode == "hang":
        time.sleep(3600)
    answer = {{"id": req["id"], "ok": True, "yaml": "path: " + req.get("path", "") + "\\n"}}
    if mode == "limit":
        answer = {{"id": req["id"], "ok": False, "kind": "limit", "error": "build of x took longer than 1s: stopped"}}
    if mode == "input":
        answer = {{"id": req["id"], "ok": False, "kind": "input", "error": "a.yaml: YAML nested\\n deeper"}}
    if mode == "wrong-id":
        answer["id"] = "nope"
    print(json.dumps(answer), flush=True)
    if mode == "limit":
        sys.exit(3)
"""


@pytest.fixture
def fake(no_toolchain: Path) -> Iterator[Path]:
    bin_dir = no_toolchain / "bin"
    bin_dir.mkdir()
    script = bin_dir / "fleet-build"
    script.write_text(FAKE.format(python=sys.executable))
    script.chmod(0o755)
    (bin_dir / "mode").write_text("ok")
    yield bin_dir
    fluxbuild.close()


def mode(bin_dir: Path, m: str) -> None:
    (bin_dir / "mode").write_text(m)


def log(bin_dir: Path) -> list[dict[str, object]]:
    return [json.loads(x) for x in (bin_dir / "log").read_text().splitlines()]


def test_one_process_serves_many_requests_with_a_clean_environment(
    fake: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLEET_SECRET_TOKEN", "s3cr3t")
    assert fluxbuild.build(tmp_path, "a") == "path: a\n"
    assert fluxbuild.build(tmp_path, "b") == "path: b\n"
    entries = log(fake)
    assert len({e["pid"] for e in entries}) == 1
    assert set(entries[0]["env"]) <= {"PATH", "HOME", "GOMEMLIMIT", "GOMAXPROCS", "LC_CTYPE"}  # nothing of fleet's


def test_a_builder_that_ended_is_started_again(fake: Path, tmp_path: Path) -> None:
    mode(fake, "die")
    with pytest.raises(RenderError, match="ended without an answer"):
        fluxbuild.build(tmp_path, "a")
    mode(fake, "ok")
    assert fluxbuild.build(tmp_path, "a") == "path: a\n"
    assert len({e["pid"] for e in log(fake)}) == 2


def test_a_request_over_budget_is_build_limit_and_the_next_gets_a_new_builder(fake: Path, tmp_path: Path) -> None:
    mode(fake, "limit")
    with pytest.raises(BuildLimit, match="took longer"):
        fluxbuild.build(tmp_path, "a")
    mode(fake, "ok")
    assert fluxbuild.build(tmp_path, "a") == "path: a\n"
    assert len({e["pid"] for e in log(fake)}) == 2


def test_an_input_error_is_one_line(fake: Path, tmp_path: Path) -> None:
    mode(fake, "input")
    with pytest.raises(RenderError) as e:
        fluxbuild.build(tmp_path, "a")
    assert e.value.message == "a.yaml: YAML nested deeper"
    assert not isinstance(e.value, BuildLimit)


def test_a_builder_that_hangs_is_stopped(fake: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fluxbuild, "_GRACE", 0.2)
    mode(fake, "hang")
    with pytest.raises(RenderError, match="did not answer"):
        fluxbuild.build(tmp_path, "a", fluxbuild.Limits(timeout=0.1))
    mode(fake, "ok")
    assert fluxbuild.build(tmp_path, "a") == "path: a\n"


def test_an_answer_to_another_request_is_refused(fake: Path, tmp_path: Path) -> None:
    mode(fake, "wrong-id")
    with pytest.raises(ToolMissing, match="another request"):
        fluxbuild.build(tmp_path, "a")
