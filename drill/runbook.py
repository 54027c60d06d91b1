"""The DR drill: the README's first command. Everything runs for real on this machine.

1. create a fleet repo (`fleet init`) with a bare "remote" beside it, and three local clusters;
2. bring them up through Flux, whose controllers run beside each cluster and clone the remote
   fleet serves on loopback, and record each one's last good revision (`fleet bootstrap --to HEAD`);
3. commit a bad change (a release whose pods can never be scheduled) and promote it to eu-1 (the
   pin moves, Flux applies it): the health checks fail, so eu-1's last good does not move;
4. lose eu-1 (its control plane and data are deleted);
5. `fleet bootstrap eu-1`: a new cluster, Flux installed and pinned to the last good commit, Flux
   applies it (not the bad one), with the recovery report printed at the end;
6. `fleet drill eu-1`: the rehearsal a schedule would run: eu-1 rebuilt again, as if lost, into a scratch
   cluster (eu-1-drill) against prod's recovery objective, the evidence kept as a git note, the scratch
   cluster removed; `fleet drill history eu-1` and `fleet status` show it.

    python -m drill [--workdir DIR] [--keep]

Each step prints the `fleet` command it runs, so the drill doubles as a runbook to copy.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

BAD_PATCH = """\
# Release 2.0: hello moves to the GPU pool.
apiVersion: apps/v1
kind: Deployment
metadata:
  name: hello
spec:
  replicas: ${REPLICAS:=3}
  template:
    spec:
      nodeSelector:
        fleet.dev/pool: gpu   # no node of the fleet has this label: the pods stay Pending
      containers:
        - name: hello
          image: registry.fleet.local/hello:2.0.0
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: hello-config
data:
  LOG_LEVEL: "${LOG_LEVEL:=warn}"
"""

OBJECTIVES = """\
recovery:  # proven by `fleet drill`: a rebuild of a prod cluster takes at most rto, proven every drill_every
  environments:
    prod: {rto: 5m, drill_every: 7d}
"""
DRILLED = "eu-1"

CLUSTERS = (
    ("eu-1", "prod", "eu", 0),
    ("eu-2", "prod", "eu", 1),
    ("us-1", "staging", "us", 0),
)


class Drill:
    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.repo = workdir / "fleet-repo"
        self.remote = workdir / "fleet-remote.git"
        self.env = dict(os.environ)
        self.env["FLEET_HOME"] = str(workdir / "home")
        self.env["FLEET_REPO"] = str(self.repo)
        self.fleet = [sys.executable, "-m", "fleet"]
        identity = subprocess.run(["git", "config", "--get", "user.email"], capture_output=True, text=True)
        if identity.returncode != 0 and "GIT_AUTHOR_EMAIL" not in os.environ:
            # A fresh machine has no git identity; the drill's commits are signed as the drill's.
            for who in ("AUTHOR", "COMMITTER"):
                self.env.setdefault(f"GIT_{who}_NAME", "fleet drill")
                self.env.setdefault(f"GIT_{who}_EMAIL", "drill@fleet.invalid")
        self.t0 = time.monotonic()

    def say(self, text: str) -> None:
        print(f"\n\033[1m== {text}\033[0m" if sys.stdout.isatty() else f"\n== {text}", flush=True)

    def run(self, *args: str, ok: tuple[int, ...] = (0,), capture: bool = False) -> subprocess.CompletedProcess[str]:
        print(f"$ fleet {shlex.join(args)}", flush=True)
        p = subprocess.run([*self.fleet, *args], env=self.env, text=True,
                           stdout=subprocess.PIPE if capture else None)
        if p.returncode not in ok:
            raise SystemExit(f"drill: `fleet {shlex.join(args)}` exited {p.returncode} (expected {ok})")
        return p

    def git(self, *args: str) -> str:
        return subprocess.run(["git", "-C", str(self.repo), *args], check=True, text=True,
                              capture_output=True, env=self.env).stdout.strip()

    def main(self, keep: bool) -> int:
        try:
            return self._drill()
        finally:
            if not keep:
                self.say("cleaning up the drill's local clusters")
                for name in [c[0] for c in CLUSTERS] + [f"{DRILLED}-drill"]:
                    subprocess.run([*self.fleet, "local", "delete", name], env=self.env)

    def _drill(self) -> int:
        self.say("1. a fleet repo with three clusters")
        self.run("init", str(self.repo))
        subprocess.run(["git", "init", "-q", "--bare", str(self.remote)], check=True)
        self.git("remote", "add", "origin", str(self.remote))
        print(f"(the remote {self.remote} is a local path: fleet serves it over smart HTTP on loopback beside "
              "each local cluster, for Flux to clone)")
        for name, env, region, wave in CLUSTERS:
            self.run("cluster", "add", name, "--env", env, "--region", region, "--wave", str(wave))
        self.run("cluster", "list")
        with (self.repo / "fleet.yaml").open("a") as f:
            f.write(OBJECTIVES)
        self.git("commit", "-qam", "prod: recovery objectives")
        print(f"(fleet.yaml declares prod's recovery objective:\n{OBJECTIVES.rstrip()})")
        self.run("push")  # the operator fetches from the remote: Git is the source of truth

        self.say("2. bring the fleet up through Flux; each cluster records its last good revision")
        self.run("bootstrap", "--all", "--to", "HEAD", "--max-parallel", "3", "-o", "json", capture=True)
        good = self.git("rev-parse", "HEAD")
        self.run("push")
        self.run("local", "list")
        self.run("status")

        self.say("3. a bad change reaches eu-1 through Flux and fails its health checks; last good stays")
        (self.repo / "environments" / "prod" / "hello.yaml").write_text(BAD_PATCH)
        self.git("commit", "-qam", "prod: release hello 2.0 on the GPU pool")
        bad = self.git("rev-parse", "HEAD")
        self.run("push")
        self.run("sync", "eu-1", "--timeout", "20s", ok=(1,))  # the pin moves; Flux applies; pods stay Pending
        self.run("gate", "eu-1", "--timeout", "10s", "--mark-good", ok=(1,))
        self.run("good", "eu-1")

        self.say("4. eu-1 is lost")
        self.run("local", "delete", "eu-1")
        self.run("status", ok=(0, 1))

        self.say("5. rebuild eu-1 from the repo at its last good commit")
        self.run("bootstrap", "eu-1", "--dry-run")
        t = time.monotonic()
        self.run("bootstrap", "eu-1")
        recovery = time.monotonic() - t
        status = json.loads(self.run("status", "-o", "json", capture=True).stdout)
        row = next(c for c in status["items"] if c["name"] == "eu-1")
        applied = str(row.get("applied_revision") or row.get("applied") or "")
        self.say("result")
        by = row.get("applied_by", "-")
        print(f"last good {good[:12]}, bad commit {bad[:12]}, eu-1 now runs {applied[:12]} (applied by {by})")
        if not applied or not good.startswith(applied[:12]) or bad.startswith(applied[:12]):
            print("✗ drill failed: eu-1 does not run its last good revision", file=sys.stderr)
            return 1
        if by != "flux":
            print(f"✗ drill failed: eu-1 was applied by {by}, not by Flux", file=sys.stderr)
            return 1
        print(f"✔ eu-1 recovered at its last good commit in {recovery:.1f}s; the bad commit did not come back")

        self.say(f"6. rehearse: rebuild {DRILLED} again, as if lost, into a scratch cluster, against its objective")
        reports = self.workdir / "drill-reports"
        drilled = self.run("drill", DRILLED, "--report-dir", str(reports), "-o", "json", ok=(0, 1), capture=True)
        result = json.loads(drilled.stdout)
        self.run("drill", "history", DRILLED)
        self.run("push")  # the evidence (refs/notes/fleet-drills) travels with the repo
        self.run("status")
        print(f"drill of {DRILLED}: {result['result']} in {result['recovery_s'] or 0:.1f}s against "
              f"{result['objective'].get('rto')}; reports in {reports}")
        if result["result"] != "passed":
            print(f"✗ the rehearsal of {DRILLED} did not pass: {result.get('failure')}", file=sys.stderr)
            return 1
        print(f"(drill total {time.monotonic() - self.t0:.0f}s)")
        return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m drill", description=__doc__.split("\n\n")[0])
    ap.add_argument("--workdir", type=Path, help="where the drill's repo and fleet home go (default: a new dir)")
    ap.add_argument("--keep", action="store_true", help="keep the local clusters afterwards")
    args = ap.parse_args(argv)
    workdir = args.workdir or Path(os.environ.get("TMPDIR", "/tmp")) / f"fleet-drill-{int(time.time())}"
    if workdir.exists() and any(workdir.iterdir()):
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    print(f"fleet DR drill in {workdir}")
    return Drill(workdir.resolve()).main(args.keep)


if __name__ == "__main__":
    sys.exit(main())
