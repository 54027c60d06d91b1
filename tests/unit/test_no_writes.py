"""A dry run writes nothing at all (fleet.paths.no_writes): what each piece does inside it. The commands
themselves are checked end to end in tests/integration/test_dry_runs.py and tests/e2e/test_redaction.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from fleet import paths
from fleet.adapters.pulumi_auto import LOCAL_PASSPHRASE, default_settings
from fleet.errors import StackNotFound


def files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*")) if root.exists() else []


def test_a_write_through_fleets_helpers_in_a_dry_run_is_a_bug_never_a_file(fleet_home: Path) -> None:
    with paths.no_writes():
        assert not paths.writes_allowed()
        for write in (lambda: paths.write_private(fleet_home / "a" / "b", "x"),
                      lambda: paths.open_private(fleet_home / "c.log"),
                      lambda: paths.private_dir(fleet_home / "d")):
            with pytest.raises(paths.DryRunWrite, match="a dry run tried to write"):
                write()
        with pytest.raises(FileNotFoundError):
            paths.private_secret("render-cache")  # not made in a dry run
    assert paths.writes_allowed()
    assert files(fleet_home) == []
    assert paths.private_secret("render-cache")  # outside, made on first use as before


def test_sealed_cache_entries_verify_and_a_bad_one_is_removed_but_never_in_a_dry_run(fleet_home: Path) -> None:
    entry = fleet_home / "cache" / "e.json"
    assert paths.write_sealed(entry, "v1", "key", "body\nline")
    assert paths.read_sealed(entry, "v1", "key") == "body\nline"
    assert paths.read_sealed(entry, "v1", "other-key") is None  # sealed for another key: not trusted
    assert not entry.exists()  # ... and removed: at this path it is a bad entry
    assert paths.write_sealed(entry, "v1", "key", "body\nline")
    header = entry.read_text().partition("\n")[0]
    entry.write_text(header + "\nedited")
    with paths.no_writes():
        assert paths.read_sealed(entry, "v1", "key") is None
        assert not paths.write_sealed(entry, "v1", "key", "body")  # a cache only: nothing written
    assert entry.read_text() == header + "\nedited"  # the dry run left the bad entry where it was
    assert paths.read_sealed(entry, "v1", "key") is None
    assert not entry.exists()  # outside a dry run a bad entry is removed


def test_an_existing_secret_is_read_in_a_dry_run(fleet_home: Path) -> None:
    value = paths.private_secret("render-cache")
    with paths.no_writes():
        assert paths.private_secret("render-cache") == value


def test_the_scratch_dir_is_outside_fleet_home_private_and_gone_when_the_dry_run_ends(fleet_home: Path) -> None:
    with pytest.raises(RuntimeError):
        paths.scratch_dir()
    with paths.no_writes():
        scratch = paths.scratch_dir()
        with paths.no_writes():  # nested: one scratch dir, removed by the outermost block only
            assert paths.scratch_dir() == scratch
        paths.write_private(scratch / "pulumi-home" / "x", "y")
        assert not scratch.is_relative_to(fleet_home) and scratch.stat().st_mode & 0o777 == 0o700
    assert not scratch.exists()


def test_the_engine_makes_no_passphrase_and_knows_no_stack_before_anything_was_provisioned(
    fleet_home: Path
) -> None:
    from fleet.adapters.pulumi_auto import Engine

    with paths.no_writes():
        s = default_settings()
        engine = Engine(s)
        assert engine.passphrase() not in (None, LOCAL_PASSPHRASE)  # what a run would make; not made here
        assert engine.resource_counts() == {} and engine.exists("eu-1") is False
        with pytest.raises(StackNotFound, match="nothing was provisioned yet"):
            engine.outputs("eu-1")
    assert files(fleet_home) == []


def test_a_dry_run_runs_the_engine_on_a_copy_of_the_file_backend_gone_when_it_ends(fleet_home: Path) -> None:
    """A preview or a dry-run refresh takes the stack's lock and writes backups (and a preview of a new stack
    creates it and removes it again): in a dry run the engine runs on a copy of the stacks in the scratch dir."""
    from fleet.adapters.pulumi_auto import Engine

    real = fleet_home / "pulumi" / ".pulumi"
    for name, text in {"meta.yaml": "version: 1\n", "stacks/fleet/eu-1.json": "{}", "stacks/fleet/eu-1.json.bak": "{}",
                       "locks/organization/fleet/eu-1/x.json": "{}", "history/fleet/eu-1/h.json": "{}"}.items():
        (real / name).parent.mkdir(parents=True, exist_ok=True)
        (real / name).write_text(text)
    before = {f: (real / f).stat().st_mtime_ns for f in files(real)}
    engine = Engine(default_settings())
    assert engine.settings.backend_url == f"file://{fleet_home / 'pulumi'}"
    with paths.no_writes():
        url = engine._backend_url()
        copy = Path(url.removeprefix("file://"))
        assert copy.is_relative_to(paths.scratch_dir()) and engine.locks("eu-1") == []
        assert files(copy / ".pulumi") == ["meta.yaml", "stacks", "stacks/fleet", "stacks/fleet/eu-1.json"]
        assert engine._env()["PULUMI_BACKEND_URL"] == url
    assert not copy.exists()
    assert engine._backend_url() == engine.settings.backend_url
    assert {f: (real / f).stat().st_mtime_ns for f in files(real)} == before
