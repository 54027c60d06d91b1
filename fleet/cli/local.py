"""``fleet local``: real local control planes (kwokctl) for demos, drills and tests."""

from __future__ import annotations

import typer

from fleet.cli.commands import COMMANDS
from fleet.cli.common import OutputOpt, reporter
from fleet.local.clusters import LocalClusters
from fleet.output import OutputFormat, emit


def register(app: typer.Typer) -> None:
    local = typer.Typer(help=COMMANDS["local"][1], no_args_is_help=True)
    app.add_typer(local, name="local")

    backend = typer.Typer(
        help="A shared Pulumi backend on this machine: an S3 server on loopback.",
        no_args_is_help=True)
    local.add_typer(backend, name="backend")

    @backend.command("start")
    def backend_start() -> None:
        """Start the local S3 server (unless it runs) and print the shell's export lines, as ssh-agent does."""
        import shlex

        from fleet.local.backend import LocalBackend

        r = reporter()
        b = LocalBackend()
        was_running = b.running()
        if not was_running:
            r.step("starting the local S3 server")
        env = b.start()
        r.ok(f"local S3 server {'already ' if was_running else ''}running (pid {b.status().pid}); "
             f"data in {b.dir / 'data'}")
        for k, v in env.items():
            typer.echo(f"{k}={shlex.quote(v)}; export {k};")

    @backend.command("stop")
    def backend_stop() -> None:
        """Stop the local S3 server (its data stays)."""
        from fleet.local.backend import LocalBackend

        r = reporter()
        if LocalBackend().stop():
            r.ok("stopped the local S3 server")
        else:
            r.ok("the local S3 server is not running; nothing to stop")

    @backend.command("status")
    def backend_status(output: OutputFormat = OutputOpt) -> None:
        """Whether the local S3 server runs, its backend URL and where its data is."""
        from fleet.local.backend import LocalBackend

        st = LocalBackend().status()
        data = {"running": st.running, "pid": st.pid, "url": st.url or "", "data": str(st.data), "log": str(st.log)}
        emit(data, output, columns=["running", "pid", "url", "data"],
             rows=lambda d: [(d["running"], d["pid"] or "", d["url"], d["data"])])

    @local.command("create")
    def create(name: str, nodes: int = typer.Option(2, help="Fake nodes to add.")) -> None:
        """Create (or restart) a local cluster and print its kubeconfig path."""
        r = reporter()
        r.step(f'creating local cluster "{name}"')
        c = LocalClusters().create(name, nodes=nodes, warn=r.warn)
        r.ok(f'local cluster "{name}" is ready')
        typer.echo(str(c.kubeconfig))

    @local.command("delete")
    def delete(name: str) -> None:
        """Delete a local cluster and its data."""
        r = reporter()
        if LocalClusters().delete(name):
            r.ok(f'deleted local cluster "{name}"')
        else:
            r.ok(f'local cluster "{name}" does not exist; nothing to delete')

    @local.command("list")
    def list_(output: OutputFormat = OutputOpt) -> None:
        """List local clusters."""
        lc = LocalClusters()
        data = []
        for n in lc.list():
            procs = lc.operator.status(n)
            running = [p.name for p in procs if p.running]
            operator = "none" if not procs else (
                "running" if {"source-controller", "kustomize-controller"} <= set(running) else
                "stopped: " + ", ".join(p.name for p in procs if not p.running))
            data.append({"name": n, "kubeconfig": str(lc.kubeconfig_path(n)), "ready": lc.healthy(n),
                         "operator": operator, "git": lc.operator.git_url(n) or "",
                         "logs": str(lc.operator.dir(n) / "logs") if procs else "",
                         "processes": [{"name": p.name, "running": p.running, "pid": p.pid, "detail": p.detail}
                                       for p in procs]})
        emit(data, output, list_kind="LocalClusterList", columns=["name", "ready", "operator", "kubeconfig"],
             rows=lambda d: [(x["name"], x["ready"], x["operator"], x["kubeconfig"]) for x in d])
