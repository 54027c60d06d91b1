"""The operator seam: one rule for operator or direct sync (and why), the registry of operators, and the
lock one cluster's changing commands share."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from fleet.errors import InputError
from fleet.locks import ClusterBusy, cluster_lock, lock_path
from fleet.operator import decide_sync, operator_for
from fleet.paths import no_writes

FLUX, NONE = operator_for("flux"), operator_for("none")


def test_direct_asked_is_direct_whatever_the_operator() -> None:
    for op in (FLUX, NONE):
        for installed in (None, True, False):
            d = decide_sync("direct", op, "eu-1", installed=installed)
            assert d.mode == "direct" and "break-glass" in d.reason


def test_auto_goes_through_an_installed_operator_even_while_its_controllers_start() -> None:
    d = decide_sync("auto", FLUX, "eu-1", installed=True)
    assert d.mode == "operator" and d.reason == 'Flux is installed on "eu-1": it applies the revision'
    assert decide_sync("auto", FLUX, "eu-1").mode == "operator"  # a bootstrap installs it
    assert decide_sync("operator", FLUX, "eu-1", installed=True).mode == "operator"


def test_auto_applies_directly_where_the_operator_is_not_installed_and_says_so() -> None:
    d = decide_sync("auto", FLUX, "eu-1", installed=False)
    assert d.mode == "direct" and 'Flux is not installed on "eu-1"' in d.reason and "fleet provision" in d.reason
    with pytest.raises(InputError, match='--sync operator: Flux is not installed on "eu-1"'):
        decide_sync("operator", FLUX, "eu-1", installed=False)


def test_no_operator_is_direct_and_operator_asked_is_bad_input() -> None:
    d = decide_sync("auto", NONE, "eu-1", installed=None)
    assert d.mode == "direct" and 'operator.kind "none"' in d.reason
    with pytest.raises(InputError, match=r'fleet\.yaml says operator\.kind "none"'):
        decide_sync("operator", NONE, "eu-1")


def test_an_unknown_mode_or_operator_kind_is_bad_input() -> None:
    with pytest.raises(InputError, match='--sync must be auto, operator or direct, not "sideways"'):
        decide_sync("sideways", FLUX, "eu-1")
    with pytest.raises(InputError, match='unknown operator kind "argo"'):
        operator_for("argo")


def test_the_none_operator_installs_nothing_and_gates_nothing() -> None:
    assert (NONE.needs_repo_url, NONE.takes_age_key, NONE.runs_locally) == (False, False, False)
    assert NONE.queries() == [] and NONE.plan_lines(None, "a" * 40, "x", "y") == []  # type: ignore[arg-type]
    assert FLUX.gate_label == "Kustomization/flux-system/*" and len(FLUX.queries()) == 2


def test_the_cluster_lock_is_reentrant_in_one_process(fleet_home: Path) -> None:
    with cluster_lock("eu-1", "fleet bootstrap eu-1"), cluster_lock("eu-1", "fleet provision eu-1"):
        assert "fleet bootstrap eu-1" in lock_path("eu-1").read_text()
    assert lock_path("eu-1").read_text() == ""  # released: no holder left


def test_a_second_process_is_refused_at_once_naming_the_holder_until_the_holder_dies(fleet_home: Path) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys\nfrom fleet.locks import cluster_lock\n"
         "with cluster_lock('eu-1', 'fleet sync eu-1'):\n    print('held', flush=True)\n    sys.stdin.read()\n"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env={**os.environ, "FLEET_HOME": str(fleet_home)})
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"  # the holder says it holds it
        with pytest.raises(ClusterBusy) as e, cluster_lock("eu-1", "fleet bootstrap eu-1"):
            pass
        assert e.value.exit_code == 2
        assert f'cluster "eu-1" is being changed by fleet sync eu-1 (pid {holder.pid} on ' in e.value.message
        with cluster_lock("eu-2", "fleet sync eu-2"):  # another cluster is not held
            pass
        holder.kill()  # SIGKILL: the kernel releases the lock
        holder.wait()
        with cluster_lock("eu-1", "fleet bootstrap eu-1"):
            pass
    finally:
        holder.kill()
        holder.wait()


def test_a_dry_run_takes_no_lock_and_a_strange_name_stays_in_the_lock_folder(fleet_home: Path) -> None:
    with no_writes(), cluster_lock("eu-1", "fleet sync --dry-run eu-1"):
        assert not lock_path("eu-1").exists()
    p = lock_path("../../etc/x")
    assert p.parent == fleet_home / "locks" and ".." not in p.name
