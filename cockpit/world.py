"""Load and validate world files (YAML) into domain objects.

Every problem is reported, each with file, line, field and what was expected: first the shape
(world.schema.json), then what the schema cannot say (world_checks: references between
sections, one shared pool, zones that belong to the cloud IDC, dependency cycles, dates in a
sane range, counts measured against the hosts the world has). A world with no problems is
built into domain objects by world_build.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

from cockpit import yamlcheck
from cockpit.domain import World
from cockpit.world_build import build
from cockpit.world_checks import MAX_CONTAINERS, MAX_HOSTS, YEARS, cross_check
from cockpit.yamlcheck import Document, Problem, ProblemsError

__all__ = [
    "DEMO_WORLD", "MAX_CONTAINERS", "MAX_HOSTS", "SCHEMA_PATH", "YEARS",
    "WorldError", "load", "loads", "schema", "summary",
]

SCHEMA_PATH = Path(__file__).with_name("world.schema.json")
DEMO_WORLD = Path(__file__).resolve().parent.parent / "data" / "demo-world.yaml"


class WorldError(ProblemsError):
    """The world file has problems; `problems` lists each one."""


@lru_cache(maxsize=1)
def schema() -> dict:
    return json.loads(SCHEMA_PATH.read_text())


def load(path: str | Path) -> World:
    doc, problems = yamlcheck.read(path)
    return _finish(doc, problems)


def loads(text: str, file: str = "<world>") -> World:
    doc, problems = yamlcheck.parse(text, file)
    return _finish(doc, problems)


def _finish(doc: Document, problems: list[Problem]) -> World:
    if not problems:
        problems = yamlcheck.validate(doc, schema())
    if not problems:
        problems = sorted(cross_check(doc), key=lambda p: p.line)
    if problems:
        raise WorldError(problems)
    return build(doc)


def summary(world: World) -> str:
    """What `cockpit check` prints for a good world."""
    hw = {h.name: 0 for h in world.hardware}
    for g in world.host_groups:
        hw[g.hardware] += g.count
    containers = sum(sum(s.containers.values()) for s in world.services)
    lines = [
        f"world {world.name}: OK ({world.source})",
        f"  IDCs        {len(world.idcs)}: "
        + ", ".join(f"{i.name} ({i.kind}{', ' + str(len(i.zones)) + ' zones' if i.zones else ''})" for i in world.idcs),
        f"  clusters    {len(world.clusters)}, pools {len(world.pools)} (shared: {world.shared_pool.name})",
        f"  hosts       {world.host_count} in {len(world.host_groups)} groups; "
        + ", ".join(f"{n} {c}" for n, c in hw.items() if c),
        f"  services    {len(world.services)}: {', '.join(s.name + ' (' + s.kind + ')' for s in world.services)}",
        f"  containers  {containers} at start",
        f"  images      {len(world.images)} sharing {len(world.layers)} layers; registries {len(world.registries)}",
        f"  templates   {len(world.templates)}; autoscaling rules {len(world.autoscaling)}",
    ]
    return "\n".join(lines)
