"""The operator beside a local cluster: Flux's controllers and the fleet repo's git endpoint, run as
real processes next to the cluster's control plane.

kwok fakes nodes and kubelets, so the controllers cannot run as pods on a local cluster; they run
here instead, out of the cluster, with its kubeconfig, exactly as Flux documents running them for
development: leader election off, every namespace watched, metrics, health and source-controller's
artifact storage on loopback ports chosen free and recorded. A fleet repo with no http(s)/ssh remote
is served to them read-only by :mod:`fleet.local.gitserve` on loopback.

Everything lives under the cluster's folder in the local work directory::

    <workdir>/operator/<cluster>/state.json          pids, ports, the repo served
    <workdir>/operator/<cluster>/logs/*.log          each process's output
    <workdir>/operator/<cluster>/storage/            source-controller's artifacts

:class:`fleet.local.clusters.LocalClusters` owns the lifecycle: ``delete`` stops them (no orphans), ``create``
on an existing cluster restarts what was running. A process is recognised by its pid *and* its start
time, so a recycled pid is never mistaken for it (each also carries FLEET_OPERATOR_DIR in its
environment, which the test suite's leak check looks for).
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fleet import toolchain
from fleet.adapters import net, proc
from fleet.errors import LocalClusterError
from fleet.local import gitserve

__all__ = ["CONTROLLERS", "LocalOperator", "ProcessStatus"]


CONTROLLERS = ("source-controller", "kustomize-controller")
NAMESPACE = "flux-system"
_GIT = "git-server"
_MARKER = "FLEET_OPERATOR_DIR"  # in each process's environment: the folder of the cluster it serves


@dataclass(frozen=True)
class ProcessStatus:
    name: str  # source-controller | kustomize-controller | git-server
    running: bool
    pid: int | None
    detail: str  # ports, or the URL served






def _free_port() -> int:
    return net.free_ports(1)[0]


class LocalOperator:
    """The operator processes of the local clusters under one work directory."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir

    # -- state -------------------------------------------------------------------------------
    def dir(self, name: str) -> Path:
        return self.workdir / "operator" / name

    def _state_path(self, name: str) -> Path:
        return self.dir(name) / "state.json"

    def state(self, name: str) -> dict[str, Any]:
        try:
            data = json.loads(self._state_path(name).read_text())
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def _save(self, name: str, state: dict[str, Any]) -> None:
        path = self._state_path(name)
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(state, f, indent=2, sort_keys=True)
        os.replace(tmp, path)

    def _marker(self, name: str) -> str:
        return str(self.dir(name))

    def _running(self, name: str, entry: dict[str, Any] | None) -> bool:
        return bool(entry and entry.get("pid") and proc.alive(int(entry["pid"]), str(entry.get("start") or "")))

    # -- the git endpoint ----------------------------------------------------------------------
    def serve_repo(self, name: str, repo: Path) -> str:
        """Serve ``repo`` to the operator of cluster ``name`` and return the URL (idempotent: a server
        already serving it is kept; a dead one is started again on its recorded port when free)."""
        repo = repo.resolve()
        state = self.state(name)
        entry = state.get(_GIT)
        if self._running(name, entry) and entry and entry.get("repo") == str(repo):
            return gitserve.url_for(int(entry["port"]))
        if entry:
            self._stop_one(name, entry)
        port = int(entry["port"]) if entry and net.port_free(int(entry["port"])) else _free_port()
        d = self.dir(name)
        (d / "logs").mkdir(parents=True, exist_ok=True, mode=0o700)
        child = proc.spawn(
            [sys.executable, "-m", "fleet.local.gitserve", "--repo", str(repo), "--port", str(port)],
            env={_MARKER: self._marker(name)}, log=d / "logs" / f"{_GIT}.log",
        )
        state[_GIT] = {"pid": child.pid, "start": proc.start_time(child.pid), "port": port, "repo": str(repo)}
        self._save(name, state)
        self._wait_http(name, _GIT, child, f"{gitserve.url_for(port)}/info/refs?service=git-upload-pack")
        return gitserve.url_for(port)

    def git_url(self, name: str) -> str | None:
        entry = self.state(name).get(_GIT)
        return gitserve.url_for(int(entry["port"])) if entry else None

    # -- the controllers -----------------------------------------------------------------------
    def start_controllers(self, name: str, kubeconfig: Path, *, timeout: float = 90) -> None:
        """Start the controllers that are not running (idempotent), and wait until each is ready.
        Flux's CRDs must be installed first: a controller exits when its kinds are not served."""
        state = self.state(name)
        d = self.dir(name)
        (d / "logs").mkdir(parents=True, exist_ok=True, mode=0o700)
        (d / "storage").mkdir(parents=True, exist_ok=True, mode=0o700)
        started: list[tuple[str, proc.Child[bytes], int]] = []
        for ctl in CONTROLLERS:
            entry = state.get(ctl)
            if self._running(name, entry):
                continue
            ports = {k: int(v) for k, v in (entry or {}).items() if k in ("metrics", "health", "storage")}
            if not ports or not all(net.port_free(p) for p in ports.values()):
                want = ("metrics", "health", "storage") if ctl == "source-controller" else ("metrics", "health")
                ports = dict(zip(want, net.free_ports(len(want)), strict=True))
            args = [
                str(toolchain.find(ctl)),
                "--enable-leader-election=false",
                "--watch-all-namespaces=true",
                f"--metrics-addr=127.0.0.1:{ports['metrics']}",
                f"--health-addr=127.0.0.1:{ports['health']}",
                "--log-level=info",
                # The local control plane serves this cluster's controllers alone: Flux's client throttle (50
                # requests a second after a burst of 300), there to spare a shared API server, was what bounded
                # an apply of a few hundred objects (300: 3.7 s, 2.8 s without it; docs/measurements.md).
                "--kube-api-qps=500", "--kube-api-burst=1000",
            ]
            if ctl == "source-controller":
                args += [
                    f"--storage-path={d / 'storage'}",
                    f"--storage-addr=127.0.0.1:{ports['storage']}",
                    f"--storage-adv-addr=127.0.0.1:{ports['storage']}",
                ]
            else:
                # What fleet's renderer does: no remote bases, and a variable that is not set (and has no
                # default) fails the build instead of becoming "" (docs/live.md, render parity). A new
                # pin (a rollback) cancels the health checks of a revision that never becomes healthy,
                # instead of waiting for their timeout. A Kustomization whose dependsOn is not Ready yet is
                # looked at again after 5 s (the default is 30 s: a chain of three took a minute and a half).
                args += ["--no-remote-bases=true", "--requeue-dependency=5s",
                         "--feature-gates=StrictPostBuildSubstitutions=true,CancelHealthCheckOnNewRevision=true"]
            # Each controller gets a temp folder of its own: kustomize-controller removes every
            # `kustomization-*` folder of its temp dir when it starts (the leftovers of its previous
            # process), which in a shared /tmp are the builds in flight of the other clusters' controllers.
            tmp = d / "tmp" / ctl
            tmp.mkdir(parents=True, exist_ok=True, mode=0o700)
            env = {"KUBECONFIG": str(kubeconfig), "RUNTIME_NAMESPACE": NAMESPACE, _MARKER: self._marker(name),
                   "TMPDIR": str(tmp)}
            child = proc.spawn(args, env=env, log=d / "logs" / f"{ctl}.log")
            state[ctl] = {"pid": child.pid, "start": proc.start_time(child.pid), **ports}
            self._save(name, state)
            started.append((ctl, child, ports["health"]))
        for ctl, child, health in started:
            self._wait_http(name, ctl, child, f"http://127.0.0.1:{health}/readyz", timeout=timeout)

    def _wait_http(self, name: str, what: str, child: proc.Child[bytes], url: str, timeout: float = 60) -> None:
        """Until ``url`` answers 200 (the process is ready), or the process exits, or the deadline.
        The process is this one's child, so its exit is known for sure (``poll``), never guessed."""
        deadline = proc.monotonic() + timeout
        while True:
            if net.http_ok(url) and child.poll() is None:
                return
            code = child.poll()
            if code is not None:
                raise LocalClusterError(
                    f'{what} of local cluster "{name}" exited at start (code {code}): {self._log_tail(name, what)}',
                    hint=f"see {self.dir(name) / 'logs' / (what + '.log')}",
                )
            if proc.monotonic() > deadline:
                raise LocalClusterError(
                    f'{what} of local cluster "{name}" was not ready within {timeout:.0f}s',
                    hint=f"see {self.dir(name) / 'logs' / (what + '.log')}", transient=True,
                )
            proc.pause(0.1)  # polling a readiness endpoint: the explicit state waited for

    def _log_tail(self, name: str, what: str) -> str:
        try:
            lines = (self.dir(name) / "logs" / f"{what}.log").read_text(errors="replace").strip().splitlines()
        except OSError:
            return "no log"
        return " | ".join(line[:300] for line in lines[-3:]) or "no output"

    # -- status, restart, stop -----------------------------------------------------------------
    def status(self, name: str) -> list[ProcessStatus]:
        state = self.state(name)
        out: list[ProcessStatus] = []
        for what in (*CONTROLLERS, _GIT):
            entry = state.get(what)
            if not entry:
                continue
            running = self._running(name, entry)
            if what == _GIT:
                detail = gitserve.url_for(int(entry["port"]))
            else:
                detail = ", ".join(f"{k} {v}" for k, v in sorted(entry.items()) if k not in ("pid", "start"))
            out.append(ProcessStatus(what, running, int(entry["pid"]) if running else None, detail))
        return out

    def running(self, name: str) -> bool:
        """Both controllers run."""
        state = self.state(name)
        return all(self._running(name, state.get(ctl)) for ctl in CONTROLLERS)

    def restart(self, name: str, kubeconfig: Path) -> bool:
        """Start again what ran before (after a reboot, a stop, or a cluster started again)."""
        state = self.state(name)
        if not state:
            return False
        if _GIT in state:
            self.serve_repo(name, Path(state[_GIT]["repo"]))
        if any(ctl in state for ctl in CONTROLLERS):
            self.start_controllers(name, kubeconfig)
        return True

    def _stop_one(self, name: str, entry: dict[str, Any], grace: float = 10) -> None:
        pid, start = int(entry.get("pid") or 0), str(entry.get("start") or "")
        if not pid or not start or not proc.alive(pid, start):  # never signal a process not known for sure
            return
        proc.stop_group(pid, lambda: proc.alive(pid, start), grace)  # its own group (proc.spawn starts a session)

    def stop(self, name: str, *, controllers_only: bool = False) -> None:
        """Stop every process of the cluster's operator (or only its controllers); the state (ports,
        repo) stays for a restart."""
        state = self.state(name)
        for what in CONTROLLERS if controllers_only else (*CONTROLLERS, _GIT):
            if what in state:
                self._stop_one(name, state[what])

    def remove(self, name: str) -> None:
        """Stop everything and forget it (the cluster is deleted)."""
        import shutil

        self.stop(name)
        shutil.rmtree(self.dir(name), ignore_errors=True)
