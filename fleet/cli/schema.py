"""``fleet schema``: JSON Schema of ``fleet.yaml`` and ``clusters/<name>.yaml`` (for editors and CI)."""

from __future__ import annotations

import enum
import json
from typing import Any

import typer

from fleet.output import OutputFormat, emit


class Which(enum.StrEnum):
    cluster = "cluster"
    fleet = "fleet"
    all = "all"


def schemas(which: Which) -> dict[str, Any]:
    from fleet.registry.model import ClusterSpec, FleetSettings

    cluster = ClusterSpec.model_json_schema()
    cluster["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    cluster["title"] = "fleet cluster (clusters/<name>.yaml)"
    fleet = FleetSettings.model_json_schema()
    fleet["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    fleet["title"] = "fleet settings (fleet.yaml)"
    if which is Which.cluster:
        return cluster
    if which is Which.fleet:
        return fleet
    return {"fleet.yaml": fleet, "clusters/*.yaml": cluster}


def _fields(schema: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    rows = []
    required = set(schema.get("required", []))
    for name, prop in schema.get("properties", {}).items():
        kind = prop.get("type") or (
            "|".join(str(x.get("type", x.get("$ref", "?")).split("/")[-1]) for x in prop.get("anyOf", []))
            or prop.get("$ref", "").split("/")[-1]
        )
        if "enum" in prop:
            kind = "|".join(map(str, prop["enum"]))
        elif "const" in prop:
            kind = str(prop["const"])
        default = "required" if name in required else json.dumps(prop.get("default", None))
        rows.append((name, str(kind), default, str(prop.get("description", ""))))
    return rows


def register(app: typer.Typer) -> None:
    @app.command()
    def schema(
        which: Which = typer.Argument(Which.all, help="cluster, fleet, or all."),
        output: OutputFormat = typer.Option(OutputFormat.json, "-o", "--output", case_sensitive=False),
    ) -> None:
        data = schemas(which)
        if output is OutputFormat.table:
            parts = [data] if which is not Which.all else list(data.values())
            emit(
                parts,
                output,
                columns=["field", "type", "default", "description"],
                rows=lambda ps: [r for p in ps for r in _fields(p)],
            )
            return
        emit(data, output)
