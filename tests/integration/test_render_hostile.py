"""Confinement by construction and bounded builds, with the real builder (fleet-build).

Each bypass of the old Python pre-check (a one-line inline generator configuration, ``\\r`` line breaks,
a ``!!binary`` path, a read past the 2,000th kustomization), aimed at every host secret a render must
never see (a file outside the repo, ``/proc/self/environ`` and fleet's own process environment, the
fleet home's age key and render-cache secret), in an environment overlay and in an adopted Flux repo:
the render is refused (exit 2, one line) and no byte of any secret is in the output or the cache. The
same with the pre-check switched off: the guarantee is the builder's filesystem, not the guess.

A YAML alias bomb and a 10,000-level document fail within seconds, one line naming the file.
"""

from __future__ import annotations

import base64
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from fleet.adapters import fluxbuild
from fleet.adopt import adopt_repo
from fleet.rendering import build
from tests.adopt_fixtures import flux_repo, write_tree
from tests.helpers import commit_file, git, need_tool, new_fleet_repo, run_cli
from tests.unit.test_hostile_inputs import BUILDER_CASES, Case, refused_cleanly

pytestmark = pytest.mark.integration

Capsys = pytest.CaptureFixture[str]
OVERLAY = "environments/prod/kustomization.yaml"
KHEAD = "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nnamespace: hello-prod\n"
KSAFE = KHEAD + "resources:\n  - namespace.yaml\n  - ../../base\n"
FLUX_APPS = "apps/production/kustomization.yaml"
FLUX_SAFE = "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n  - ../base/podinfo\n"


@pytest.fixture(autouse=True)
def builder() -> Iterator[None]:
    need_tool("fleet-build")
    build.clear_cache()
    yield
    fluxbuild.close()


class Host:
    """The host's secrets a render must never see, each with a marker to look for."""

    def __init__(self, tmp: Path, home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.outside = tmp / "outside" / "host-secret.txt"
        self.outside.parent.mkdir()
        self.outside.write_text("HOST-SECRET-6f1d2c0e\n")
        self.age_key = home / "age.key"
        self.age_key.write_text("AGE-SECRET-KEY-1QYQSZQGPQYQSZQGPQYQSZQGPQYQSZQGPQYQSZQGPQYQSZQGPQYQS8A0N7\n")
        monkeypatch.setenv("FLEET_SOPS_AGE_KEY_FILE", str(self.age_key))
        self.cache_secret = home / "secrets" / "render-cache"
        self.cache_secret.parent.mkdir(mode=0o700, exist_ok=True)
        self.cache_secret.write_text("RENDER-CACHE-SECRET-93b7a1\n")
        self.cache_secret.chmod(0o600)
        self.home = home

    def targets(self) -> dict[str, str]:
        return {
            "outside": str(self.outside),
            "age-key": str(self.age_key),
            "cache-secret": str(self.cache_secret),
            "proc-self": "/proc/self/environ",
            "proc-fleet": f"/proc/{os.getpid()}/environ",
        }

    def markers(self) -> list[bytes]:
        found = [b"HOST-SECRET-6f1d2c0e", b"AGE-SECRET-KEY-1QYQSZQ", b"RENDER-CACHE-SECRET-93b7a1"]
        # fleet's own environment, as /proc shows it: every distinctive NAME=value entry
        found += [e for e in Path(f"/proc/{os.getpid()}/environ").read_bytes().split(b"\0") if len(e) >= 24]
        return found

    def leaks(self, *texts: str) -> list[bytes]:
        """Markers found in ``texts`` or in any file of the fleet home's cache."""
        blobs = [t.encode() for t in texts]
        blobs += [p.read_bytes() for p in (self.home / "cache").rglob("*") if p.is_file()]
        return [m[:40] for m in self.markers() if any(m in b for b in blobs)]


@pytest.fixture
def host(tmp_path: Path, fleet_home: Path, monkeypatch: pytest.MonkeyPatch) -> Host:
    return Host(tmp_path, fleet_home, monkeypatch)


# ---- the bypasses --------------------------------------------------------------------------------


def one_line_inline(target: str) -> str:
    return ("generators:\n  - \"{apiVersion: builtin, kind: ConfigMapGenerator, metadata: {name: leak}, "
            f"files: [{target}]}}\"\n")


def cr_line_breaks(target: str) -> str:
    return ('generators:\n  - "apiVersion: builtin\\rkind: ConfigMapGenerator\\rmetadata:\\r  name: leak\\r'
            f'files:\\r- {target}\\r"\n')


def binary_path(target: str) -> str:
    return f"configMapGenerator:\n  - name: leak\n    files: [!!binary {base64.b64encode(target.encode()).decode()}]\n"


def past_2000(target: str) -> str:
    """The leak in the last of 2,001 components (the pre-check stopped at 2,000 kustomizations)."""
    return "components:\n" + "".join(f"  - ../../many/c{i}\n" for i in range(2001))


def many_components(repo: Path, target: str) -> None:
    for i in range(2001):
        d = repo / "many" / f"c{i}"
        d.mkdir(parents=True)
        body = "apiVersion: kustomize.config.k8s.io/v1alpha1\nkind: Component\ncommonAnnotations: {many: \"yes\"}\n"
        if i == 2000:
            body += f"configMapGenerator:\n  - name: leak\n    files: [{target}]\n"
        (d / "kustomization.yaml").write_text(body)


BYPASSES: dict[str, Callable[[str], str]] = {
    "one-line-inline": one_line_inline,
    "cr-line-breaks": cr_line_breaks,
    "binary-path": binary_path,
}
TARGETS = ("outside", "age-key", "cache-secret", "proc-self", "proc-fleet")


def _refused_without_leak(capsys: Capsys, host: Host, *argv: str) -> str:
    code, out, err = run_cli(capsys, *argv)
    lines = err.splitlines()
    assert code == 2, f"exit {code}: {err}"
    assert lines and lines[0].startswith("✗ ") and len(lines) <= 2, err
    assert "Traceback" not in err
    assert out == ""
    assert host.leaks(out, err) == []
    return err


@pytest.fixture(params=["pre-check", "no-pre-check"])
def precheck(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Both with fleet's Python pre-check and without it: confinement must not depend on it."""
    if request.param == "no-pre-check":
        _no_precheck(monkeypatch)
    return str(request.param)


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("bypass", sorted(BYPASSES))
def test_no_bypass_reads_a_host_byte_in_an_overlay(
    bypass: str, target: str, precheck: str, host: Host, tmp_path: Path, capsys: Capsys,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    repo = new_fleet_repo(tmp_path, clusters={"eu-1": "prod"})
    commit_file(repo, OVERLAY, KSAFE + BYPASSES[bypass](host.targets()[target]))
    monkeypatch.chdir(repo)
    err = _refused_without_leak(capsys, host, "render", "eu-1")
    if precheck == "no-pre-check":  # the builder's filesystem refused it
        assert "fs-security-constraint" in err and "not in or below the repository" in err, err
        assert "environments/prod" in err


def _no_precheck(monkeypatch: pytest.MonkeyPatch) -> None:
    from fleet.rendering import confine, fluxrender

    monkeypatch.setattr(confine, "check_overlay", lambda g, rev, directory: None)
    monkeypatch.setattr(fluxrender, "check_overlay", lambda g, rev, directory: None)


@pytest.mark.parametrize(("check", "target"), [("pre-check", "outside"), ("no-pre-check", "proc-fleet")])
def test_a_read_past_the_2000th_kustomization_is_refused(
    check: str, target: str, host: Host, tmp_path: Path, capsys: Capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    if check == "no-pre-check":
        _no_precheck(monkeypatch)
    repo = new_fleet_repo(tmp_path, clusters={"eu-1": "prod"})
    many_components(repo, host.targets()[target])
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "2,001 components")
    commit_file(repo, OVERLAY, KSAFE + past_2000(host.targets()[target]))
    monkeypatch.chdir(repo)
    err = _refused_without_leak(capsys, host, "render", "eu-1")
    assert "fs-security-constraint" in err, err


FLUX_CASES = [("no-pre-check", b, t) for b in sorted(BYPASSES) for t in TARGETS]
FLUX_CASES += [("pre-check", b, "outside") for b in sorted(BYPASSES)]


@pytest.mark.parametrize(("check", "bypass", "target"), FLUX_CASES, ids=["-".join(c) for c in FLUX_CASES])
def test_no_bypass_reads_a_host_byte_in_an_adopted_flux_repo(
    check: str, bypass: str, target: str, host: Host, tmp_path: Path, capsys: Capsys,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The same in an adopted Flux repo (the Kustomization's path holds the bypass); fleet writes the
    kustomization Flux would generate, so a ``!!binary`` path reaches kustomize as other text, unread."""
    if check == "no-pre-check":
        _no_precheck(monkeypatch)
    repo = flux_repo(tmp_path)
    adopt_repo(repo)
    write_tree(repo, {FLUX_APPS: FLUX_SAFE + BYPASSES[bypass](host.targets()[target])})
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "hostile apps")
    monkeypatch.chdir(repo)
    err = _refused_without_leak(capsys, host, "render", "production")
    if check == "no-pre-check" and bypass != "binary-path":
        assert "fs-security-constraint" in err and "apps/production" in err, err


def test_inside_the_repo_the_same_forms_still_build(host: Host, tmp_path: Path) -> None:
    """The bypass forms are real kustomize features: aimed inside the repository they build (so the
    refusals above are the confinement's, not a syntax error)."""
    from fleet.rendering.cluster import render_cluster

    repo = new_fleet_repo(tmp_path, clusters={"eu-1": "prod"})
    commit_file(repo, "environments/prod/inside.txt", "INSIDE-THE-REPO\n")
    for name, form in BYPASSES.items():
        commit_file(repo, OVERLAY, KSAFE + form("inside.txt"), message=name)
        build.clear_cache()
        r = render_cluster(repo, "eu-1")
        leak = next(o for o in r.objects if o["kind"] == "ConfigMap" and o["metadata"]["name"].startswith("leak"))
        assert leak["data"] == {"inside.txt": "INSIDE-THE-REPO\n"}, name


# ---- bounded builds ------------------------------------------------------------------------------


def alias_bomb() -> str:
    """A billion laughs in a manifest: 12 levels of 9 aliases each (about 2.8e11 strings expanded)."""
    lines = ["apiVersion: v1", "kind: ConfigMap", "metadata:", "  name: lol", "data:",
             '  a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, 12):
        prev, name = chr(96 + i), chr(97 + i)
        lines.append(f"  {name}: &{name} [" + ",".join([f"*{prev}"] * 9) + "]")
    return "\n".join(lines) + "\n"


def deep_document(levels: int = 10_000) -> str:
    return "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: deep\ndata:\n  x: " + "[" * levels + "]" * levels + "\n"


def deep_block_document(levels: int = 10_000) -> str:
    """10,000 levels of a block sequence on one line (``- - - ...``): 20 KB."""
    return "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: deep\nitems:\n  " + "- " * levels + "x\n"


@pytest.mark.parametrize("manifest", ["alias-bomb", "deep-flow", "deep-block"])
def test_an_exhausting_manifest_fails_in_seconds_naming_the_file(
    manifest: str, host: Host, tmp_path: Path, capsys: Capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = {"alias-bomb": alias_bomb, "deep-flow": deep_document, "deep-block": deep_block_document}[manifest]()
    repo = new_fleet_repo(tmp_path, clusters={"eu-1": "prod"})
    commit_file(repo, "environments/prod/hostile.yaml", text)
    commit_file(repo, OVERLAY, KHEAD + "resources:\n  - namespace.yaml\n  - ../../base\n  - hostile.yaml\n")
    monkeypatch.chdir(repo)
    t0 = time.monotonic()
    code, out, err = run_cli(capsys, "render", "eu-1")
    took = time.monotonic() - t0
    assert code == 2, err
    assert took < 10, f"took {took:.1f}s"
    [line] = err.splitlines()
    assert line.startswith("✗ ") and len(line) < 600, line
    assert "environments/prod/hostile.yaml" in line, line
    assert out == ""


def test_the_builder_bounds_time_and_memory_and_recovers(tmp_path: Path) -> None:
    """A request over its heap or time budget is stopped with a clear error, and the next request is
    served by a fresh builder."""
    from fleet.errors import BuildLimit

    root = tmp_path / "root"
    (root / "app").mkdir(parents=True)
    # many large generated ConfigMaps: real work, far over a 32 MiB heap budget
    files = []
    for i in range(40):
        (root / "app" / f"f{i}.txt").write_text(("x" * 1023 + "\n") * 1024)  # 1 MiB each
        files.append(f"f{i}.txt")
    (root / "app" / "kustomization.yaml").write_text(
        "configMapGenerator:\n" + "".join(f"  - name: g{i}\n    files: [{f}]\n" for i, f in enumerate(files)))
    with pytest.raises(BuildLimit, match="memory"):
        fluxbuild.build(root, "app", fluxbuild.Limits(max_heap=32 << 20))
    with pytest.raises(BuildLimit, match="longer than"):
        fluxbuild.build(root, "app", fluxbuild.Limits(timeout=0.001))
    (root / "ok").mkdir()
    (root / "ok" / "kustomization.yaml").write_text("configMapGenerator:\n  - name: small\n    literals: [a=b]\n")
    assert "name: small-" in fluxbuild.build(root, "ok")


def test_output_over_its_cap_is_refused(tmp_path: Path) -> None:
    from fleet.errors import RenderError

    root = tmp_path / "root"
    (root / "app").mkdir(parents=True)
    (root / "app" / "big.txt").write_text("y" * 200_000)
    (root / "app" / "kustomization.yaml").write_text("configMapGenerator:\n  - name: big\n    files: [big.txt]\n")
    with pytest.raises(RenderError, match="output limit"):
        fluxbuild.build(root, "app", fluxbuild.Limits(max_output=100_000))
    assert "name: big-" in fluxbuild.build(root, "app")


@pytest.mark.parametrize("resource", ["https://example.com/leak.yaml",
                                      "https://github.com/org/repo//deploy?ref=main"])
def test_a_remote_resource_is_never_fetched(
    resource: str, host: Host, tmp_path: Path, capsys: Capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without the pre-check, kustomize would fetch it: the builder has no network and no git to run."""
    _no_precheck(monkeypatch)
    repo = new_fleet_repo(tmp_path, clusters={"eu-1": "prod"})
    commit_file(repo, OVERLAY, KSAFE + f"  - {resource}\n")
    monkeypatch.chdir(repo)
    err = _refused_without_leak(capsys, host, "render", "eu-1")
    assert "refused: builds read only the repository" in err, err


# ---- the hostile-input corpus's cases that only the builder can refuse ---------------------------


@pytest.fixture(scope="module")
def corpus_base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = new_fleet_repo(tmp_path_factory.mktemp("hostile"), clusters={"eu-1": "prod"})
    git(root, "config", "core.quotePath", "false")
    return root


@pytest.mark.parametrize("case", BUILDER_CASES, ids=[k.id for k in BUILDER_CASES])
def test_the_corpus_cases_the_builder_refuses(
    case: Case, corpus_base: Path, host: Host, tmp_path: Path, capsys: Capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    t0 = time.monotonic()
    err = refused_cleanly(case, corpus_base, tmp_path, capsys, monkeypatch)
    assert time.monotonic() - t0 < 15, "a hostile render must fail in seconds"
    assert host.leaks(err) == []
    if "-manifest-" in case.id:
        assert "environments/prod/hostile.yaml" in err, err
