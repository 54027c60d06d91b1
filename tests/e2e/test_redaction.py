"""The redaction scan: known secret values are planted, a full life cycle runs on a real local cluster through
the real Pulumi engine and the real Flux controllers, and every output fleet produces is searched for them.

Planted, each from outside the repository:
- a git token: the operator's git credentials (``fleet provision --git-auth FILE``);
- an age identity: the SOPS key (``FLEET_SOPS_AGE_KEY_FILE``), installed for Flux by the Pulumi program;
- Secret data: a password in a SOPS-encrypted Secret of the dev overlay, which Flux decrypts and applies;
- the kubeconfig credential of the cluster (its client key or token), which fleet reads and Pulumi keeps.

Run: provision, sync, gate --mark-good, the cluster lost and `fleet bootstrap`, a rollout of a new revision,
and the read commands (status, render, history, good, diff). Each dry run on the way (bootstrap, rollout,
sync) writes nothing under FLEET_HOME, in the Pulumi backend or in the repo, now that stacks exist.

Searched, for each value in clear and base64: every command's stdout and stderr, every file under FLEET_HOME
(reports, journals, logs of the controllers and the git endpoint, caches, Pulumi's work dirs), the Pulumi file
backend (its state: secrets there are ciphertext, so a match is a value in plaintext), commit messages, notes
and the repository's files. The only places a value may be are where it must be: the cluster's etcd (its
Secrets) and the kubeconfig files (the credential).

The planted values must really be used (the positive controls): the cluster holds the decrypted password, the
token and the age identity in its Secrets.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from e2e_support import make_fleet_repo, need_local_clusters, push, removed_at_end
from helpers import changes, commit_file, git, refs, snapshot

from fleet import sops, toolchain
from fleet.adapters.pulumi_auto import EngineSettings
from fleet.local.clusters import LocalClusters
from fleet.registry import ClusterSpec, add_cluster

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("redaction")]

NAME = f"e2e-red-{os.getpid() % 10000}"
_MAX_SCAN = 64 * 1024 * 1024  # bigger files are plugin binaries, not outputs


@dataclass
class World:
    repo: Path
    home: Path
    backend: Path
    env: dict[str, str]
    planted: dict[str, str]  # what -> value
    outputs: list[tuple[str, str]] = field(default_factory=list)  # (command, stdout + stderr)

    def fleet(self, *args: str, ok: tuple[int, ...] = (0,)) -> subprocess.CompletedProcess[str]:
        done = subprocess.run([sys.executable, "-m", "fleet", *args], env=self.env, capture_output=True,
                              text=True, timeout=900)
        self.outputs.append((" ".join(args), done.stdout + done.stderr))
        assert done.returncode in ok, f"fleet {' '.join(args)} exited {done.returncode}:\n{done.stderr[-3000:]}"
        return done

    def dry_run_writes_nothing(self, *args: str) -> None:
        """Run a dry run; nothing under FLEET_HOME (but the local clusters' own processes, which run on),
        in the Pulumi backend or in the repo changes (tests/integration/test_dry_runs.py, with stacks)."""
        roots, skip = (self.home, self.backend, self.repo), (self.home / "local",)
        before, before_refs = snapshot(*roots, skip=skip), refs(self.repo)
        self.fleet(*args)
        wrote = changes(before, snapshot(*roots, skip=skip))
        assert not wrote and refs(self.repo) == before_refs, f"fleet {' '.join(args)} wrote " + "; ".join(wrote)


def kubectl_json(kc: Path, *args: str) -> Any:
    done = subprocess.run([str(toolchain.find("kubectl")), "--kubeconfig", str(kc), *args, "-o", "json"],
                          capture_output=True, text=True, timeout=60, check=True)
    return json.loads(done.stdout)


def forms(value: str) -> set[bytes]:
    """How a value may appear: in clear, and base64 (Kubernetes Secret data, kubeconfig fields)."""
    raw = value.encode()
    return {raw, base64.b64encode(raw)}


def credential(kubeconfig: Path) -> str:
    """The secret part of a kubeconfig's user: its token, else its client key (the PEM's longest line)."""
    user = yaml.safe_load(kubeconfig.read_text())["users"][0]["user"]
    if user.get("token"):
        return str(user["token"])
    pem = base64.b64decode(user["client-key-data"]).decode() if "client-key-data" in user else \
        Path(user["client-key"]).read_text()
    return max(pem.splitlines(), key=len)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, pulumi_env: EngineSettings) -> Iterator[World]:
    need_local_clusters()
    outside = tmp_path_factory.mktemp("outside")  # neither the repo nor FLEET_HOME
    home = tmp_path_factory.mktemp("redaction-home")
    token = f"gho_planted{secrets.token_hex(12)}"
    password = f"planted-Pa55-{secrets.token_hex(8)}"
    age = sops.generate_key()
    (outside / "age.agekey").write_text(f"# planted\n{age.identity}\n")
    (outside / "git-auth.yaml").write_text(yaml.safe_dump({"username": "fleet-bot", "password": token}))

    repo = make_fleet_repo(tmp_path_factory.mktemp("redaction"))
    add_cluster(repo, ClusterSpec(name=NAME, environment="dev"))
    commit_file(repo, "fleet.yaml", (repo / "fleet.yaml").read_text()
                + f"secrets:\n  sops:\n    ageRecipients: [{age.recipient}]\n", "the fleet uses sops")
    # keys in alphabetical order, as `kubectl create secret --dry-run=client -o yaml` writes them: the order
    # kustomize and Flux put them in, which the SOPS MAC (over values in order) depends on
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db", "namespace": "hello-dev"},
              "stringData": {"password": password}, "type": "Opaque"}
    enc = sops.encrypt_object(secret, [age.recipient], encrypted_regex="^(data|stringData)$")
    commit_file(repo, "environments/dev/db-secret.yaml", yaml.safe_dump(enc, sort_keys=False), "dev: db secret")
    kust = (repo / "environments/dev/kustomization.yaml").read_text().replace(
        "  - ../../base\n", "  - ../../base\n  - db-secret.yaml\n")
    commit_file(repo, "environments/dev/kustomization.yaml", kust, "dev: with the db secret")
    push(repo)
    env = {**os.environ, "FLEET_HOME": str(home), "FLEET_REPO": str(repo),
           "FLEET_SOPS_AGE_KEY_FILE": str(outside / "age.agekey")}
    backend = Path(os.environ["PULUMI_BACKEND_URL"].removeprefix("file://"))
    planted = {"git token": token, "age identity": age.identity, "Secret data": password}
    w = World(repo, home, backend, env, planted)
    lc = LocalClusters(home / "local")
    with removed_at_end(w.env, lc, NAME):
        w.fleet("provision", NAME, "--git-auth", str(outside / "git-auth.yaml"), "-o", "json")
        w.planted["kubeconfig credential"] = credential(lc.kubeconfig_path(NAME))
        w.fleet("sync", NAME, "-o", "json")
        w.fleet("gate", NAME, "--mark-good")
        kc = lc.kubeconfig_path(NAME)
        # positive controls: what was planted is really in use
        db = kubectl_json(kc, "-n", "hello-dev", "get", "secret", "db")
        assert base64.b64decode(db["data"]["password"]).decode() == password
        auth = kubectl_json(kc, "-n", "flux-system", "get", "secret", "fleet-git-auth")
        assert base64.b64decode(auth["data"]["password"]).decode() == token
        key = kubectl_json(kc, "-n", "flux-system", "get", "secret", "sops-age")
        assert age.identity in base64.b64decode(key["data"]["age.agekey"]).decode()
        # the cluster is lost and rebuilt at its last good revision
        w.fleet("local", "delete", NAME)
        w.dry_run_writes_nothing("bootstrap", NAME, "--dry-run", "-o", "json")
        w.fleet("bootstrap", NAME, "-o", "json")
        w.planted["kubeconfig credential (rebuilt)"] = credential(lc.kubeconfig_path(NAME))
        # a new revision rolled out
        commit_file(repo, "environments/dev/note.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n"
                    "  name: note\ndata:\n  v: '2'\n", "dev: a note")
        commit_file(repo, "environments/dev/kustomization.yaml", kust.replace(
            "  - db-secret.yaml\n", "  - db-secret.yaml\n  - note.yaml\n"), "dev: with the note")
        push(repo)
        w.dry_run_writes_nothing("rollout", "--dry-run", "-o", "json")
        w.fleet("rollout", "-o", "json")
        db = kubectl_json(lc.kubeconfig_path(NAME), "-n", "hello-dev", "get", "secret", "db")
        assert base64.b64decode(db["data"]["password"]).decode() == password
        for args in (("render", NAME), ("render", NAME, "-o", "json"), ("history", NAME), ("good", NAME, "-o", "json"),
                     ("local", "list")):
            w.fleet(*args)
        # diff compares the decrypted Secret with the cluster's (exit 0: no drift), and status --drift too
        w.fleet("diff", NAME)
        rows = json.loads(w.fleet("status", "--drift", "-o", "json").stdout)["items"]
        assert next(r for r in rows if r["name"] == NAME)["drift"] == "no", rows
        w.dry_run_writes_nothing("sync", NAME, "--dry-run", "--sync", "direct", "-o", "json")
        yield w


def _allowed(path: Path, what: str, home: Path) -> bool:
    """Where a value must be: the cluster's etcd holds its Secrets (the token, the age identity and the
    password are Secrets there: where they are meant to go; encryption at rest is the cluster's matter), and
    the kubeconfig files and kwokctl's own files for the cluster (its PKI) hold the cluster's credential."""
    rel = path.relative_to(home).parts if path.is_relative_to(home) else ()
    if rel[:3] == ("local", "kwok", "clusters") and len(rel) > 5 and rel[4] == "etcd":
        return True
    if not what.startswith("kubeconfig credential"):
        return False
    return rel[:1] == ("kubeconfigs",) or rel[:2] in (("local", "kubeconfigs"), ("local", "kwok"))


def _files(*roots: Path) -> Iterator[Path]:
    for root in roots:
        for dirpath, _dirs, files in os.walk(root):
            for name in files:
                p = Path(dirpath) / name
                if p.is_file() and not p.is_symlink() and p.stat().st_size <= _MAX_SCAN:
                    yield p


def test_no_planted_secret_appears_in_any_output(world: World) -> None:
    found: list[str] = []
    needles = {what: forms(value) for what, value in world.planted.items()}

    def scan(where: str, data: bytes, path: Path | None = None) -> None:
        for what, values in needles.items():
            if any(v in data for v in values) and not (path is not None and _allowed(path, what, world.home)):
                found.append(f"{what} in {where}")

    for cmd, out in world.outputs:
        scan(f"the output of `fleet {cmd}`", out.encode())
    repo_text = git(world.repo, "log", "--all", "--format=%H%n%B") + git(
        world.repo, "log", "--all", "--notes=fleet", "--format=%N") + git(world.repo, "for-each-ref")
    scan("commit messages and notes", repo_text.encode())
    scanned = size = 0
    for f in _files(world.home, world.backend, world.repo):
        if ".git" in f.relative_to(world.repo).parts if f.is_relative_to(world.repo) else False:
            continue
        data = f.read_bytes()
        scanned, size = scanned + 1, size + len(data)
        scan(str(f), data, f)
    assert scanned > 20, f"only {scanned} files scanned: the scan would prove nothing"
    print(f"redaction scan: {len(needles)} values x 2 forms, {len(world.outputs)} command outputs, "
          f"{scanned} files ({size / 1e6:.1f} MB), {len(found)} matches outside the allowed places")
    logs = list((world.home / "local" / "operator").rglob("*.log"))
    assert {p.name for p in logs} >= {"source-controller.log", "kustomize-controller.log"}, logs
    assert not found, "planted secrets leaked:\n" + "\n".join(sorted(set(found)))
