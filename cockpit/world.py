"""Load and validate world files (YAML) into domain objects.

Every problem is reported, each with file, line, field and what was expected: first the shape
(world.schema.json), then what the schema cannot say (references between sections, one shared
pool, zones that belong to the cloud IDC, dependency cycles, dates in a sane range, counts
measured against the hosts the world has).
"""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any

from cockpit import yamlcheck
from cockpit.core.dependencies import CycleError, find_cycle
from cockpit.core.constraints import check_constraint, parse_constraint
from cockpit.domain import (
    AutoscaleRule,
    Charge,
    Cluster,
    Dependency,
    EcsSpec,
    Hardware,
    HostGroup,
    HotEvent,
    Idc,
    Image,
    Layer,
    Peak,
    PlacementRules,
    Pool,
    Registry,
    Service,
    Swap,
    Template,
    Traffic,
    TrafficCurve,
    World,
    Zone,
)
from cockpit.yamlcheck import Document, Problem, ProblemsError

SCHEMA_PATH = Path(__file__).with_name("world.schema.json")
DEMO_WORLD = Path(__file__).resolve().parent.parent / "data" / "demo-world.yaml"

# What the schema cannot say. The demo has 2,060 hosts and 6,794 containers; these leave room
# for far bigger platforms while keeping `check` (which places every container) to seconds.
MAX_HOSTS = 100_000
MAX_CONTAINERS = 1_000_000
YEARS = (2000, 2100)  # dates outside are typing mistakes, and year 1 overflows time arithmetic


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
        problems = sorted(_cross_check(doc), key=lambda p: p.line)
    if problems:
        raise WorldError(problems)
    return _build(doc)


# --- cross-references ----------------------------------------------------------------------


def _named(doc: Document, section: str, key: str = "name") -> dict[Any, int]:
    return {item[key]: i for i, item in enumerate(doc.data.get(section, []))}


def _cross_check(doc: Document) -> list[Problem]:
    d = doc.data
    out: list[Problem] = []

    def bad(path, message):
        out.append(doc.problem(path, message))

    def unique(section: str, key: str = "name", what: str = "name") -> None:
        seen: dict[Any, int] = {}
        for i, item in enumerate(d.get(section, [])):
            if item[key] in seen:
                bad((section, i, key), f"{what} {item[key]!r} is already used at {section}[{seen[item[key]]}]")
            else:
                seen[item[key]] = i

    for section in ("idcs", "hardware", "clusters", "host_groups", "layers", "services", "registries", "autoscaling"):
        unique(section)
    unique("templates", "sid", "sid")

    idcs = {i["name"]: i for i in d["idcs"]}
    hardware = _named(doc, "hardware")
    services = {s["name"]: s for s in d.get("services", [])}
    layers = _named(doc, "layers")
    images = {f"{im['name']}:{im['tag']}": i for i, im in enumerate(d.get("images", []))}

    pools: dict[str, tuple] = {}
    for ci, cluster in enumerate(d["clusters"]):
        for pi, pool in enumerate(cluster["pools"]):
            path = ("clusters", ci, "pools", pi, "name")
            if pool["name"] in pools:
                bad(path, f"pool {pool['name']!r} is already defined in cluster {pools[pool['name']][0]!r}")
            else:
                pools[pool["name"]] = (cluster["name"], pool.get("kind", "online"))
    shared = [name for name, (_, kind) in pools.items() if kind == "shared"]
    if len(shared) != 1:
        found = ", ".join(shared) if shared else "none"
        bad(("clusters",), f"expected exactly one pool with kind: shared, found {found}")

    for i, idc in enumerate(d["idcs"]):
        if idc["kind"] == "cloud":
            if "region" not in idc:
                bad(("idcs", i, "region"), "a cloud IDC needs a region")
            if not idc.get("zones"):
                bad(("idcs", i, "zones"), "a cloud IDC needs at least one zone")
        elif "zones" in idc or "region" in idc:
            bad(("idcs", i, "zones" if "zones" in idc else "region"), "only a cloud IDC has a region and zones")
        zone_names = [z["name"] for z in idc.get("zones", [])]
        for zi, z in enumerate(zone_names):
            if zone_names.index(z) != zi:
                bad(("idcs", i, "zones", zi, "name"), f"zone {z!r} is listed twice")
    zones_of = {name: {z["name"]: z for z in idc.get("zones", [])} for name, idc in idcs.items()}

    def ref(path, value, known, what):
        if value not in known:
            choices = ", ".join(sorted(map(str, known))) or "none defined"
            bad(path, f"no {what} named {value!r} (known: {choices})")
            return False
        return True

    for gi, g in enumerate(d["host_groups"]):
        p = ("host_groups", gi)
        idc_ok = ref(p + ("idc",), g["idc"], idcs, "IDC")
        ref(p + ("pool",), g["pool"], pools, "pool")
        ref(p + ("hardware",), g["hardware"], hardware, "hardware class")
        if g["source"] == "ecs":
            if idc_ok and idcs[g["idc"]]["kind"] != "cloud":
                bad(p + ("source",), f"ECS hosts must be in a cloud IDC; {g['idc']!r} is private")
            elif idc_ok:
                if "zone" not in g:
                    bad(p + ("zone",), "ECS hosts need a zone")
                else:
                    ref(p + ("zone",), g["zone"], zones_of[g["idc"]], f"zone in {g['idc']}")
        else:
            if "zone" in g:
                bad(p + ("zone",), "only ECS hosts have a zone")
            if idc_ok and idcs[g["idc"]]["kind"] == "cloud":
                bad(p + ("source",), f"hosts in cloud IDC {g['idc']!r} must have source: ecs")
        _check_charge(g["charge"], p + ("charge",), bad)

    for ii, im in enumerate(d.get("images", [])):
        for li, layer in enumerate(im["layers"]):
            ref(("images", ii, "layers", li), layer, layers, "layer")
    dup_images: dict[str, int] = {}
    for ii, im in enumerate(d.get("images", [])):
        r = f"{im['name']}:{im['tag']}"
        if r in dup_images:
            bad(("images", ii, "tag"), f"image {r} is already defined at images[{dup_images[r]}]")
        dup_images.setdefault(r, ii)

    for si, s in enumerate(d.get("services", [])):
        p = ("services", si)
        ref(p + ("pool",), s["pool"], pools, "pool")
        ref(p + ("image",), s["image"], images, "image")
        for idc_name in s.get("containers", {}):
            ref(p + ("containers", idc_name), idc_name, idcs, "IDC")
        placement = s.get("placement", {})
        for ci, text in enumerate(placement.get("constraints", [])):
            why = check_constraint(parse_constraint(text))
            if why:
                bad(p + ("placement", "constraints", ci), why)
        for key in ("only_with", "never_with"):
            for ni, name in enumerate(placement.get(key, [])):
                ref(p + ("placement", key, ni), name, services, "service")
                if name == s["name"] and key == "never_with":
                    bad(p + ("placement", key, ni), "a service cannot exclude itself; use max_per_host")

    registries = {r["name"] for r in d.get("registries", [])}
    for ri, r in enumerate(d.get("registries", [])):
        ref(("registries", ri, "idc"), r["idc"], idcs, "IDC")
        src = r.get("replicates_from")
        if src is not None:
            if src == r["name"]:
                bad(("registries", ri, "replicates_from"), "a registry cannot replicate from itself")
            else:
                ref(("registries", ri, "replicates_from"), src, registries, "registry")
        if r["role"] == "slave" and src is None:
            bad(("registries", ri, "replicates_from"), "a slave registry names the registry it replicates from")

    sids = _named(doc, "templates", "sid")
    for ti, t in enumerate(d.get("templates", [])):
        p = ("templates", ti)
        ref(p + ("service",), t["service"], services, "service")
        if "pool" in t:
            ref(p + ("pool",), t["pool"], pools, "pool")
        if "hardware" in t:
            ref(p + ("hardware",), t["hardware"], hardware, "hardware class")
        if "image" in t:
            ref(p + ("image",), t["image"], images, "image")
        for di, dep in enumerate(t.get("dependencies", [])):
            if dep["sid"] == t["sid"]:
                bad(p + ("dependencies", di, "sid"), "a template cannot depend on itself")
            else:
                ref(p + ("dependencies", di, "sid"), dep["sid"], sids, "template with sid")
        ecs = t.get("ecs")
        if ecs:
            ep = p + ("ecs",)
            ref(ep + ("hardware",), ecs["hardware"], hardware, "hardware class")
            if ref(ep + ("idc",), ecs["idc"], idcs, "IDC"):
                if idcs[ecs["idc"]]["kind"] != "cloud":
                    bad(ep + ("idc",), f"ECS hosts come from a cloud IDC; {ecs['idc']!r} is private")
                else:
                    zones = zones_of[ecs["idc"]]
                    sgs = {sg for z in zones.values() for sg in z["security_groups"]}
                    vsws = {v for z in zones.values() for v in z["vswitches"]}
                    for zi, z in enumerate(ecs["zones"]):
                        ref(ep + ("zones", zi), z, zones, f"zone in {ecs['idc']}")
                    for xi, sg in enumerate(ecs["security_groups"]):
                        ref(ep + ("security_groups", xi), sg, sgs, f"security group in {ecs['idc']}")
                    for xi, v in enumerate(ecs["vswitches"]):
                        ref(ep + ("vswitches", xi), v, vsws, f"vSwitch in {ecs['idc']}")
            if "charge" in ecs:
                _check_charge(ecs["charge"], ep + ("charge",), bad)
    if not out:
        graph = {t["sid"]: [dep["sid"] for dep in t.get("dependencies", [])] for t in d.get("templates", [])}
        cycle = find_cycle(graph)
        if cycle:
            ti = sids[cycle[0]]
            bad(("templates", ti, "dependencies"), str(CycleError(cycle)))

    for wi, w in enumerate(d.get("swaps", [])):
        p = ("swaps", wi)
        ref(p + ("idc",), w["idc"], idcs, "IDC")
        for key in ("online_pool", "offline_pool"):
            ref(p + (key,), w[key], pools, "pool")
        if w["online_pool"] == w["offline_pool"]:
            bad(p + ("offline_pool",), "online and offline pools must differ")
        if w["night_at"] == w["day_at"]:
            bad(p + ("day_at",), "day_at and night_at must differ")

    def scoring(path, weights: dict) -> None:
        if not weights:
            bad(path, "expected at least one scorer with a weight")
        for name in weights:
            if name.startswith("with:"):
                ref(path + (name,), name[5:], services, "service")

    if "custom_scoring" in d:
        scoring(("custom_scoring",), d["custom_scoring"])
    for ti, t in enumerate(d.get("templates", [])):
        if "scoring" in t:
            scoring(("templates", ti, "scoring"), t["scoring"])
        if t.get("strategy") == "custom" and "scoring" not in t and "custom_scoring" not in d:
            bad(("templates", ti, "strategy"), "custom needs scoring here or custom_scoring at the top")

    for ri, rule in enumerate(d.get("autoscaling", [])):
        p = ("autoscaling", ri)
        for si, name in enumerate(rule["services"]):
            ref(p + ("services", si), name, services, "service")
        if rule["kind"] == "cpu" and "threshold_pct" not in rule:
            bad(p + ("threshold_pct",), "a cpu rule needs threshold_pct")
        if rule["kind"] == "schedule" and "at" not in rule:
            bad(p + ("at",), "a schedule rule needs at: the local times of the peaks")

    for ei, ev in enumerate(d["traffic"].get("hot_events", [])):
        for si, name in enumerate(ev["services"]):
            ref(("traffic", "hot_events", ei, "services", si), name, services, "service")
        _parse_time(ev["start"], ("traffic", "hot_events", ei, "start"), bad)
    _parse_time(d["start"], ("start",), bad)
    _check_counts(d, set(idcs), set(pools), bad)
    return out


def _check_counts(d: dict, idcs: set[str], pools: set[str], bad) -> None:
    """Counts measured against the hosts the host groups make: totals bounded, swaps within their pool."""
    groups = d["host_groups"]
    hosts = sum(g["count"] for g in groups)
    if hosts > MAX_HOSTS:
        bad(("host_groups",), f"{hosts:,} hosts in all; a world may have at most {MAX_HOSTS:,}")
    containers = sum(n for s in d.get("services", []) for n in s.get("containers", {}).values())
    if containers > MAX_CONTAINERS:
        at_most = f"a world may have at most {MAX_CONTAINERS:,}"
        bad(("services",), f"{containers:,} containers at the start in all; {at_most}")
    for wi, w in enumerate(d.get("swaps", [])):
        if w["idc"] not in idcs or w["online_pool"] not in pools:
            continue  # already reported as an unknown name
        have = sum(g["count"] for g in groups if g["idc"] == w["idc"] and g["pool"] == w["online_pool"])
        if w["hosts"] > have:
            where = f"pool {w['online_pool']!r} in {w['idc']!r}"
            bad(("swaps", wi, "hosts"), f"{w['hosts']:,} hosts to swap, but the host groups put {have:,} in {where}")


def _check_charge(charge: dict, path, bad) -> None:
    if "expires" in charge:
        if charge["type"] not in ("monthly", "yearly"):
            bad(path + ("expires",), "only monthly and yearly hosts expire")
        else:
            try:
                day = date.fromisoformat(charge["expires"])
            except ValueError as e:
                bad(path + ("expires",), f"not a date: {e}")
            else:
                _check_year(day.year, path + ("expires",), bad)


def _parse_time(text: str, path, bad) -> datetime | None:
    try:
        t = datetime.fromisoformat(text.replace(" ", "T").replace("Z", "+00:00"))
    except ValueError as e:
        bad(path, f"not a timestamp: {e}")
        return None
    _check_year(t.year, path, bad)
    return t


def _check_year(year: int, path, bad) -> None:
    if not YEARS[0] <= year <= YEARS[1]:
        bad(path, f"the year {year} is out of range: expected {YEARS[0]} to {YEARS[1]}")


# --- building domain objects ---------------------------------------------------------------


def _ts(text: str) -> datetime:
    return datetime.fromisoformat(text.replace(" ", "T").replace("Z", "+00:00"))


def _offset(text: str) -> timedelta:
    sign = -1 if text[0] == "-" else 1
    hours, minutes = text[1:].split(":")
    return sign * timedelta(hours=int(hours), minutes=int(minutes))


def _charge(c: dict) -> Charge:
    exp = c.get("expires")
    return Charge(type=c["type"], price=float(c.get("price", 0.0)), expires=date.fromisoformat(exp) if exp else None)


def _rules(p: dict) -> PlacementRules:
    return PlacementRules(
        constraints=tuple(parse_constraint(c) for c in p.get("constraints", [])),
        only_with=tuple(p.get("only_with", [])),
        never_with=tuple(p.get("never_with", [])),
        max_per_host=p.get("max_per_host"),
    )


def _build(doc: Document) -> World:
    d = doc.data
    tr = d["traffic"]
    services = tuple(
        Service(
            name=s["name"],
            kind=s["kind"],
            image=s["image"],
            pool=s["pool"],
            cpu=float(s["cpu"]),
            memory_gb=float(s["memory_gb"]),
            disk_gb=float(s.get("disk_gb", 0)),
            ports=tuple(s.get("ports", [])),
            containers=dict(s.get("containers", {})),
            traffic=Traffic(float(s["traffic"]["peak_qps"]), float(s["traffic"]["cores_per_kqps"])),
            rules=_rules(s.get("placement", {})),
            host_ports=tuple(s.get("host_ports", [])),
        )
        for s in d.get("services", [])
    )
    by_service = {s.name: s for s in services}
    templates = []
    for t in d.get("templates", []):
        svc = by_service[t["service"]]
        ecs = t.get("ecs")
        templates.append(
            Template(
                sid=t["sid"],
                name=t["name"],
                service=t["service"],
                pool=t.get("pool", svc.pool),
                hardware=t.get("hardware", ""),
                image=t.get("image", svc.image),
                strategy=t.get("strategy", "spread"),
                scoring=tuple((k, float(v)) for k, v in t.get("scoring", {}).items()),
                dependencies=tuple(
                    Dependency(dep["sid"], float(dep["ratio"]), int(dep.get("elastic_count", 0)))
                    for dep in t.get("dependencies", [])
                ),
                ecs=EcsSpec(
                    idc=ecs["idc"],
                    instance_type=ecs["instance_type"],
                    image_id=ecs["image_id"],
                    hardware=ecs["hardware"],
                    charge=_charge(ecs.get("charge", {"type": "payg"})),
                    zones=tuple(ecs["zones"]),
                    security_groups=tuple(ecs["security_groups"]),
                    vswitches=tuple(ecs["vswitches"]),
                    labels={k: _label(v) for k, v in ecs.get("labels", {}).items()},
                )
                if ecs
                else None,
            )
        )
    return World(
        name=d["name"],
        seed=int(d.get("seed", 0)),
        start=_ts(d["start"]),
        source=doc.file,
        custom_scoring=tuple((k, float(v)) for k, v in d.get("custom_scoring", {}).items()),
        swaps=tuple(
            Swap(w["name"], w["idc"], w["online_pool"], w["offline_pool"], w["hosts"], w["night_at"], w["day_at"])
            for w in d.get("swaps", [])
        ),
        digest=doc.digest,
        lines=doc.lines,
        idcs=tuple(
            Idc(
                name=i["name"],
                kind=i["kind"],
                region=i.get("region"),
                zones=tuple(
                    Zone(z["name"], tuple(z["security_groups"]), tuple(z["vswitches"]), dict(z.get("stock", {})))
                    for z in i.get("zones", [])
                ),
            )
            for i in d["idcs"]
        ),
        hardware=tuple(Hardware(h["name"], h["cores"], h["memory_gb"], h["disk_gb"]) for h in d["hardware"]),
        clusters=tuple(Cluster(c["name"], tuple(p["name"] for p in c["pools"])) for c in d["clusters"]),
        pools=tuple(Pool(p["name"], c["name"], p.get("kind", "online")) for c in d["clusters"] for p in c["pools"]),
        host_groups=tuple(
            HostGroup(
                name=g["name"],
                idc=g["idc"],
                pool=g["pool"],
                count=g["count"],
                hardware=g["hardware"],
                source=g["source"],
                charge=_charge(g["charge"]),
                labels={k: _label(v) for k, v in g.get("labels", {}).items()},
                zone=g.get("zone"),
            )
            for g in d["host_groups"]
        ),
        services=services,
        layers=tuple(Layer(la["name"], float(la["size_mb"])) for la in d.get("layers", [])),
        images=tuple(Image(im["name"], im["tag"], tuple(im["layers"])) for im in d.get("images", [])),
        registries=tuple(
            Registry(r["name"], r["idc"], r["role"], r.get("instances", 1), r.get("replicates_from"))
            for r in d.get("registries", [])
        ),
        templates=tuple(templates),
        autoscaling=tuple(
            AutoscaleRule(
                name=r["name"],
                kind=r["kind"],
                services=tuple(r["services"]),
                threshold_pct=r.get("threshold_pct"),
                factor=float(r.get("factor", 2.0)),
                at=tuple(r.get("at", [])),
                lead_min=r.get("lead_min", 30),
                hold_min=r.get("hold_min", 60),
            )
            for r in d.get("autoscaling", [])
        ),
        traffic=TrafficCurve(
            utc_offset=_offset(tr["utc_offset"]),
            night_floor=float(tr.get("night_floor", 0.15)),
            day_level=float(tr.get("day_level", 0.45)),
            peaks=tuple(
                Peak(
                    at_hour=int(p["at"][:2]) + int(p["at"][3:]) / 60,
                    height=float(p.get("height", 1.0)),
                    width_h=float(p.get("width_h", 1.0)),
                )
                for p in tr["peaks"]
            ),
            hot_events=tuple(
                HotEvent(e["name"], _ts(e["start"]), e["duration_min"], float(e["factor"]), tuple(e["services"]))
                for e in tr.get("hot_events", [])
            ),
        ),
    )


def _label(v: Any) -> str:
    if isinstance(v, bool):
        return str(v).lower()
    return str(v)


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
