"""fleet sync / diff against a real local cluster: apply, change in Git, apply again, drift."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import run_cli
from live_support import commit_objects, configmap, deployment, live_repo, namespace

from fleet.adapters.kube import Kube, KubeTarget
from fleet.live.apply import sync
from fleet.live.inventory import read_inventory
from fleet.live.objects import ANN_CLUSTER, ANN_REVISION, LABEL_MANAGED
from fleet.output import SilentReporter

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("live")]


def test_sync_change_sync_again_updates_and_prunes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], kube: Kube, live_target: KubeTarget, ns: str
) -> None:
    v1 = [
        namespace(ns),
        configmap(ns, "settings", LEVEL="debug"),
        configmap(ns, "old", X="1"),
        deployment(ns, "web", replicas=1),
    ]
    repo = live_repo(tmp_path, "it-sync", live_target.kubeconfig, v1)  # type: ignore[arg-type]

    code, out, err = run_cli(capsys, "sync", "it-sync", "--repo", str(repo), "-o", "json")
    assert code == 0, err
    first = json.loads(out)
    assert first["objects"] == 4 and len(first["created"]) == 4 and first["pruned"] == []
    web = kube.get("apps/v1", "Deployment", "web", ns)
    assert web is not None
    meta = web["metadata"]
    assert meta["labels"][LABEL_MANAGED] == "fleet"
    assert meta["annotations"][ANN_REVISION] == first["revision"]
    assert meta["annotations"][ANN_CLUSTER] == "it-sync"
    assert any(m["manager"] == "fleet" and m["operation"] == "Apply" for m in meta["managedFields"])
    inv = read_inventory(kube)
    assert inv is not None and inv.state == "applied" and inv.revision == first["revision"]
    assert {str(e) for e in inv.entries} == {
        f"Namespace/{ns}",
        f"ConfigMap/{ns}/settings",
        f"ConfigMap/{ns}/old",
        f"Deployment/{ns}/web",
    }

    # change in Git: edit one object, drop one, add one
    v2 = [
        namespace(ns),
        configmap(ns, "settings", LEVEL="info"),
        configmap(ns, "new", Y="2"),
        deployment(ns, "web", replicas=2),
    ]
    rev2 = commit_objects(repo, v2, message="v2")
    code, out, err = run_cli(capsys, "diff", "it-sync", "--repo", str(repo))
    assert code == 1, err
    assert f"update ConfigMap/{ns}/settings" in out and "-  LEVEL: debug" in out and "+  LEVEL: info" in out
    assert f"create ConfigMap/{ns}/new" in out and f"prune ConfigMap/{ns}/old" in out

    code, out, err = run_cli(capsys, "sync", "it-sync", "--repo", str(repo), "-o", "json")
    assert code == 0, err
    second = json.loads(out)
    assert second["revision"] == rev2 and second["previous_revision"] == first["revision"]
    assert second["pruned"] == [f"ConfigMap/{ns}/old"] and second["created"] == [f"ConfigMap/{ns}/new"]
    assert "pruned" in err
    assert kube.get("v1", "ConfigMap", "old", ns) is None
    assert kube.get("v1", "ConfigMap", "settings", ns)["data"] == {"LEVEL": "info"}  # type: ignore[index]
    assert kube.get("apps/v1", "Deployment", "web", ns)["spec"]["replicas"] == 2  # type: ignore[index]
    inv = read_inventory(kube)
    assert inv is not None and inv.state == "applied" and inv.revision == rev2
    assert f"ConfigMap/{ns}/old" not in {str(e) for e in inv.entries}

    code, out, err = run_cli(capsys, "diff", "it-sync", "--repo", str(repo))
    assert code == 0, err
    assert "no drift" in out


def test_drift_by_hand_is_reported_with_exit_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], kube: Kube, live_target: KubeTarget, ns: str
) -> None:
    objects = [namespace(ns), configmap(ns, "settings", LEVEL="debug"), deployment(ns, "web", replicas=1)]
    repo = live_repo(tmp_path, "it-drift", live_target.kubeconfig, objects)  # type: ignore[arg-type]
    assert run_cli(capsys, "sync", "it-drift", "--repo", str(repo))[0] == 0
    assert run_cli(capsys, "diff", "it-drift", "--repo", str(repo))[0] == 0

    # someone edits the cluster by hand (another field manager), and deletes an object
    kube._call(
        "PATCH",
        f"/api/v1/namespaces/{ns}/configmaps/settings",
        body={"data": {"LEVEL": "trace"}},
        content_type="application/merge-patch+json",
        query=[("fieldManager", "kubectl-edit")],
    )
    kube._call(
        "PATCH",
        f"/apis/apps/v1/namespaces/{ns}/deployments/web",
        body={"spec": {"replicas": 3}},
        content_type="application/merge-patch+json",
        query=[("fieldManager", "kubectl-scale")],
    )

    code, out, err = run_cli(capsys, "diff", "it-drift", "--repo", str(repo))
    assert code == 1, err
    assert f"update ConfigMap/{ns}/settings" in out
    assert "-  LEVEL: trace" in out and "+  LEVEL: debug" in out
    assert "-  replicas: 3" in out and "+  replicas: 1" in out
    code, out, _ = run_cli(capsys, "diff", "it-drift", "--repo", str(repo), "-o", "json")
    data = json.loads(out)
    assert code == 1
    assert list(data) == [
        "cluster",
        "revision",
        "drift",
        "create",
        "update",
        "prune",
        "unchanged",
        "objects",
        "duration_s",
    ]
    assert data["drift"] is True and data["update"] == 2 and data["unchanged"] == 1
    assert {o["object"] for o in data["objects"]} == {f"ConfigMap/{ns}/settings", f"Deployment/{ns}/web"}
    # the dry run changed nothing
    assert kube.get("v1", "ConfigMap", "settings", ns)["data"] == {"LEVEL": "trace"}  # type: ignore[index]

    kube.delete("v1", "ConfigMap", "settings", ns)
    code, out, _ = run_cli(capsys, "diff", "it-drift", "--repo", str(repo))
    assert code == 1 and f"create ConfigMap/{ns}/settings" in out
    assert run_cli(capsys, "sync", "it-drift", "--repo", str(repo))[0] == 0
    assert run_cli(capsys, "diff", "it-drift", "--repo", str(repo))[0] == 0


def test_dry_run_and_no_prune_change_nothing_they_should_not(
    kube: Kube, live_target: KubeTarget, ns: str
) -> None:
    r = SilentReporter()
    sync(live_target, [namespace(ns), configmap(ns, "a"), configmap(ns, "b")], "1" * 40, reporter=r)
    dry = sync(
        live_target,
        [namespace(ns), configmap(ns, "a"), configmap(ns, "c")],
        "2" * 40,
        dry_run=True,
        reporter=r,
    )
    assert dry.dry_run and dry.pruned == (f"ConfigMap/{ns}/b",) and dry.created == (f"ConfigMap/{ns}/c",)
    assert kube.get("v1", "ConfigMap", "b", ns) is not None and kube.get("v1", "ConfigMap", "c", ns) is None
    inv = read_inventory(kube)
    assert inv is not None and inv.revision == "1" * 40

    kept = sync(live_target, [namespace(ns), configmap(ns, "a")], "3" * 40, prune=False, reporter=r)
    assert kept.kept == (f"ConfigMap/{ns}/b",) and kept.pruned == ()
    assert kube.get("v1", "ConfigMap", "b", ns) is not None
    inv = read_inventory(kube)
    assert inv is not None and f"ConfigMap/{ns}/b" in {str(e) for e in inv.entries}  # still tracked
    pruned = sync(live_target, [namespace(ns), configmap(ns, "a")], "3" * 40, reporter=r)
    assert pruned.pruned == (f"ConfigMap/{ns}/b",)


def test_never_deletes_what_fleet_did_not_apply(kube: Kube, live_target: KubeTarget, ns: str) -> None:
    r = SilentReporter()
    sync(live_target, [namespace(ns), configmap(ns, "mine"), configmap(ns, "taken")], "1" * 40, reporter=r)
    # someone else takes "taken" over: recreated without fleet's marks
    kube.delete("v1", "ConfigMap", "taken", ns)
    kube.apply(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "taken", "namespace": ns},
            "data": {"owner": "someone"},
        }
    )
    result = sync(live_target, [namespace(ns)], "2" * 40, reporter=r)
    assert result.pruned == (f"ConfigMap/{ns}/mine",)
    assert result.kept == (f"ConfigMap/{ns}/taken",)
    assert kube.get("v1", "ConfigMap", "taken", ns) is not None


def test_resync_skips_what_is_already_applied_but_not_what_someone_touched(
    kube: Kube, live_target: KubeTarget, ns: str
) -> None:
    r = SilentReporter()
    objects = [namespace(ns), *[configmap(ns, f"c{i}", i=str(i)) for i in range(10)], deployment(ns, "web")]
    first = sync(live_target, objects, "1" * 40, reporter=r)
    assert len(first.created) == 12 and first.unchanged == 0
    again = sync(live_target, objects, "1" * 40, reporter=r)
    # nothing is sent again (the Deployment's controller only wrote its status subresource)
    assert again.unchanged == 12 and again.configured == 0 and again.created == ()
    kube._call(
        "PATCH",
        f"/api/v1/namespaces/{ns}/configmaps/c3",
        body={"data": {"i": "tampered"}},
        content_type="application/merge-patch+json",
        query=[("fieldManager", "kubectl-edit")],
    )
    healed = sync(live_target, objects, "1" * 40, reporter=r)
    assert healed.unchanged == 11 and healed.configured == 1
    assert kube.get("v1", "ConfigMap", "c3", ns)["data"] == {"i": "3"}  # type: ignore[index]
    new_rev = sync(live_target, objects, "2" * 40, reporter=r)  # a new revision: every object changes
    assert new_rev.unchanged == 0 and new_rev.configured == 12


def test_a_large_inventory_spills_into_chunks_and_reads_back(kube: Kube, ns: str) -> None:
    from fleet.live.inventory import INVENTORY_NAMESPACE, Inventory, ensure_namespace, write_inventory
    from fleet.live.objects import ObjectRef

    ensure_namespace(kube)
    big = frozenset(ObjectRef("", "v1", "ConfigMap", ns, f"object-{i:05d}-" + "x" * 30) for i in range(8000))
    first = write_inventory(kube, Inventory("it", "a" * 40, "applying", "", big))
    chunks = kube.list_objects("v1", "ConfigMap", namespace=INVENTORY_NAMESPACE,
                               label_selector="fleet.dev/inventory=true").items
    assert len(chunks) >= 3  # the head and at least two chunks of 256 KiB
    back = read_inventory(kube)
    assert back is not None and back.entries == big and back.state == "applying"
    small = frozenset(list(big)[:10])
    write_inventory(kube, Inventory("it", "b" * 40, "applied", "", small), old_generation=first.generation)
    left = kube.list_objects("v1", "ConfigMap", namespace=INVENTORY_NAMESPACE,
                             label_selector="fleet.dev/inventory=true").items
    assert [c["metadata"]["name"] for c in left] == ["fleet-inventory"]  # old chunks removed
    back = read_inventory(kube)
    assert back is not None and back.entries == small and back.revision == "b" * 40


def test_a_concurrent_writer_is_never_overwritten(kube: Kube, live_target: KubeTarget, ns: str) -> None:
    from fleet.errors import KubeError
    from fleet.live.inventory import Inventory, write_inventory

    sync(live_target, [namespace(ns), configmap(ns, "a")], "1" * 40, reporter=SilentReporter())
    ours = read_inventory(kube)  # what a sync read before applying
    assert ours is not None and ours.resource_version
    theirs = sync(live_target, [namespace(ns), configmap(ns, "a"), configmap(ns, "b")], "2" * 40,
                  reporter=SilentReporter())  # another sync finishes meanwhile
    assert theirs.revision == "2" * 40
    with pytest.raises(KubeError, match="inventory changed while this sync ran"):
        write_inventory(kube, Inventory("it", "3" * 40, "applying", "", ours.entries),
                        old_generation=ours.generation, expect_version=ours.resource_version)
    now = read_inventory(kube)
    assert now is not None and now.revision == "2" * 40 and f"ConfigMap/{ns}/b" in {str(e) for e in now.entries}


def test_a_head_write_whose_answer_was_lost_is_not_taken_for_another_writer(
    kube: Kube, live_target: KubeTarget, ns: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The server wrote the inventory's head but the answer was lost (a connection reset after it acted),
    so the client sent it again and met its own write as a conflict: that is this sync's write, not
    another sync's (found by bench/reliability.py behind the fault-injecting proxy)."""
    from fleet.live.inventory import INVENTORY_NAME, Inventory, write_inventory

    sync(live_target, [namespace(ns), configmap(ns, "a")], "4" * 40, reporter=SilentReporter())
    ours = read_inventory(kube)
    assert ours is not None and ours.resource_version
    real = kube.apply
    sent: list[str] = []

    def answer_lost(obj: dict, **kw: object):  # type: ignore[no-untyped-def,type-arg]
        if obj["metadata"]["name"] == INVENTORY_NAME:
            sent.append("head")
            real(obj, **kw)  # the server acts; the answer never comes back, and the client sends it again
        return real(obj, **kw)

    monkeypatch.setattr(kube, "apply", answer_lost)
    written = write_inventory(kube, Inventory("it", "5" * 40, "applied", "", ours.entries),
                              old_generation=ours.generation, expect_version=ours.resource_version)
    monkeypatch.undo()
    assert sent == ["head"]
    now = read_inventory(kube)
    assert now is not None and now.revision == "5" * 40 and now.resource_version == written.resource_version
