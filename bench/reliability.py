"""Reliability figures for docs/reliability.md, measured on real local clusters and the real Pulumi engine.

    python -m bench.reliability [--write docs/reliability.md] [--skip-kills] [--skip-faults]

1. **SIGKILL sweep of `fleet bootstrap`**: the run is crashed (SIGKILL to its process group, as a power
   cut would) at 10 distinct points across its steps, each followed by a rerun that is itself crashed at
   the next point, until a last rerun runs to the end. A point is an explicit state of the run (its
   journal, the stack's lock, the lines it printed), checked again once the run is frozen (SIGSTOP), so
   the kill lands in that state and nowhere else; a point the run went past before it was seen is
   reported as missed, never counted as a kill. After each chain: the cluster recovered at the revision,
   the journal kept every step done before each kill (same end time: not redone, not lost) under one
   run id, one local cluster, every stack resource once, one operator (two controllers) beside it.
2. **SIGKILL sweep of `fleet rollout`** at 5 points across two waves, the same way.
3. **Fault-injecting proxy** in front of the API server (tests/integration/faultproxy.py: answers 503,
   429 with Retry-After, resets the connection before the request reached the server or after it acted)
   at 10 %, 30 % and 50 % of requests: `fleet sync --sync direct`, `fleet gate`, `fleet status`, each
   timed, with its exit code and, when it fails, its one-line message.
4. The hostile-input corpus of the security work (tests/unit/test_hostile_inputs.py): cases and result.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import RESULTS

ROOT = Path(__file__).resolve().parent.parent
for sub in ("tests", "tests/e2e", "tests/integration"):
    sys.path.insert(0, str(ROOT / sub))

GIT_IDENTITY = {"GIT_AUTHOR_NAME": "Fleet Bench", "GIT_AUTHOR_EMAIL": "bench@fleet.test",
                "GIT_COMMITTER_NAME": "Fleet Bench", "GIT_COMMITTER_EMAIL": "bench@fleet.test"}
STEPS = ["resolve", "plan", "provision", "operator", "sync", "gates", "record", "report"]


# ---- the world --------------------------------------------------------------------------------------

@dataclass
class World:
    work: Path
    home: Path
    repo: Path
    backend: Path

    def fleet(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "fleet", *args], capture_output=True, text=True,
                              timeout=timeout, env=dict(os.environ), cwd=self.repo)

    def journal(self, cluster: str) -> dict[str, Any] | None:
        return _json(self.home / "bootstrap" / cluster / "journal.json")

    def stack_urns(self, stack: str) -> list[str]:
        files = [p for p in self.backend.rglob(f"{stack}.json")
                 if "history" not in p.parts and "backups" not in p.parts]
        if len(files) != 1:
            return []
        return [r["urn"] for r in json.loads(files[0].read_text())["checkpoint"]["latest"].get("resources", [])]


def _json(path: Path) -> dict[str, Any] | None:
    try:
        data: dict[str, Any] = json.loads(path.read_text())
        return data
    except (OSError, ValueError):
        return None


def make_world() -> World:
    from e2e_support import make_fleet_repo

    work = Path(tempfile.mkdtemp(prefix="fleet-reliability-"))
    os.environ.update(GIT_IDENTITY)
    os.environ["FLEET_HOME"] = str(work / "home")
    os.environ["PULUMI_BACKEND_URL"] = f"file://{work / 'backend'}"
    os.environ["PULUMI_CONFIG_PASSPHRASE"] = "reliability"
    os.environ.pop("FLEET_REPO", None)
    (work / "backend").mkdir()
    repo = make_fleet_repo(work)
    return World(work, work / "home", repo, work / "backend")


# ---- crashes at explicit states ---------------------------------------------------------------------

@dataclass
class Point:
    label: str
    ready: Callable[[str], bool]  # the log so far -> the run is in this state
    settled: Callable[[], bool] | None = None  # what the crashed run's work in flight ends in


@dataclass
class ChainResult:
    what: str
    points: list[tuple[str, str]] = field(default_factory=list)  # (label, "killed" | "missed")
    snapshots: list[dict[str, Any]] = field(default_factory=list)
    rc: int | None = None
    duration_s: float = 0.0
    checks: dict[str, bool] = field(default_factory=dict)
    detail: str = ""


def _freeze(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGSTOP)


def _thaw(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGCONT)


def run_chain(world: World, what: str, cmd: list[str], points: list[Point], snapshot: Callable[[], dict[str, Any]],
              timeout: float = 900) -> ChainResult:
    """Run ``cmd``; crash it at each point in turn (a rerun after each crash); then let the last run end."""
    from e2e_support import crash

    res = ChainResult(what)
    t0 = time.monotonic()
    i, n = 0, 0
    while True:
        n += 1
        log = world.work / f"{what}-run-{n}.log"
        with open(log, "w") as out:
            proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True, cwd=world.repo)
        deadline = time.monotonic() + timeout
        killed = False
        while proc.poll() is None and i < len(points):
            text = log.read_text(errors="replace")
            p = points[i]
            if p.ready(text):
                _freeze(proc.pid)
                if proc.poll() is None and p.ready(log.read_text(errors="replace")):
                    res.snapshots.append(snapshot())
                    crash(proc, world.home, p.settled)
                    res.points.append((p.label, "killed"))
                    i += 1
                    killed = True
                    break
                _thaw(proc.pid)
            elif any(q.ready(text) for q in points[i + 1:]):  # a later point holds: this one was passed
                res.points.append((p.label, "missed"))
                i += 1
                continue
            if time.monotonic() > deadline:
                crash(proc, world.home)
                raise SystemExit(f"{what}: run {n} reached no point within {timeout:.0f}s; see {log}")
            time.sleep(0.05)  # polling explicit states; the freeze decides, not the clock
        if killed:
            continue
        res.rc = proc.wait(timeout)
        res.points += [(p.label, "missed") for p in points[i:]]
        res.duration_s = round(time.monotonic() - t0, 1)
        res.detail = log.read_text(errors="replace")[-2000:] if res.rc != 0 else ""
        return res


# ---- 1. bootstrap ------------------------------------------------------------------------------------

def _step(world: World, cluster: str, name: str) -> str | None:
    j = world.journal(cluster)
    return next((s["state"] for s in j["steps"] if s["name"] == name), None) if j else None


def bootstrap_points(world: World, cluster: str, which: list[int]) -> list[Point]:
    from e2e_support import stack_locks

    from fleet.local.clusters import LocalClusters

    kc = LocalClusters().kubeconfig_path(cluster)
    cdir = LocalClusters().workdir / "kwok" / "clusters" / cluster

    def st(name: str) -> str | None:
        return _step(world, cluster, name)

    def locked() -> bool:
        return bool(stack_locks(cluster))

    every = [
        Point("provision: engine update started, before the cluster",
              lambda t: st("provision") == "running" and locked() and "creating LocalCluster" not in t),
        # kwokctl itself is killed too, half way: its cluster folder exists, fleet's kubeconfig of it not yet
        # (the rerun finds the cluster half made, deletes it and makes it again: fleet.local.clusters)
        Point("provision: kwokctl killed while it creates the cluster (inside the engine's update)",
              lambda t: st("provision") == "running" and locked() and "creating LocalCluster" in t
              and "created LocalCluster" not in t and (cdir / "kwok.yaml").is_file() and not kc.is_file()),
        Point("provision: cluster created, the engine finishing its update",
              lambda t: st("provision") == "running" and "created LocalCluster" in t),
        Point("operator: engine update started, nothing created yet",
              lambda t: st("operator") == "running" and locked() and "creating " not in t.split("► operator", 1)[-1]),
        Point("operator: engine update, Flux's CRDs being created",
              lambda t: st("operator") == "running" and locked() and "creating CustomResourceDefinition" in t
              and "creating GitRepository" not in t),
        Point("operator: engine update, GitRepository/Kustomization being created",
              lambda t: st("operator") == "running" and locked() and "creating GitRepository" in t),
        Point("operator: Flux's controllers starting beside the cluster",
              lambda t: st("operator") == "running" and "starting Flux's controllers" in t
              and "run beside" not in t),
        Point("sync: waiting for Flux to fetch and apply the revision",
              lambda t: st("sync") == "running" and "waiting for Flux" in t),
        Point("gates: waiting for the health gates",
              lambda t: st("gates") == "running" and "waiting for" in t.split("gates", 1)[-1]),
        Point("record: gates passed, last good being recorded",
              lambda t: st("gates") == "done" and st("record") in ("pending", "running")),
    ]
    return [every[k] for k in which]


def bootstrap_chain(world: World, cluster: str, which: list[int]) -> ChainResult:
    from e2e_support import need_local_clusters

    from fleet.local.clusters import LocalClusters

    need_local_clusters()
    p = world.fleet("cluster", "add", cluster, "--env", "prod", "--region", "eu", "--repo", str(world.repo))
    if p.returncode != 0:
        raise SystemExit(p.stderr)
    subprocess.run(["git", "-C", str(world.repo), "push", "-q", "origin", "HEAD"], check=True)
    head = subprocess.run(["git", "-C", str(world.repo), "rev-parse", "HEAD"], capture_output=True, text=True,
                          check=True).stdout.strip()
    cmd = [sys.executable, "-m", "fleet", "bootstrap", cluster, "--to", head, "--repo", str(world.repo), "-o", "json"]
    res = run_chain(world, f"bootstrap-{cluster}", cmd, bootstrap_points(world, cluster, which),
                    lambda: world.journal(cluster) or {})
    final = world.journal(cluster) or {}
    runs = sorted((world.home / "bootstrap" / cluster / "runs").glob("*.json"))
    final = _json(runs[-1]) if runs else final
    final = final or {}
    steps = {s["name"]: s for s in final.get("steps", [])}
    kept = all(
        steps.get(s["name"], {}).get("state") == "done" and steps[s["name"]].get("ended") == s.get("ended")
        for snap in res.snapshots for s in snap.get("steps", []) if s["state"] == "done"
    )
    urns = world.stack_urns(cluster)
    from fleet.local.flux import CONTROLLERS, LocalOperator

    op = LocalOperator(LocalClusters().workdir)
    ids = {snap.get("run_id") for snap in res.snapshots} | {final.get("run_id")}
    res.checks = {
        "recovered": res.rc == 0 and final.get("state") == "recovered" and final.get("revision") == head,
        "one run id, every done step kept": len(ids) == 1 and kept,
        "resumed once per kill": final.get("resumed") == sum(1 for _, k in res.points if k == "killed"),
        "one local cluster": LocalClusters().list().count(cluster) == 1,
        "every stack resource once": bool(urns) and len(urns) == len(set(urns))
        and sum(":LocalCluster::" in u for u in urns) == 1,
        "one operator": op.running(cluster) and len(_operator_pids(world.home, cluster)) == len(CONTROLLERS),
    }
    return res


def _operator_pids(home: Path, cluster: str) -> list[int]:
    """The controller processes serving ``cluster`` (fleet.local.flux marks them in their environment)."""
    from e2e_support import _processes

    def ours(cmd: bytes, env: bytes) -> bool:
        argv0 = os.path.basename(cmd.split(b"\0")[0])
        marks = [e for e in env.split(b"\0") if e.startswith(b"FLEET_OPERATOR_DIR=")]
        return argv0 in (b"source-controller", b"kustomize-controller") and any(
            m.rstrip(b"/").endswith(f"/{cluster}".encode()) and str(home).encode() in m for m in marks)

    return _processes(ours)


# ---- 2. rollout -------------------------------------------------------------------------------------

def rollout_chain(world: World) -> ChainResult:
    from e2e_support import stack_locks

    names = ("rel-us-1", "rel-us-2")
    for name, env, wave in ((names[0], "prod", 1), (names[1], "staging", 2)):
        p = world.fleet("cluster", "add", name, "--env", env, "--region", "us", "--wave", str(wave),
                        "--repo", str(world.repo))
        if p.returncode != 0:
            raise SystemExit(p.stderr)
    subprocess.run(["git", "-C", str(world.repo), "push", "-q", "origin", "HEAD"], check=True)
    head = subprocess.run(["git", "-C", str(world.repo), "rev-parse", "HEAD"], capture_output=True, text=True,
                          check=True).stdout.strip()

    def rj() -> dict[str, Any]:
        return _json(world.home / "rollouts" / "current.json") or {}

    def waves() -> list[str]:
        return [w["state"] for w in rj().get("waves", [])]

    def st(cluster: str, name: str) -> str | None:
        return _step(world, cluster, name)

    a, b = names
    points = [
        Point("wave 1: a cluster's provision inside the engine's update",
              lambda t: st(a, "provision") == "running" and bool(stack_locks(a)) and "created LocalCluster" not in t,
              settled=lambda: not _kwokctl_running(world.home)),
        Point("wave 1: the operator being installed", lambda t: st(a, "operator") == "running"),
        Point("wave 1: gates of the wave's cluster", lambda t: st(a, "gates") == "running"),
        Point("wave 2: provision inside the engine's update",
              lambda t: waves()[:1] == ["passed"] and st(b, "provision") == "running" and bool(stack_locks(b)),
              settled=lambda: not _kwokctl_running(world.home)),
        Point("wave 2: sync through the operator", lambda t: waves()[:1] == ["passed"] and st(b, "sync") == "running"),
    ]
    cmd = [sys.executable, "-m", "fleet", "rollout", "-l", "region=us", "--max-parallel", "2", "--rev", head,
           "--repo", str(world.repo), "-o", "json"]
    res = run_chain(world, "rollout", cmd, points, rj)
    done = sorted((world.home / "rollouts").glob("*/journal.json"))
    final = _json(done[-1]) if done else {}
    final = final or {}
    ids = {s.get("id") for s in res.snapshots} | {final.get("id")}
    from fleet.good import get_good

    goods = [get_good(world.repo, n) for n in names]
    res.checks = {
        "succeeded": res.rc == 0 and final.get("state") == "succeeded",
        "one rollout id": len(ids) == 1,
        "every cluster at the revision (last good)": all(g is not None and g.revision == head for g in goods),
        "every stack resource once": all(
            (u := world.stack_urns(n)) and len(u) == len(set(u)) for n in names),
        "one operator each": all(len(_operator_pids(world.home, n)) == 2 for n in names),
    }
    return res


def _kwokctl_running(home: Path) -> bool:
    from e2e_support import leftovers

    return any(b"kwokctl" in Path(f"/proc/{p}/cmdline").read_bytes() for p in leftovers(home)
               if Path(f"/proc/{p}").exists())


# ---- 3. faults ----------------------------------------------------------------------------------------

SWEEP_OBJECTS = 100


def sweep_overlay(repo: Path) -> None:
    """environments/sweep: a Namespace, 3 Deployments and ConfigMaps whose data follow ${SWEEP}, so two
    revisions differ in every object (each sync applies them all)."""
    d = repo / "environments" / "sweep"
    d.mkdir(parents=True, exist_ok=True)
    docs = ["apiVersion: v1\nkind: Namespace\nmetadata:\n  name: sweep\n"]
    for i in range(3):
        docs.append(
            f"apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: app-{i}\n  namespace: sweep\nspec:\n"
            f"  replicas: 1\n  selector:\n    matchLabels: {{app: app-{i}}}\n  template:\n"
            f"    metadata:\n      labels: {{app: app-{i}}}\n    spec:\n      containers:\n"
            f"        - name: app\n          image: registry.fleet.local/app:{i}\n")
    for i in range(SWEEP_OBJECTS - 4):
        docs.append(f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm-{i:03d}\n  namespace: sweep\n"
                    f"data:\n  round: \"${{SWEEP}}\"\n")
    (d / "objects.yaml").write_text("---\n".join(docs))
    (d / "kustomization.yaml").write_text(
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n  - objects.yaml\n")
    subprocess.run(["git", "-C", str(repo), "add", "-A"], check=True)
    subprocess.run(["git", "-C", str(repo), "commit", "-qm", "environments/sweep"], check=True)


def fault_sweep(world: World, cluster: str, rates: list[float]) -> list[dict[str, Any]]:
    """``cluster`` (bootstrapped, its Flux suspended so fleet alone applies) moves to environments/sweep;
    at each rate fleet syncs the revision it is not at (every object changes), gates it and shows status,
    through the proxy."""
    from faultproxy import FaultProxy, Faults

    from fleet import toolchain
    from fleet.access import kubeconfig_cache_path
    from fleet.local.clusters import LocalClusters

    kc = kubeconfig_cache_path(cluster)
    saved = kc.read_bytes()
    real = world.work / f"{cluster}.real.kubeconfig"
    real.write_bytes(saved)
    kubectl = [str(toolchain.find("kubectl")), "--kubeconfig", str(real)]
    for ks in subprocess.run([*kubectl, "-n", "flux-system", "get", "kustomizations", "-o", "name"],
                             capture_output=True, text=True, check=True).stdout.split():
        subprocess.run([*kubectl, "-n", "flux-system", "patch", ks, "--type", "merge", "-p",
                        '{"spec":{"suspend":true}}'], check=True, capture_output=True)
    sweep_overlay(world.repo)
    revs = []
    for n in (1, 2):
        args = ("--env", "sweep") if n == 1 else ()
        p = world.fleet("cluster", "set", cluster, *args, "--var", f"SWEEP=round-{n}",  # a string, not a number
                        "--repo", str(world.repo))
        if p.returncode != 0:
            raise SystemExit(p.stderr)
        revs.append(subprocess.run(["git", "-C", str(world.repo), "rev-parse", "HEAD"], capture_output=True,
                                   text=True, check=True).stdout.strip())
    p = world.fleet("sync", cluster, "--sync", "direct", "--rev", revs[0], "--repo", str(world.repo))
    if p.returncode != 0:
        raise SystemExit(p.stderr)
    pki = LocalClusters().workdir / "kwok" / "clusters" / cluster / "pki"
    rows: list[dict[str, Any]] = []
    k = 0
    try:
        for rate in rates:
            k += 1
            rev = revs[k % 2]
            commands = {
                "sync": ["sync", cluster, "--sync", "direct", "--rev", rev],
                "gate": ["gate", cluster, "--rev", rev, "--operator-gate", "off", "--timeout", "120s"],
                "status": ["status", "-l", "region=eu"],
            }
            for name, args in commands.items():
                faults = Faults(status_503=rate * 0.4, status_429=rate * 0.1, reset_before=rate * 0.25,
                                reset_after=rate * 0.25, retry_after="1", seed=int(rate * 100) + len(name))
                with FaultProxy(real, pki, world.work / f"proxy-{name}-{rate}", faults) as proxy:
                    kc.write_bytes(proxy.kubeconfig.read_bytes())
                    t0 = time.monotonic()
                    p = world.fleet(*args, "--repo", str(world.repo), timeout=900)
                    took = time.monotonic() - t0
                    injected = {k: v for k, v in faults.counts.items() if k != "requests"}
                    requests = faults.counts.get("requests", 0)
                kc.write_bytes(saved)
                err = [ln for ln in p.stderr.splitlines() if ln.startswith(("error", "✗"))]
                rows.append({
                    "command": f"fleet {name}", "rate": rate, "rc": p.returncode, "seconds": round(took, 1),
                    "requests": requests, "injected": sum(injected.values()),
                    "traceback": "Traceback" in p.stderr,
                    "message": (err[-1] if err else "")[:200],
                })
    finally:
        kc.write_bytes(saved)
    return rows


# ---- 4. the hostile-input corpus ----------------------------------------------------------------------

def corpus() -> dict[str, Any]:
    p = subprocess.run([sys.executable, "-m", "pytest", "tests/unit/test_hostile_inputs.py", "-q", "-p",
                        "no:cacheprovider"], capture_output=True, text=True, cwd=ROOT, timeout=900)
    m = re.search(r"(\d+) passed", p.stdout)
    f = re.search(r"(\d+) failed", p.stdout)
    return {"passed": int(m.group(1)) if m else 0, "failed": int(f.group(1)) if f else 0, "rc": p.returncode}


# ---- the report ----------------------------------------------------------------------------------------

def _bounds() -> str:
    """The "Retry bounds" section of docs/reliability.md, where they are stated once: kept when the report is
    written again (this bench measures; it does not state the bounds)."""
    try:
        text = (ROOT / "docs" / "reliability.md").read_text()
    except OSError:
        return ""
    found = re.search(r"^## Retry bounds.*?(?=^## )", text, re.M | re.S)
    return found.group(0) if found else ""


def markdown(chains: list[ChainResult], faults: list[dict[str, Any]], bad: dict[str, Any] | None,
             started: str, took: float) -> str:
    out = ["# Reliability", "",
           f"Measured by `python -m bench.reliability --write docs/reliability.md` on {started} "
           f"({took / 60:.1f} min, this 2-core machine), on real local clusters (kwokctl control planes, Flux's "
           "controllers as processes beside them) and the real Pulumi engine with a file backend. Nothing here "
           "is mocked; the cloud providers are not involved.", "",
           _bounds(),
           "## SIGKILL at explicit points, each followed by a rerun", "",
           "Each point is a state of the run (its journal, the stack's lock, what it printed), checked again "
           "once the run is frozen, so the kill lands there and nowhere else. A chain crashes a run at its "
           "first point, the rerun at the next, and so on; the last rerun ends. A point the run passed before "
           "it was seen is *missed* (not counted).", ""]
    for c in chains:
        out += [f"### {c.what}", "", "| # | point | result |", "|---|---|---|"]
        out += [f"| {k} | {label} | {state} |" for k, (label, state) in enumerate(c.points, 1)]
        out += ["", f"Last rerun exit {c.rc}; the whole chain {c.duration_s:.0f} s.", "",
                "| check after the chain | holds |", "|---|---|"]
        out += [f"| {k} | {'yes' if v else '**NO**'} |" for k, v in c.checks.items()]
        if c.detail:
            out += ["", "```", c.detail[-1500:], "```"]
        out.append("")
    if chains:
        killed = sum(s == "killed" for c in chains for _, s in c.points if c.what.startswith("bootstrap"))
        rkilled = sum(s == "killed" for c in chains for _, s in c.points if c.what == "rollout")
        ok = all(all(c.checks.values()) for c in chains)
        out += [f"**Total**: `fleet bootstrap` killed at {killed} distinct points, `fleet rollout` at {rkilled}; "
                f"{'every chain converged with every check holding' if ok else 'SOME CHECKS FAILED (above)'}.", ""]
    if faults:
        out += ["## A flaky API server (fault-injecting proxy)", "",
                "Shares of API requests that fail: 40 % of them answered 503, 10 % 429 with `Retry-After: 1`, "
                "25 % a connection reset before the request reached the server, 25 % a reset after it acted "
                "(the client never hears). Watches pass through. Seeded, so a run is repeatable.", "",
                f"Workload: `fleet sync --sync direct` of {SWEEP_OBJECTS} objects that all change between the two "
                "revisions synced in turn (the cluster's Flux suspended, so fleet alone applies), `fleet gate` of "
                "that revision (3 Deployments, the inventory), `fleet status` of the region.", "",
                "| command | failing requests | exit | seconds | requests | injected | message |",
                "|---|---|---|---|---|---|---|"]
        for r in faults:
            msg = r["message"].replace("|", "\\|") + (" **(traceback)**" if r["traceback"] else "")
            out.append(f"| `{r['command']}` | {r['rate']:.0%} | {r['rc']} | {r['seconds']} | {r['requests']} | "
                       f"{r['injected']} | {msg} |")
        out.append("")
    if bad:
        out += ["## Bad input", "",
                f"The hostile-input corpus of the security work (tests/unit/test_hostile_inputs.py): "
                f"{bad['passed'] + bad['failed']} cases, {bad['passed']} refused cleanly (one line, exit 2, "
                f"nothing written), {bad['failed']} not. See docs/security.md.", ""]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.reliability")
    ap.add_argument("--write", type=Path, help="write the markdown report here (e.g. docs/reliability.md)")
    ap.add_argument("--skip-kills", action="store_true")
    ap.add_argument("--skip-faults", action="store_true")
    ap.add_argument("--keep", action="store_true", help="keep the clusters and the work folder")
    args = ap.parse_args(argv)
    started = time.strftime("%Y-%m-%d")
    t0 = time.monotonic()
    world = make_world()
    from fleet.local.clusters import LocalClusters

    chains: list[ChainResult] = []
    faults: list[dict[str, Any]] = []
    made = ["rel-a", "rel-b", "rel-us-1", "rel-us-2"]
    try:
        if not args.skip_kills:
            chains.append(bootstrap_chain(world, "rel-a", [0, 2, 4, 6, 8]))
            print(json.dumps(chains[-1].__dict__, default=str)[:3000], flush=True)
            chains.append(bootstrap_chain(world, "rel-b", [1, 3, 5, 7, 9]))
            print(json.dumps(chains[-1].__dict__, default=str)[:3000], flush=True)
            chains.append(rollout_chain(world))
            print(json.dumps(chains[-1].__dict__, default=str)[:3000], flush=True)
        else:
            bootstrap_chain(world, "rel-a", [])
        if not args.skip_faults:
            faults = fault_sweep(world, "rel-a", [0.1, 0.3, 0.5])
            print(json.dumps(faults, indent=1), flush=True)
        bad = corpus()
    finally:
        if not args.keep:
            for name in made:
                world.fleet("destroy", name, "--yes", "--repo", str(world.repo))
                LocalClusters()._delete_quietly(name)
            from e2e_support import kill_leftovers

            kill_leftovers(world.home)
            shutil.rmtree(world.work, ignore_errors=True)
    text = markdown(chains, faults, bad, started, time.monotonic() - t0)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "reliability.md").write_text(text + "\n")
    if args.write:
        args.write.write_text(text + "\n")
    print(text)
    ok = all(all(c.checks.values()) for c in chains) and all(
        (r["rc"] == 0) if r["rate"] <= 0.3 else not r["traceback"] for r in faults)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
