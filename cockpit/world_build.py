"""Build domain objects from a checked world document.

Runs only after the schema and the cross-checks passed, so every key the schema requires is
there and every reference resolves; defaults for optional keys are applied here.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

from cockpit.core.constraints import parse_constraint
from cockpit.domain import (
    DEFAULT_CONCURRENCY,
    DEFAULT_LINK_MBPS,
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
    LeadTimes,
    Peak,
    PlacementRules,
    Pool,
    PoolLimits,
    RatePolicy,
    Registry,
    Release,
    Scaling,
    ReplicationPolicy,
    RepoFilter,
    Service,
    Swap,
    Template,
    Traffic,
    TrafficCurve,
    World,
    Zone,
)
from cockpit.yamlcheck import Document


def build(doc: Document) -> World:
    """The world a checked document describes."""
    d = doc.data
    services = tuple(_service(s) for s in d.get("services", []))
    by_service = {s.name: s for s in services}
    registries = tuple(
        Registry(r["name"], r["idc"], r["role"], r.get("instances", 1), r.get("replicates_from"),
                 float(r.get("link_mbps", DEFAULT_LINK_MBPS)))
        for r in d.get("registries", [])
    )
    return World(
        name=d["name"],
        seed=int(d.get("seed", 0)),
        start=_ts(d["start"]),
        source=doc.file,
        custom_scoring=_weights(d.get("custom_scoring", {})),
        swaps=tuple(
            Swap(w["name"], w["idc"], w["online_pool"], w["offline_pool"], w["hosts"], w["night_at"], w["day_at"])
            for w in d.get("swaps", [])
        ),
        digest=doc.digest,
        lines=doc.lines,
        idcs=tuple(_idc(i) for i in d["idcs"]),
        hardware=tuple(Hardware(h["name"], h["cores"], h["memory_gb"], h["disk_gb"]) for h in d["hardware"]),
        clusters=tuple(Cluster(c["name"], tuple(p["name"] for p in c["pools"])) for c in d["clusters"]),
        pools=tuple(Pool(p["name"], c["name"], p.get("kind", "online")) for c in d["clusters"] for p in c["pools"]),
        host_groups=tuple(_host_group(g) for g in d["host_groups"]),
        services=services,
        layers=tuple(Layer(la["name"], float(la["size_mb"])) for la in d.get("layers", [])),
        images=tuple(Image(im["name"], im["tag"], tuple(im["layers"])) for im in d.get("images", [])),
        registries=registries,
        replication=_policies(d, registries),
        releases=tuple(
            Release(r["image"], r["registry"], _ts(r["at"]), r.get("variant", "")) for r in d.get("releases", [])
        ),
        templates=tuple(_template(t, by_service[t["service"]]) for t in d.get("templates", [])),
        autoscaling=tuple(autoscale_rule(r) for r in d.get("autoscaling", [])),
        scaling=_scaling(d.get("scaling", {})),
        traffic=_traffic_curve(d["traffic"]),
    )


# --- one builder per kind of object --------------------------------------------------------


def _service(s: dict) -> Service:
    return Service(
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


def _rules(p: dict) -> PlacementRules:
    return PlacementRules(
        constraints=tuple(parse_constraint(c) for c in p.get("constraints", [])),
        only_with=tuple(p.get("only_with", [])),
        never_with=tuple(p.get("never_with", [])),
        max_per_host=p.get("max_per_host"),
    )


def _template(t: dict, svc: Service) -> Template:
    """A template; pool and image default to its service's."""
    ecs = t.get("ecs")
    return Template(
        sid=t["sid"],
        name=t["name"],
        service=t["service"],
        pool=t.get("pool", svc.pool),
        hardware=t.get("hardware", ""),
        image=t.get("image", svc.image),
        strategy=t.get("strategy", "spread"),
        scoring=_weights(t.get("scoring", {})),
        dependencies=tuple(
            Dependency(dep["sid"], float(dep["ratio"]), int(dep.get("elastic_count", 0)))
            for dep in t.get("dependencies", [])
        ),
        ecs=_ecs_spec(ecs) if ecs else None,
    )


def _ecs_spec(ecs: dict) -> EcsSpec:
    return EcsSpec(
        idc=ecs["idc"],
        instance_type=ecs["instance_type"],
        image_id=ecs["image_id"],
        hardware=ecs["hardware"],
        charge=_charge(ecs.get("charge", {"type": "payg"})),
        zones=tuple(ecs["zones"]),
        security_groups=tuple(ecs["security_groups"]),
        vswitches=tuple(ecs["vswitches"]),
        labels=_labels(ecs),
    )


def _idc(i: dict) -> Idc:
    return Idc(
        name=i["name"],
        kind=i["kind"],
        region=i.get("region"),
        zones=tuple(
            Zone(z["name"], tuple(z["security_groups"]), tuple(z["vswitches"]), dict(z.get("stock", {})))
            for z in i.get("zones", [])
        ),
    )


def _host_group(g: dict) -> HostGroup:
    return HostGroup(
        name=g["name"],
        idc=g["idc"],
        pool=g["pool"],
        count=g["count"],
        hardware=g["hardware"],
        source=g["source"],
        charge=_charge(g["charge"]),
        labels=_labels(g),
        zone=g.get("zone"),
        addresses=tuple(g.get("addresses", ())),
    )


def _policies(d: dict, registries: tuple[Registry, ...]) -> tuple[ReplicationPolicy, ...]:
    """The world's policies; without a `replication` section, one per registry that others
    replicate from, to all of them, on every push (so a dual-master pair gets one each way)."""
    fed: dict[str, list[str]] = {}
    for r in registries:
        if r.replicates_from is not None:
            fed.setdefault(r.replicates_from, []).append(r.name)
    if "replication" not in d:
        return tuple(ReplicationPolicy(r.name, r.name, tuple(fed[r.name])) for r in registries if r.name in fed)
    return tuple(_policy(p, tuple(fed.get(p["source"], ()))) for p in d["replication"])


def _policy(p: dict, fed: tuple[str, ...]) -> ReplicationPolicy:
    """A policy; destinations default to the registries that replicate from its source."""
    bandwidth = p.get("bandwidth_mbps")
    return ReplicationPolicy(
        name=p["name"],
        source=p["source"],
        destinations=tuple(p.get("destinations", fed)),
        repositories=_filter(p.get("repositories", {})),
        tags=_filter(p.get("tags", {})),
        trigger=p.get("trigger", "event"),
        schedule=p.get("schedule"),
        override=p.get("override", False),
        deletions=p.get("deletions", False),
        bandwidth_mbps=float(bandwidth) if bandwidth is not None else None,
        concurrency=p.get("concurrency", DEFAULT_CONCURRENCY),
    )


def _filter(f: dict) -> RepoFilter:
    return RepoFilter(tuple(f.get("include", ["*"])), tuple(f.get("exclude", [])))


def autoscale_rule(r: dict) -> AutoscaleRule:
    """A rule from its checked mapping (the world file's, or one edited in the view)."""
    rates = {k: tuple(RatePolicy(p["kind"], int(p["value"]), int(p["period_s"])) for p in r[k]) for k in ("up", "down") if k in r}
    fields = {k: r[k] for k in ("threshold_pct", "at", "lead_min", "hold_min", "days", "min_count", "target_pct",
                                "tolerance", "up_window_s", "down_window_s", "horizon_min", "enabled") if k in r}
    if "at" in fields:
        fields["at"] = tuple(fields["at"])
    factor = r.get("factor", 2.0 if r["kind"] in ("cpu", "event") else None)
    return AutoscaleRule(name=r["name"], kind=r["kind"], services=tuple(r["services"]),
                         factor=float(factor) if factor is not None else None, **fields, **rates)


def _scaling(d: dict) -> Scaling:
    lead = LeadTimes(**d.get("lead_times", {}))
    pools = tuple(PoolLimits(**p) for p in d.get("pools", []))
    return Scaling(interval_s=d.get("interval_s", 60), pools=pools, lead_times=lead)


def _traffic_curve(tr: dict) -> TrafficCurve:
    return TrafficCurve(
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
    )


# --- values --------------------------------------------------------------------------------


def _ts(text: str) -> datetime:
    return datetime.fromisoformat(text.replace(" ", "T").replace("Z", "+00:00"))


def _offset(text: str) -> timedelta:
    sign = -1 if text[0] == "-" else 1
    hours, minutes = text[1:].split(":")
    return sign * timedelta(hours=int(hours), minutes=int(minutes))


def _charge(c: dict) -> Charge:
    exp = c.get("expires")
    return Charge(type=c["type"], price=float(c.get("price", 0.0)), expires=date.fromisoformat(exp) if exp else None)


def _weights(w: dict) -> tuple[tuple[str, float], ...]:
    return tuple((k, float(v)) for k, v in w.items())


def _labels(owner: dict) -> dict[str, str]:
    return {k: _label(v) for k, v in owner.get("labels", {}).items()}


def _label(v: Any) -> str:
    # YAML reads `ssd: true` as a bool; labels are text, so it keeps the spelling of the file
    if isinstance(v, bool):
        return str(v).lower()
    return str(v)
