"""The operator's processes beside a local cluster (fleet.local.flux), with stand-in controllers: scripts
that serve /readyz on the --health-addr they are given, as the real ones do. The real controllers run
in tests/e2e/test_operator.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from fleet.errors import LocalClusterError
from fleet.local.flux import CONTROLLERS, LocalOperator

FAKE = """#!{python}
import http.server, os, sys
if os.environ.get("FAKE_CONTROLLER_FAIL"):
    print("error: no matches for kind Kustomization", flush=True); sys.exit(1)
addr = next(a.split("=", 1)[1] for a in sys.argv if a.startswith("--health-addr="))
host, port = addr.rsplit(":", 1)
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200 if self.path == "/readyz" else 404); self.end_headers()
    def log_message(self, *a): pass
print("args", " ".join(sys.argv[1:]), "kubeconfig", os.environ["KUBECONFIG"], flush=True)
print("tmpdir", os.environ.get("TMPDIR", ""), flush=True)
http.server.HTTPServer((host, int(port)), H).serve_forever()
"""


@pytest.fixture
def op(tmp_path: Path, fleet_home: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalOperator]:
    bin_dir = tmp_path / "toolchain" / "bin"
    bin_dir.mkdir(parents=True)
    for ctl in CONTROLLERS:
        f = bin_dir / ctl
        f.write_text(FAKE.format(python=sys.executable))
        f.chmod(0o755)
    monkeypatch.setenv("FLEET_TOOLCHAIN_DIR", str(tmp_path / "toolchain"))
    operator = LocalOperator(fleet_home / "local")  # under FLEET_HOME: the suite's leak check covers it
    yield operator
    for name in ("c1", "c2"):
        operator.remove(name)


def _repo(tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    subprocess.run(["git", "init", "-q", "-b", "main", str(repo)], check=True)
    subprocess.run(["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q",
                    "--allow-empty", "-m", "first"], check=True)
    return repo


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


def test_controllers_start_ready_with_their_ports_recorded_and_stop_with_no_orphans(
    op: LocalOperator, tmp_path: Path
) -> None:
    kc = tmp_path / "kc.yaml"
    kc.write_text("kubeconfig")
    op.start_controllers("c1", kc)
    assert op.running("c1")
    state = json.loads((op.dir("c1") / "state.json").read_text())
    sc, kc_ = state["source-controller"], state["kustomize-controller"]
    assert {"metrics", "health", "storage"} <= set(sc) and {"metrics", "health"} <= set(kc_)
    assert len({sc["metrics"], sc["health"], sc["storage"], kc_["metrics"], kc_["health"]}) == 5
    with urllib.request.urlopen(f"http://127.0.0.1:{kc_['health']}/readyz", timeout=5) as r:
        assert r.status == 200
    log = (op.dir("c1") / "logs" / "kustomize-controller.log").read_text()
    assert "--no-remote-bases=true" in log and "StrictPostBuildSubstitutions=true" in log
    assert f"kubeconfig {kc}" in log
    assert "--storage-adv-addr=127.0.0.1:" in (op.dir("c1") / "logs" / "source-controller.log").read_text()
    assert oct((op.dir("c1") / "state.json").stat().st_mode & 0o777) == "0o600"
    pids = [sc["pid"], kc_["pid"]]
    op.start_controllers("c1", kc)  # idempotent: the same processes
    assert [json.loads((op.dir("c1") / "state.json").read_text())[c]["pid"] for c in CONTROLLERS] == pids
    op.remove("c1")
    assert not any(_alive(p) for p in pids)
    assert not op.dir("c1").exists() and op.status("c1") == []


def test_no_two_controllers_share_a_temp_folder(op: LocalOperator, tmp_path: Path) -> None:
    """kustomize-controller removes every `kustomization-*` folder of its temp dir when it starts: in a
    shared /tmp, a cluster's controller starting deleted the builds in flight of another cluster's
    (`evalsymlink failure on '/tmp/kustomization-...'`, seen in the drill). Each has its own."""
    kc = tmp_path / "kc.yaml"
    kc.write_text("kubeconfig")
    op.start_controllers("c1", kc)
    op.start_controllers("c2", kc)
    seen = []
    for name in ("c1", "c2"):
        for ctl in CONTROLLERS:
            log = (op.dir(name) / "logs" / f"{ctl}.log").read_text()
            tmp = next(line.split(" ", 1)[1] for line in log.splitlines() if line.startswith("tmpdir "))
            assert Path(tmp).is_dir() and Path(tmp).is_relative_to(op.dir(name))
            seen.append(tmp)
    assert len(set(seen)) == 4


def test_a_stopped_operator_is_restarted_on_its_recorded_ports(op: LocalOperator, tmp_path: Path) -> None:
    kc = tmp_path / "kc.yaml"
    kc.write_text("kubeconfig")
    url = op.serve_repo("c1", _repo(tmp_path))
    op.start_controllers("c1", kc)
    before = json.loads((op.dir("c1") / "state.json").read_text())
    op.stop("c1")
    assert not op.running("c1") and not [p for p in op.status("c1") if p.running]
    assert op.restart("c1", kc)
    after = json.loads((op.dir("c1") / "state.json").read_text())
    assert op.running("c1") and op.git_url("c1") == url
    for what in (*CONTROLLERS, "git-server"):
        assert after[what]["pid"] != before[what]["pid"]
        assert {k: v for k, v in after[what].items() if k not in ("pid", "start")} == {
            k: v for k, v in before[what].items() if k not in ("pid", "start")}  # the same ports, the same repo
    assert not op.restart("c2", kc)  # nothing ran beside c2: nothing to restart


def test_the_git_endpoint_serves_the_repo_read_only_to_git_clone(op: LocalOperator, tmp_path: Path) -> None:
    repo = _repo(tmp_path)
    url = op.serve_repo("c1", repo)
    assert url.startswith("http://127.0.0.1:") and url.endswith("/fleet.git")
    assert op.serve_repo("c1", repo) == url  # idempotent
    done = subprocess.run(["git", "clone", "-q", url, str(tmp_path / "clone")], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert subprocess.run(["git", "-C", str(tmp_path / "clone"), "log", "--format=%s"], capture_output=True,
                          text=True).stdout.strip() == "first"
    push = subprocess.run(["git", "-C", str(tmp_path / "clone"), "push", "-q", "origin", "HEAD:refs/heads/x"],
                          capture_output=True, text=True)
    assert push.returncode != 0  # no pushes through it
    outside = subprocess.run(["git", "ls-remote", url.replace("/fleet.git", "/other.git")],
                             capture_output=True, text=True)
    assert outside.returncode != 0  # one repository only


def test_a_controller_that_exits_at_start_is_an_error_naming_it_and_its_log(
    op: LocalOperator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_CONTROLLER_FAIL", "1")
    with pytest.raises(LocalClusterError, match='source-controller of local cluster "c2" exited at start \\(code 1\\): '
                                                "error: no matches for kind Kustomization") as e:
        op.start_controllers("c2", tmp_path / "kc.yaml")
    assert e.value.hint is not None and "source-controller.log" in e.value.hint


def test_a_recycled_pid_is_not_taken_for_the_controller(op: LocalOperator, tmp_path: Path) -> None:
    kc = tmp_path / "kc.yaml"
    kc.write_text("kubeconfig")
    op.start_controllers("c1", kc)
    state = json.loads((op.dir("c1") / "state.json").read_text())
    real = state["kustomize-controller"]["pid"]
    state["kustomize-controller"]["pid"] = os.getpid()  # a live process, but not ours
    (op.dir("c1") / "state.json").write_text(json.dumps(state))
    try:
        assert not op.running("c1")
        op.stop("c1")  # must not signal the stranger (this test process)
    finally:
        os.kill(real, 9)
