"""``fleet push`` / ``fleet pull``: the branch, last-good refs and audit notes, to and from the remote."""

from __future__ import annotations

from pathlib import Path

import typer

from fleet.cli.common import RepoOpt, repo_path, reporter

RemoteOpt = typer.Option(None, "--remote", help="The git remote (default: git.remote in fleet.yaml).")


def register(app: typer.Typer) -> None:
    @app.command()
    def push(remote: str | None = RemoteOpt, repo: Path | None = RepoOpt) -> None:
        from fleet.sync import push as push_

        r = reporter()
        result = push_(repo_path(repo), remote)
        if result.up_to_date:
            r.ok(f'"{result.remote}" is up to date')
        else:
            r.ok(f'pushed to "{result.remote}": {", ".join(result.updated)}')

    @app.command()
    def pull(remote: str | None = RemoteOpt, repo: Path | None = RepoOpt) -> None:
        from fleet.sync import pull as pull_

        r = reporter()
        result = pull_(repo_path(repo), remote)
        for c in result.changes:
            was = c.old[:12] if c.old else "none"
            r.ok(f"{c.ref}: {was} -> {c.new[:12] if c.new else 'deleted'}")
        for name in result.kept_local:
            r.warn(f'kept the local last good of "{name}": its record is newer than the remote\'s')
        from fleet.sync import refused_good

        for cluster, sha, why in refused_good(repo_path(repo)):  # a remote can hold any ref: say so now
            r.warn(f'the last good of "{cluster}" ({sha[:12]}) would be refused by the signature policy: {why}')
        if not result.changes and not result.notes_merged:
            r.ok(f'up to date with "{result.remote}"')
        elif result.notes_merged:
            r.ok(f'merged audit notes from "{result.remote}"')
