"""A hostile-input corpus: every case must be refused with exit 2, one line on stderr (and at most a
hint), no traceback, nothing on stdout, and nothing changed in the repository (HEAD, working tree,
refs). The figures in docs/security.md come from this table.

Cases are of two kinds: a command line against a shared fleet repo (bad names, control characters,
escapes, credentials in URLs, huge values, non-UTF-8 bytes...), and a repository state a command then
meets (hostile overlays, symlinks out, YAML bombs, non-UTF-8 files, a detached HEAD, stale locks...).
"""

from __future__ import annotations

import base64
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.helpers import commit_file, git, git_state, new_fleet_repo, run_cli

Capsys = pytest.CaptureFixture[str]
Setup = Callable[[Path], None]
OVERLAY = "environments/prod/kustomization.yaml"
KHEAD = "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nnamespace: hello-prod\n"
KSAFE = KHEAD + "resources:\n  - namespace.yaml\n  - ../../base\n"
BAD_CHARS = {
    "newline": "\n",
    "cr": "\r",
    "tab": "\t",
    "nul": "\x00",
    "esc": "\x1b[31m",
    "del": "\x7f",
    "c1": "\x85",
    "line-sep": "\u2028",
    "bidi": "\u202e",
    "not-utf8": "\udcff",
}


@dataclass(frozen=True)
class Case:
    id: str
    argv: tuple[str, ...]
    setup: Setup | None = None


def c(id: str, *argv: str, setup: Setup | None = None) -> Case:
    return Case(id, argv, setup)


# ---- repository states ---------------------------------------------------------------------------


def overlay(body: str) -> Setup:
    def setup(repo: Path) -> None:
        commit_file(repo, OVERLAY, KSAFE + body)

    return setup


def committed(path: str, data: bytes) -> Setup:
    def setup(repo: Path) -> None:
        (repo / path).parent.mkdir(parents=True, exist_ok=True)
        (repo / path).write_bytes(data)
        git(repo, "add", path)
        git(repo, "commit", "-q", "-m", f"hostile {path}")

    return setup


def uncommitted(path: str, data: bytes) -> Setup:
    def setup(repo: Path) -> None:
        (repo / path).write_bytes(data)

    return setup


def symlinks(links: dict[str, str], body: str) -> Setup:
    def setup(repo: Path) -> None:
        for path, target in links.items():
            (repo / path).parent.mkdir(parents=True, exist_ok=True)
            (repo / path).symlink_to(target)
            git(repo, "add", path)
        git(repo, "commit", "-q", "-m", "links")
        commit_file(repo, OVERLAY, KSAFE + body)

    return setup


def detached(repo: Path) -> None:
    git(repo, "checkout", "-q", "--detach")


def other_branch(repo: Path) -> None:
    git(repo, "switch", "-q", "-c", "feature")


def lock(name: str) -> Setup:
    def setup(repo: Path) -> None:
        (repo / ".git" / name).write_text("")

    return setup


def no_fleet_yaml(repo: Path) -> None:
    git(repo, "rm", "-q", "fleet.yaml")
    git(repo, "commit", "-q", "-m", "no fleet.yaml")



def _bomb() -> bytes:
    """A billion laughs: ten levels of aliases, each listing the one before five or nine times."""
    lines = [b"a: &a [x, x, x, x, x, x, x, x, x]"]
    for i in range(9):
        prev, name = chr(97 + i), chr(98 + i)
        lines.append(f"{name}: &{name} [" .encode() + b", ".join([f"*{prev}".encode()] * 5) + b"]")
    return b"\n".join(lines) + b"\n"


BOMB = _bomb()
CLUSTER = b"name: eu-1\nenvironment: prod\n"

CASES: list[Case] = []

# cluster names, wherever a command takes one
NAMES = [
    "", "EU-1", "eu_1", "eu.1", "-eu", "eu-", "../x", "a/b", "x" * 64, "eu 1", ".", "..", "clusters/eu-1",
    "/etc/passwd", "eu-1.yaml", "é", "eu-1\n", "eu\x00", "eu\x1b", "\udcff", "eu-1 ", "\u202eeu",
]
for i, n in enumerate(NAMES):
    CASES.append(c(f"add-name-{i}", "cluster", "add", n, "--env", "prod"))
for i, n in enumerate(NAMES[::3]):
    CASES.append(c(f"set-name-{i}", "cluster", "set", n, "--wave", "1"))
    CASES.append(c(f"good-name-{i}", "good", n, "--set", "HEAD"))
    CASES.append(c(f"render-name-{i}", "render", n))
    CASES.append(c(f"remove-name-{i}", "cluster", "remove", n))

# environments, providers, waves
for i, e in enumerate(["", "PROD", "../prod", "prod\n", "nope", "prod/..", "/etc", "prod\x00", "\udcff"]):
    CASES.append(c(f"env-{i}", "cluster", "add", "eu-9", "--env", e))
for i, p in enumerate(["gcp", "local\n", "LOCAL", ""]):
    CASES.append(c(f"provider-{i}", "cluster", "add", "eu-9", "--env", "prod", "--provider", p))
for i, w in enumerate(["-1", "1001", "x", "1e3", "99999999999999999999", "0x1"]):
    CASES.append(c(f"wave-{i}", "cluster", "add", "eu-9", "--env", "prod", "--wave", w))

# free text: regions, settings, reasons; every bad character
for k, ch in BAD_CHARS.items():
    CASES.append(c(f"region-{k}", "cluster", "add", "eu-9", "--env", "prod", "--region", f"eu{ch}west"))
    CASES.append(c(f"set-region-{k}", "cluster", "set", "eu-1", "--region", f"eu{ch}"))
    CASES.append(c(f"setting-{k}", "cluster", "add", "eu-9", "--env", "prod", "--setting", f"size=a{ch}b"))
    CASES.append(c(f"reason-{k}", "good", "eu-1", "--set", "HEAD", "--reason", f"ok{ch}done"))
CASES.append(c("region-huge", "cluster", "add", "eu-9", "--env", "prod", "--region", "r" * 5000))
CASES.append(c("reason-huge", "good", "eu-1", "--set", "HEAD", "--reason", "r" * 5000))

# variables: names and values
for i, v in enumerate(["1A=x", "A-B=x", "A B=x", "=x", "A", "É=x", "A.B=x", "${A}=x", "A\x00B=x", "A\nB=x"]):
    CASES.append(c(f"var-name-{i}", "cluster", "add", "eu-9", "--env", "prod", "--var", v))
for k, ch in BAD_CHARS.items():
    CASES.append(c(f"var-value-{k}", "cluster", "set", "eu-1", "--var", f"REPLICAS=2{ch}  paused: true"))
CASES.append(c("var-value-yaml-injection", "cluster", "set", "eu-1", "--var", "REPLICAS=2\n  paused: true"))
CASES.append(c("var-value-huge", "cluster", "set", "eu-1", "--var", "REPLICAS=" + "9" * 9000))
CASES.append(c("remove-missing-var", "cluster", "set", "eu-1", "--remove-var", "NOPE"))

# labels
for i, lab in enumerate(["a=b\n", "a\n=b", "=b", "a", "a=b c", "a/b/c=d", "x" * 64 + "=v", "a=\x1b", "k=é",
                         "-a=b", "a=" + "v" * 64, "example.com/=v"]):
    CASES.append(c(f"label-{i}", "cluster", "add", "eu-9", "--env", "prod", "--label", lab))

# selectors and revisions
for i, sel in enumerate(["a in (", "!!", "a=b;c", "a=(b)", "(", "a in (b", "a=b,,"]):
    CASES.append(c(f"selector-{i}", "cluster", "list", "-l", sel))
for i, rev in enumerate(["nope", "HEAD~99", "-x", "refs/../x", "HEAD\n", "deadbeef" * 5, "HEAD^{tree}"]):
    CASES.append(c(f"rev-{i}", "render", "eu-1", "--rev", rev))
    if i < 4:
        CASES.append(c(f"good-rev-{i}", "good", "eu-1", "--set", rev))

# render -o into the repository
for i, out in enumerate(["clusters", ".git", ".git/hooks", "base/x", ".", "fleet.yaml", "environments"]):
    CASES.append(c(f"render-out-{i}", "render", "eu-1", "-o", out))

# fleet init: names, branches, remotes with credentials
for i, n in enumerate(["Bad", "a_b", "x" * 64, "a\n", "\udcff"]):
    CASES.append(c(f"init-name-{i}", "init", "../newrepo", "--name", n))
for i, b in enumerate(["a b", "-x", "a..b", "a~1", "a:b", "x.lock", "a\n", "a\x00", "@{x}", ""]):
    CASES.append(c(f"init-branch-{i}", "init", "../newrepo", "--branch", b))
for i, url in enumerate([
    "https://user:TOKEN@host/org/repo.git", "https://TOKEN@github.com/org/repo", "http://u:p@h/r",
    "ssh://git:pw@host/r", "git:pw@host:org/repo.git", "https://host/r.git?access_token=abc",
    "https://host/r.git?private_token=abc", "https://:tok@host/r", "https://host/r\n  branch: x",
    "https://host/\udcff",
]):
    CASES.append(c(f"init-remote-{i}", "init", "../newrepo", "--remote", url))
CASES.append(c("init-into-repo", "init", "."))

# good --gates and --duration
CASES.append(c("gates-missing", "good", "eu-1", "--set", "HEAD", "--gates", "/nonexistent.json"))
CASES.append(c("duration-text", "good", "eu-1", "--set", "HEAD", "--duration", "x"))

# overlays that read outside the repository (confinement)
OVERLAY_CASES = {
    "cm-files-absolute": "configMapGenerator:\n  - name: leak\n    files: [/etc/hostname]\n",
    "cm-files-escape": "configMapGenerator:\n  - name: leak\n    files: [k=../../../../../etc/hostname]\n",
    "secret-envs": "secretGenerator:\n  - name: s\n    envs: [/proc/self/environ]\n",
    "cm-env": "configMapGenerator:\n  - name: leak\n    env: /etc/environment\n",
    "resources-absolute": "components:\n  - /etc/x\n",
    "patch-path": "patches:\n  - path: /etc/passwd\n",
    "psm": "patchesStrategicMerge:\n  - ../../../p.yaml\n",
    "json6902": "patchesJson6902:\n  - target: {kind: Deployment, name: hello}\n    path: /etc/ops.yaml\n",
    "replacements": "replacements:\n  - path: /etc/r.yaml\n",
    "crds": "crds:\n  - /etc/crd.yaml\n",
    "configurations": "configurations:\n  - ../../../c.yaml\n",
    "generators": "generators:\n  - /etc/g.yaml\n",
    "validators": "validators:\n  - https://example.com/v\n",
    "transformers-inline": "transformers:\n  - |-\n    apiVersion: builtin\n    kind: PatchTransformer\n"
    "    metadata: {name: x}\n    path: /etc/passwd\n",
    "openapi": "openapi:\n  path: /etc/schema.json\n",
    "helm-values": "helmCharts:\n  - name: c\n    valuesFile: /etc/v.yaml\n",
    "helm-repo": "helmCharts:\n  - name: c\n    repo: https://charts.example.com\n",
    "helm-home": "helmGlobals:\n  chartHome: /var/charts\n",
    "remote-component": "components:\n  - github.com/org/repo/c?ref=main\n",
    "remote-git": "components:\n  - git@github.com:org/repo.git\n",
    "not-yaml": "resources: [\n",
}
for k, body in OVERLAY_CASES.items():
    CASES.append(c(f"overlay-{k}", "render", "eu-1", setup=overlay(body)))
    if k in ("cm-files-absolute", "secret-envs", "remote-component"):
        CASES.append(c(f"overlay-{k}-all", "render", "--all", "-o", "json", setup=overlay(body)))
CM = "configMapGenerator:\n  - name: x\n    files: [{}]\n"
EU1 = "clusters/eu-1.yaml"
PROD = "environments/prod"
CASES += [
    c("link-absolute", "render", "eu-1", setup=symlinks({f"{PROD}/h": "/etc/hostname"}, CM.format("h"))),
    c("link-escape", "render", "eu-1", setup=symlinks({f"{PROD}/e": "../../../../etc"}, CM.format("e/hostname"))),
    c("link-pair", "render", "eu-1",
      setup=symlinks({f"{PROD}/d/A": "B/../../../..", f"{PROD}/d/B": "."}, CM.format("d/A/etc/hostname"))),
    c("link-loop", "render", "eu-1", setup=symlinks({f"{PROD}/a": "b", f"{PROD}/b": "a"}, CM.format("a"))),
    c("link-base-out", "render", "eu-1", setup=symlinks({"base2": "/etc"}, "components:\n  - ../../base2\n")),
    c("base-absolute", "render", "eu-1",
      setup=committed("base/kustomization.yaml", (KHEAD + "resources:\n  - /etc/hostname\n").encode())),
    c("overlay-bomb", "render", "eu-1", setup=committed(OVERLAY, KSAFE.encode() + BOMB)),
    c("overlay-deep", "render", "eu-1",
      setup=committed(OVERLAY, KSAFE.encode() + b"x: " + b"[" * 5000 + b"]" * 5000 + b"\n")),
    c("overlay-not-utf8", "render", "eu-1", setup=committed(OVERLAY, KSAFE.encode() + b"# \xff\xfe\n")),
]

# registry files fleet meets
CASES += [
    c("cluster-not-utf8-committed", "render", "eu-1", setup=committed(EU1, CLUSTER + b"region: \xff\n")),
    c("cluster-not-utf8-worktree", "cluster", "list", setup=uncommitted(EU1, CLUSTER + b"region: \xff\n")),
    c("cluster-bomb", "cluster", "list", setup=committed(EU1, CLUSTER + BOMB)),
    c("cluster-deep", "cluster", "list",
      setup=committed(EU1, CLUSTER + b"labels: " + b"{a: " * 200 + b"b" + b"}" * 200 + b"\n")),
    c("cluster-merge-key", "cluster", "list", setup=committed(EU1, b"x: &x {wave: 1}\n<<: *x\n" + CLUSTER)),
    c("cluster-dup-key", "cluster", "list", setup=committed(EU1, CLUSTER + b"name: eu-2\n")),
    c("cluster-tags", "cluster", "list", setup=committed(EU1, CLUSTER + b"region: !!python/object:os.system x\n")),
    c("cluster-var-newline", "render", "eu-1", setup=committed(EU1, CLUSTER + b'vars: {R: "2\\n  paused: true"}\n')),
    c("cluster-region-esc", "cluster", "list", setup=committed(EU1, CLUSTER + b'region: "eu\\e[31m"\n')),
    c("cluster-huge-var", "cluster", "list", setup=committed(EU1, CLUSTER + b"vars: {R: " + b"9" * 10000 + b"}\n")),
    c("cluster-file-name-not-utf8", "cluster", "list", setup=committed("clusters/\udcff.yaml", CLUSTER)),
    c("cluster-wrong-name", "cluster", "list", setup=committed(EU1, b"name: eu-2\nenvironment: prod\n")),
    c("cluster-yml", "cluster", "list", setup=committed("clusters/eu-3.yml", CLUSTER)),
    c("fleet-yaml-credentials", "cluster", "list",
      setup=committed("fleet.yaml", b"name: x\ngit:\n  url: https://u:TOKEN@h/r.git\n")),
    c("fleet-yaml-token-user", "cluster", "list",
      setup=committed("fleet.yaml", b"name: x\ngit:\n  url: https://TOKEN@h/r.git\n")),
    c("fleet-yaml-source-credentials", "cluster", "list",
      setup=committed("fleet.yaml", b"name: x\noperator:\n  source: https://u:p@h/flux.yaml\n")),
    c("fleet-yaml-control", "cluster", "list", setup=committed("fleet.yaml", b'name: "x\\ny"\n')),
    c("fleet-yaml-not-utf8", "cluster", "list", setup=uncommitted("fleet.yaml", b"name: \xff\n")),
    c("fleet-yaml-missing", "cluster", "add", "eu-9", "--env", "prod", setup=no_fleet_yaml),
    c("fleet-yaml-list", "cluster", "list", setup=committed("fleet.yaml", b"- a\n- b\n")),
]

# where writes go, and what stands in their way
for cmd in (("cluster", "add", "eu-9", "--env", "prod"), ("cluster", "set", "eu-1", "--wave", "3"),
            ("cluster", "remove", "eu-1")):
    verb = cmd[1]
    CASES.append(c(f"{verb}-detached", *cmd, setup=detached))
    CASES.append(c(f"{verb}-other-branch", *cmd, setup=other_branch))
    CASES.append(c(f"{verb}-index-lock", *cmd, setup=lock("index.lock")))
CASES.append(c("add-head-lock", "cluster", "add", "eu-9", "--env", "prod", setup=lock("HEAD.lock")))
CASES.append(c("add-branch-lock", "cluster", "add", "eu-9", "--env", "prod", setup=lock("refs/heads/main.lock")))
CASES.append(c("add-dirty", "cluster", "add", "eu-9", "--env", "prod",
               setup=uncommitted("clusters/eu-1.yaml", CLUSTER + b"wave: 2\n")))


# ---- cases only the builder can refuse (run by tests/integration/test_render_hostile.py) -------------
# Forms the old Python pre-check missed; kustomize reads through them, so they reach fleet-build, whose
# filesystem refuses anything outside the repository, and whose limits stop exhausting manifests. The
# unit tier has no builder: these run in the integration tier, with the same checks as CASES.


def _home(*parts: str) -> Callable[[], str]:
    return lambda: str(Path(os.environ["FLEET_HOME"]).joinpath(*parts))


BUILDER_TARGETS: dict[str, Callable[[], str]] = {
    "etc-passwd": lambda: "/etc/passwd",
    "proc-environ": lambda: "/proc/self/environ",
    "fleet-environ": lambda: f"/proc/{os.getpid()}/environ",
    "cache-secret": _home("secrets", "render-cache"),
    "age-key": _home("age.key"),
}
BUILDER_FORMS: dict[str, Callable[[str], str]] = {
    "inline-one-line": lambda t: ("generators:\n  - \"{apiVersion: builtin, kind: ConfigMapGenerator, "
                                  f"metadata: {{name: leak}}, files: [{t}]}}\"\n"),
    "inline-cr": lambda t: ('generators:\n  - "apiVersion: builtin\\rkind: ConfigMapGenerator\\rmetadata:\\r'
                            f'  name: leak\\rfiles:\\r- {t}\\r"\n'),
    "binary-path": lambda t: ("configMapGenerator:\n  - name: leak\n    files: [!!binary "
                              f"{base64.b64encode(t.encode()).decode()}]\n"),
}


def overlay_to(form: Callable[[str], str], target: Callable[[], str]) -> Setup:
    def setup(repo: Path) -> None:
        commit_file(repo, OVERLAY, KSAFE + form(target()))

    return setup


# ---- the second pass (issue 20): each case below was not refused cleanly before ------------------


def outside(name: str, data: bytes) -> Setup:
    """A file beside the repository (a command names it as ../NAME)."""

    def setup(repo: Path) -> None:
        (repo.parent / name).write_bytes(data)

    return setup


def manifest(text: str) -> Setup:
    def setup(repo: Path) -> None:
        commit_file(repo, f"{PROD}/hostile.yaml", text)
        commit_file(repo, OVERLAY, KSAFE + "  - hostile.yaml\n")

    return setup


def linked_out(path: str, target: bytes) -> Setup:
    """``path`` in the working tree replaced by a symlink to a file outside the repository."""

    def setup(repo: Path) -> None:
        host = repo.parent / "host-file"
        host.write_bytes(target)
        (repo / path).unlink()
        (repo / path).symlink_to(host)

    return setup


_LAUGHS = ['  a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]'] + [
    f"  {chr(97 + i)}: &{chr(97 + i)} [" + ",".join([f"*{chr(96 + i)}"] * 9) + "]" for i in range(1, 12)]
MANIFEST_HEAD = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: hostile\n"
BUILDER_CASES: list[Case] = [
    c(f"builder-{f}-{t}", "render", "eu-1", setup=overlay_to(form, target))
    for f, form in BUILDER_FORMS.items() for t, target in BUILDER_TARGETS.items()
]
BUILDER_CASES += [
    c("builder-manifest-alias-bomb", "render", "eu-1", setup=manifest(MANIFEST_HEAD + "data:\n" + "\n".join(_LAUGHS))),
    c("builder-manifest-deep-flow", "render", "eu-1",
      setup=manifest(MANIFEST_HEAD + "data:\n  x: " + "[" * 10_000 + "]" * 10_000 + "\n")),
    c("builder-manifest-deep-block", "render", "eu-1",
      setup=manifest(MANIFEST_HEAD + "items:\n  " + "- " * 10_000 + "x\n")),
    c("builder-manifest-huge", "render", "eu-1",
      setup=manifest(MANIFEST_HEAD + "data:\n  x: " + "y" * (9 << 20) + "\n")),
    c("builder-remote-http", "render", "eu-1", setup=overlay("  - https://example.com/leak.yaml\n")),
]
HOST_SECRET = b"name: eu-1\nenvironment: prod\nregion: HOST-SECRET-LINE\n"

# cluster names for drift (no stack can be named so)
for i, n in enumerate(["../x", "EU-1", "a/b", "eu\x1b"]):
    CASES.append(c(f"drift-name-{i}", "drift", n))
# reflog revisions: an internal error before, in every command that takes a revision
REFLOG = "HEAD@{garbage}"  # GitPython has no reflog dates: exit 70 before; git itself finds no such entry
CASES += [
    c("reflog-render", "render", "eu-1", "--rev", REFLOG),
    c("reflog-good", "good", "eu-1", "--set", REFLOG),
    c("reflog-cluster-list", "cluster", "list", "--rev", REFLOG),
    c("reflog-cluster-show", "cluster", "show", "eu-1", "--rev", REFLOG),
    c("reflog-rollout", "rollout", "--rev", REFLOG, "--dry-run"),
    c("reflog-gate", "gate", "eu-1", "--rev", REFLOG),
    c("reflog-diff", "diff", "eu-1", "--rev", REFLOG),
    c("reflog-sync", "sync", "eu-1", "--rev", REFLOG),
    c("reflog-region", "region", "add", "us", "--from", "eu", "--rev", REFLOG),
]
# fleet init: a remote that is an option, a directory fleet cannot make
CASES += [
    c("init-remote-option", "init", "../newrepo", "--remote", "--upload-pack=touch /tmp/fleet-pwned"),
    c("init-remote-option-2", "init", "../newrepo", "--remote=-oProxyCommand=touch /tmp/fleet-pwned"),
    c("init-proc", "init", "/proc/x"),
    c("init-proc-self", "init", "/proc/self/fleet"),
]
# audit notes: --duration and --gates checked at the door
for i, d in enumerate(["nan", "inf", "-inf", "-1", "1e999"]):
    CASES.append(c(f"duration-{i}", "good", "eu-1", "--set", "HEAD", "--duration", d))
GATES = {
    "deep": b"[" * 100000 + b"]" * 100000,
    "deep-objects": b"[" + b'{"a":' * 50 + b"1" + b"}" * 50 + b"]",
    "esc": b'[{"gate": "x\\u001b[31m", "status": "passed"}]',
    "bidi": b'[{"gate": "x\\u202ey", "status": "passed"}]',
    "nan": b'[{"gate": "x", "duration": NaN}]',
    "not-objects": b'["x", 1]',
    "huge": b'[{"gate": "' + b"x" * 2000 + b'"}]',
}
for k, data in GATES.items():
    CASES.append(c(f"gates-{k}", "good", "eu-1", "--set", "HEAD", "--gates", "../gates.json",
                   setup=outside("gates.json", data)))
# registry fields checked at the door: strict waves, custom gates, provider settings
GATE_ENTRY = "gates:\n  custom:\n    - {apiVersion: %s, kind: %s, name: %s%s}\n"
CASES += [
    c("wave-true", "cluster", "list", setup=committed(EU1, CLUSTER + b"wave: true\n")),
    c("wave-string", "cluster", "list", setup=committed(EU1, CLUSTER + b'wave: "3"\n')),
    c("wave-float", "cluster", "list", setup=committed(EU1, CLUSTER + b"wave: 3.0\n")),
    c("gate-timeout-string", "cluster", "list", setup=committed(EU1, CLUSTER + b'gates: {timeout: "30"}\n')),
    c("setting-unknown-committed", "cluster", "list", setup=committed(EU1, CLUSTER + b"settings: {nodez: 3}\n")),
    c("setting-unknown-add", "cluster", "add", "eu-9", "--env", "prod", "--setting", "nodez=3"),
    c("setting-unknown-set", "cluster", "set", "eu-1", "--setting", "size=3"),
    c("setting-other-provider", "cluster", "add", "eu-9", "--env", "prod", "--setting", "vpcId=vpc-1"),
]
for k, (api, kind, name, ns) in {
    "dotdot": ("v1", "ConfigMap", '".."', ", namespace: a"),
    "dot": ("v1", "ConfigMap", '"."', ", namespace: a"),
    "empty": ("v1", "ConfigMap", '""', ", namespace: a"),
    "slash": ("v1", "ConfigMap", "a/b", ", namespace: a"),
    "percent": ("v1", "ConfigMap", "a%2f", ", namespace: a"),
    "no-namespace": ("apps/v1", "Deployment", "hello", ""),
    "no-namespace-flux": ("kustomize.toolkit.fluxcd.io/v1", "Kustomization", "apps", ""),
    "bad-namespace": ("v1", "ConfigMap", "a", ", namespace: ../x"),
    "bad-kind": ("v1", '"config map"', "a", ", namespace: a"),
    "bad-api": ("../v1", "ConfigMap", "a", ", namespace: a"),
}.items():
    entry = (GATE_ENTRY % (api, kind, name, ns)).encode()
    CASES.append(c(f"custom-gate-{k}", "cluster", "list", setup=committed(EU1, CLUSTER + entry)))
# registry files and fleet.yaml symlinked out of the repository: neither read nor quoted
CASES += [
    c("cluster-link-out", "cluster", "list", setup=linked_out(EU1, HOST_SECRET)),
    c("cluster-link-out-show", "cluster", "show", "eu-1", setup=linked_out(EU1, HOST_SECRET)),
    c("fleet-yaml-link-out", "cluster", "list", setup=linked_out("fleet.yaml", b"name: HOST-SECRET-LINE\n")),
    c("fleet-yaml-link-out-add", "cluster", "add", "eu-9", "--env", "prod",
      setup=linked_out("fleet.yaml", b"name: HOST-SECRET-LINE\n")),
]
# access.kubeconfig: a kubeconfig runs exec plugins and reads token files, so never one the repo carries
def kubeconfig_in_repo(how: str) -> Setup:
    def setup(repo: Path) -> None:
        (repo / "ops").mkdir()
        (repo / "ops" / "kc.yaml").write_text("apiVersion: v1\nkind: Config\n")
        link = repo.parent / "kc-link.yaml"
        link.symlink_to(repo / "ops" / "kc.yaml")
        named = {"absolute": str(repo / "ops" / "kc.yaml"), "link": str(link), "root": str(repo)}[how]
        git(repo, "add", "ops/kc.yaml")
        git(repo, "commit", "-q", "-m", "kubeconfig")
        commit_file(repo, EU1, f"name: eu-1\nenvironment: prod\naccess: {{kubeconfig: {named}}}\n")

    return setup


for i, kc in enumerate(["ops/kc.yaml", "./kc.yaml", "../kc.yaml", "kc"]):
    CASES.append(c(f"access-kubeconfig-relative-{i}", "cluster", "list",
                   setup=committed(EU1, CLUSTER + f"access: {{kubeconfig: {kc}}}\n".encode())))
for how in ("absolute", "link", "root"):
    CASES.append(c(f"access-kubeconfig-{how}-into-repo", "status", setup=kubeconfig_in_repo(how)))
# operator.source: what fleet hands to a cluster comes from the repository or from fleet
for i, src in enumerate(["/etc/passwd", "/proc/self/environ", "../../outside.yaml", "file:///etc/passwd",
                         "~/.kube/config", "flux/../../x.yaml", "ftp://host/install.yaml", "c:/x.yaml"]):
    CASES.append(c(f"operator-source-{i}", "cluster", "list",
                   setup=committed("fleet.yaml", f"name: x\noperator:\n  source: {src}\n".encode())))


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = new_fleet_repo(tmp_path_factory.mktemp("hostile"), clusters={"eu-1": "prod"})
    git(root, "config", "core.quotePath", "false")
    return root


def test_the_corpus_is_large_and_unique() -> None:
    assert len(CASES) >= 150 and len(BUILDER_CASES) >= 20
    assert len({k.id for k in CASES + BUILDER_CASES}) == len(CASES) + len(BUILDER_CASES)


@pytest.mark.parametrize("case", CASES, ids=[k.id for k in CASES])
def test_hostile_input_is_refused_cleanly(
    case: Case, base: Path, tmp_path: Path, capsys: Capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    refused_cleanly(case, base, tmp_path, capsys, monkeypatch)


def refused_cleanly(
    case: Case, base: Path, tmp_path: Path, capsys: Capsys, monkeypatch: pytest.MonkeyPatch
) -> str:
    """Run ``case`` on a copy of ``base`` (when it sets the repository up) and check the refusal; its stderr."""
    repo = base
    if case.setup is not None:
        repo = tmp_path / "repo"
        shutil.copytree(base, repo, symlinks=True)
        case.setup(repo)
    monkeypatch.chdir(repo)
    before = git_state(repo)
    newrepo = repo.parent / "newrepo"
    code, out, err = run_cli(capsys, *case.argv)
    lines = err.splitlines()
    assert code == 2, f"exit {code}: {err}"
    assert lines and lines[0].startswith("✗ "), err
    assert len(lines) == 1 or (len(lines) == 2 and lines[1].startswith("  hint: ")), err
    assert "Traceback" not in err and "internal error" not in err
    assert not any(ch in err.replace("\n", "") for ch in "\r\x00\x1b\x7f\x85\u2028\u202e"), repr(err)
    assert out == ""
    assert "HOST-SECRET" not in err  # a file outside the repository is neither read into a message nor quoted
    assert git_state(repo) == before
    assert not newrepo.exists()
    return err
