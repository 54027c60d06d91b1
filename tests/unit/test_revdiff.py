"""``fleet diff --base``: the comparison of two revisions (fleet.rendering.revdiff) and how it prints
(fleet.cli.revdiff_view), on real git repos; the render is a fake of fleet's own (no kustomize here), which
counts what it renders. With the real kustomize: tests/integration/test_diff_base.py."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from fleet.adapters.git import GitRepo
from fleet.cli import revdiff_view
from fleet.errors import InputError, NotFound, RenderError
from fleet.registry import ClusterSpec, add_cluster, remove_cluster
from fleet.registry.layout import Layout
from fleet.rendering.build import Rendered, cluster_vars
from fleet.rendering.revdiff import ClusterChange, ObjectChange, RevisionDiff, diff_objects, diff_revisions
from tests.helpers import commit_file, git, new_fleet_repo, run_cli


class FakeRender:
    """What the overlay's own ``hello.yaml`` holds, with the cluster's variables in a ConfigMap; counts calls."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    def __call__(self, g: GitRepo, sha: str, spec: ClusterSpec, layout: Layout) -> Rendered:
        self.calls.append((spec.name, sha))
        text = g.read_file(sha, f"{layout.overlay_dir(spec.environment)}/hello.yaml") or ""
        if "BROKEN" in text:
            raise RenderError(f"kustomize build {layout.overlay_dir(spec.environment)} at {sha[:12]} failed: boom\n"
                              "second line")
        objs: list[dict[str, Any]] = [o for o in yaml.safe_load_all(text) if o]
        objs.append({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "vars", "namespace": "hello"},
                     "data": cluster_vars(spec)})
        return Rendered(spec.name, sha, tuple(objs), "", "")


def _spec(name: str, env: str, wave: int = 0, **kw: Any) -> ClusterSpec:
    return ClusterSpec(name=name, environment=env, wave=wave, **kw)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = new_fleet_repo(tmp_path)
    for i in range(6):
        env = ("dev", "staging", "prod")[i % 3]
        add_cluster(root, _spec(f"c{i}", env, wave=i % 2, labels={"tier": ("gold", "silver")[i % 2]}))
    return root


def _head(root: Path) -> str:
    return git(root, "rev-parse", "HEAD").strip()


def test_a_change_to_one_overlay_renders_only_that_overlays_clusters(repo: Path) -> None:
    base = _head(repo)
    hello = (repo / "environments/prod/hello.yaml").read_text()
    commit_file(repo, "environments/prod/hello.yaml", hello.replace("${REPLICAS:=3}", "${REPLICAS:=5}"))
    render = FakeRender()
    d = diff_revisions(repo, base, render=render)
    assert sorted({n for n, _ in render.calls}) == ["c2", "c5"] and len(render.calls) == 4  # both revisions
    assert d.rendered == 2 and d.changes and not d.failed
    changed = {c.cluster: c for c in d.clusters if c.status != "unchanged"}
    assert set(changed) == {"c2", "c5"}
    dep = changed["c2"].objects[0]
    assert dep.change == "changed" and dep.object.startswith("Deployment/") and not dep.secret
    assert "-        replicas: ${REPLICAS:=3}" not in dep.diff  # the fake does not substitute; the diff is YAML
    assert "REPLICAS:=5" in dep.diff and dep.diff.startswith(f"--- {base[:12]}/")
    assert [c.wave for c in d.clusters] == sorted(c.wave for c in d.clusters)  # grouped by wave
    assert [c.cluster for c in d.clusters if c.wave == 0] == ["c0", "c2", "c4"]
    same = next(c for c in d.clusters if c.cluster == "c0")
    assert same.status == "unchanged" and same.unchanged is None and not same.rendered


def test_no_change_renders_nothing(repo: Path) -> None:
    base = _head(repo)
    commit_file(repo, "README-ops.md", "not read by any overlay\n")
    render = FakeRender()
    d = diff_revisions(repo, base, "HEAD", render=render)
    assert render.calls == [] and not d.changes and d.rendered == 0
    assert revdiff_view.text(d).startswith("no change: 6 clusters render the same")


def test_a_cluster_entry_or_its_variables_changing_renders_that_cluster(repo: Path) -> None:
    base = _head(repo)
    from fleet.registry import ClusterUpdate, set_cluster

    set_cluster(repo, "c1", ClusterUpdate(vars={"LOG_LEVEL": "debug"}))
    render = FakeRender()
    d = diff_revisions(repo, base, render=render)
    assert {n for n, _ in render.calls} == {"c1"}
    c1 = next(c for c in d.clusters if c.cluster == "c1")
    assert c1.status == "changed" and c1.changed == 1 and "+  LOG_LEVEL: debug" in c1.objects[0].diff


def test_clusters_added_and_removed_from_the_registry(repo: Path) -> None:
    base = _head(repo)
    add_cluster(repo, _spec("new-1", "dev", wave=3))
    remove_cluster(repo, "c0")
    d = diff_revisions(repo, base, render=FakeRender())
    by = {c.cluster: c for c in d.clusters}
    assert by["new-1"].status == "added" and by["new-1"].added == len(by["new-1"].objects) > 0
    assert by["c0"].status == "removed" and by["c0"].removed > 0 and by["c0"].added == 0
    assert d.clusters[-1].cluster == "new-1"  # wave 3, last
    text = revdiff_view.text(d)
    assert "cluster new-1 (dev): added to the registry" in text
    assert "cluster c0 (dev): removed from the registry" in text


def test_a_render_failing_at_one_revision_is_listed_as_failed_with_its_one_line(repo: Path) -> None:
    base = _head(repo)
    commit_file(repo, "environments/staging/hello.yaml", "BROKEN\n")
    d = diff_revisions(repo, base, render=FakeRender())
    failed = [c for c in d.clusters if c.status == "failed"]
    assert [c.cluster for c in failed] == ["c4", "c1"] and d.failed  # wave 0, then wave 1
    assert failed[0].error is not None and failed[0].error.startswith(f"at head {_head(repo)[:12]}: kustomize build")
    assert "\n" not in failed[0].error  # one line


def test_a_selector_picks_clusters_at_either_revision(repo: Path) -> None:
    base = _head(repo)
    hello = (repo / "environments/prod/hello.yaml").read_text()
    commit_file(repo, "environments/prod/hello.yaml", hello + "\n")
    render = FakeRender()
    d = diff_revisions(repo, base, selector="tier=silver", render=render)
    assert [c.cluster for c in d.clusters] == ["c1", "c3", "c5"]
    assert {n for n, _ in render.calls} == {"c5"}
    with pytest.raises(NotFound, match='"nope" is in the registry at neither'):
        diff_revisions(repo, base, names=["nope"], render=render)


@pytest.mark.parametrize("rev", ["HEAD@{yesterday}", "main@{2}", "-x", "--output=/tmp/x", "", "  "])
def test_revisions_that_do_not_name_one_commit_everywhere_are_refused(repo: Path, rev: str) -> None:
    with pytest.raises(InputError) as e:
        diff_revisions(repo, rev, render=FakeRender())
    assert e.value.exit_code == 2 and "--base" in e.value.message


def test_a_missing_commit_is_not_found(repo: Path) -> None:
    with pytest.raises(NotFound, match="deadbeef"):
        diff_revisions(repo, "HEAD", "deadbeefdeadbeefdeadbeefdeadbeefdeadbeef", render=FakeRender())


@pytest.mark.parametrize("args", [
    ("--base", "HEAD@{yesterday}"),
    ("--base", "-x"),
    ("--base", "0123456789abcdef0123456789abcdef01234567"),
    ("--base", "HEAD", "--head", "HEAD@{1}"),
    ("--base", "HEAD", "-o", "xml"),
    ("--base", "HEAD", "--rev", "HEAD"),
    ("--head", "HEAD"),
    ("-l", "tier=gold"),
    (),
    ("c0", "-o", "markdown"),
])
def test_the_command_refuses_bad_input_with_one_line_and_exit_2(
    repo: Path, capsys: pytest.CaptureFixture[str], args: tuple[str, ...]
) -> None:
    code, out, err = run_cli(capsys, "diff", *args, "--repo", str(repo))
    assert code == 2, err
    assert out == "" and "Traceback" not in err
    assert len([line for line in err.splitlines() if line.startswith("✗")]) == 1


# ---- comparing objects ----------------------------------------------------------------------------


def _obj(kind: str, name: str, api: str = "v1", **rest: Any) -> dict[str, Any]:
    return {"apiVersion": api, "kind": kind, "metadata": {"name": name, "namespace": "ns"}, **rest}


def test_objects_added_removed_changed_and_the_same() -> None:
    base = [_obj("ConfigMap", "a", data={"k": "1"}), _obj("ConfigMap", "b"), _obj("Service", "s")]
    head = [_obj("ConfigMap", "a", data={"k": "2"}), _obj("Service", "s"), _obj("ConfigMap", "c")]
    changes, same = diff_objects(base, head, "b1", "h1")
    assert [(c.change, c.object) for c in changes] == [
        ("changed", "ConfigMap/ns/a"), ("removed", "ConfigMap/ns/b"), ("added", "ConfigMap/ns/c")]
    assert same == 1
    assert changes[0].diff.splitlines()[:2] == ["--- b1/ConfigMap/ns/a", "+++ h1/ConfigMap/ns/a"]
    assert "-  k: '1'" in changes[0].diff and "+  k: '2'" in changes[0].diff


def test_secrets_and_sops_objects_are_only_said_to_change() -> None:
    sops = {"mac": "ENC[AES256_GCM,data:xyz]", "age": [{"recipient": "age1x", "enc": "..."}], "version": "3.9.0"}
    base = [_obj("Secret", "db", data={"password": "c2VjcmV0"}),
            _obj("ConfigMap", "enc", data={"token": "ENC[AES256_GCM,data:old,iv:a,tag:b,type:str]"}, sops=sops)]
    head = [_obj("Secret", "db", data={"password": "bmV3c2VjcmV0"}),
            _obj("ConfigMap", "enc", data={"token": "ENC[AES256_GCM,data:new,iv:a,tag:b,type:str]"}, sops=sops),
            _obj("Secret", "new", stringData={"key": "plain-value"})]
    changes, _ = diff_objects(base, head)
    assert [(c.object, c.change, c.secret, c.diff) for c in changes] == [
        ("ConfigMap/ns/enc", "changed", True, ""), ("Secret/ns/db", "changed", True, ""),
        ("Secret/ns/new", "added", True, "")]
    d = RevisionDiff("a" * 40, "b" * 40, (ClusterChange("c", 0, "prod", "changed", True, 1, 0, 2, 0,
                                                        tuple(changes)),), 1, 0.1)
    for shown in (revdiff_view.text(d), revdiff_view.markdown(d), json.dumps(revdiff_view.as_data(d))):
        for value in ("c2VjcmV0", "bmV3c2VjcmV0", "plain-value", "data:new", "data:old"):
            assert value not in shown
    assert "changed Secret/ns/db (a secret: values not shown)" in revdiff_view.text(d)


# ---- markdown -------------------------------------------------------------------------------------


def _diff(*clusters: ClusterChange) -> RevisionDiff:
    return RevisionDiff("1" * 40, "2" * 40, clusters, sum(c.rendered for c in clusters), 0.5)


def test_markdown_summary_table_first_then_details_folded() -> None:
    change = ObjectChange("Deployment/hello/web", "changed", False, "--- a\n+++ b\n-  replicas: 3\n+  replicas: 5\n")
    d = _diff(
        ClusterChange("eu-1", 1, "prod", "changed", True, 0, 0, 1, 4, (change,)),
        ClusterChange("eu-2", 0, "staging", "unchanged", False, 0, 0, 0, None, ()),
        ClusterChange("us-1", 0, "dev", "failed", True, 0, 0, 0, None, (), "at head 222222222222: boom | <b>"),
    )
    md = revdiff_view.markdown(d)
    table = md.index("| wave | cluster |")
    assert table < md.index("<details>")
    rows = [line for line in md.splitlines() if line.startswith("| ") and "wave" not in line]
    assert rows[0].startswith("| 1 | eu-1 |") or rows[0].startswith("| 0 | us-1 |")
    assert "| failed: at head 222222222222: boom &#124; &lt;b&gt; |" in md  # escaped: the table stays whole
    assert "```text\nat head 222222222222: boom | <b>\n```" in md  # in a fence, shown as it is
    assert "```diff\n--- a\n+++ b\n-  replicas: 3\n+  replicas: 5\n```" in md
    assert "eu-2" not in md  # unchanged clusters are only counted


def test_markdown_fences_are_longer_than_any_backticks_in_a_diff() -> None:
    nasty = "+ note: ```\n+ </details>\n+ ## forged heading\n"
    d = _diff(ClusterChange("eu-1", 0, "prod", "changed", True, 0, 0, 1, 0,
                            (ObjectChange("ConfigMap/x/y", "changed", False, nasty),)))
    md = revdiff_view.markdown(d)
    assert "````diff\n" + nasty + "````\n" in md


def test_markdown_leaves_details_out_before_githubs_limit() -> None:
    big = "+" + "x" * 5000 + "\n"
    clusters = tuple(ClusterChange(f"c{i:02d}", 0, "prod", "changed", True, 0, 0, 1, 0,
                                   (ObjectChange("ConfigMap/x/y", "changed", False, big),)) for i in range(30))
    md = revdiff_view.markdown(_diff(*clusters))
    assert len(md) < revdiff_view.GITHUB_COMMENT_LIMIT
    assert len(re.findall(r"^\| 0 \| c\d\d \|", md, re.M)) == 30  # every cluster in the table
    assert "details left out" in md
