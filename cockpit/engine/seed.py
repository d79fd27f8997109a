"""Seeding a new store from a world: pools, hosts, services, templates, placed containers, history.

A store belongs to one world. Opening it with another world, or with the same world edited
since, is refused with the way out named, rather than mixing two platforms in one database.
Only an empty store is seeded, in one transaction; a store that holds a platform but not the
name of its world is damaged, and is refused rather than seeded over.
"""

from __future__ import annotations

from collections import defaultdict

import peewee as pw

from cockpit.core.addressing import AddressError, container_name, host_addresses, publish
from cockpit.domain import World
from cockpit.store import records
from cockpit.store.db import all_or_nothing, bulk_insert, db_now, get_meta, reset_store, set_meta
from cockpit.store.errors import WAY_OUT, StoreError
from cockpit.store.models import (
    AuditRow,
    ClockRow,
    ContainerRow,
    EcsOrderRow,
    HostRow,
    LiveRow,
    ManifestRow,
    MetricRow,
    RegistryImageRow,
    PoolRow,
    ServiceRow,
    TaskRow,
    TemplateRow,
)

SAMPLE_S = 60.0  # platform seconds between history samples
HISTORY_H = 6.0  # how much history a new store starts with
BACKFILL_STEP_S = 300.0  # coarser for the starting history: a sparkline cell spans 20 minutes


class SeedError(StoreError):
    pass


def ensure_seeded(db: pw.Database, world: World, *, reset: bool = False) -> bool:
    """Seed an empty store; check a seeded one belongs to this world. True when it seeded.
    With `reset`, the store is emptied and seeded again, all in one transaction."""
    digest = world.digest
    seeded = get_meta("world_name")
    if reset:
        seed(db, world, digest, reset=True)
        return True
    if seeded is not None:
        if seeded != world.name:
            raise SeedError(
                f"this store holds world {seeded!r}, not {world.name!r}: open it with that world, "
                "or give another --db"
            )
        if get_meta("world_digest") != digest:
            raise SeedError(
                f"world {world.name!r} changed since this store was seeded from it ({world.source}): "
                "run with --reset to start the platform again from the file, or give another --db"
            )
        if get_meta("scale_rules") == "from_world":  # upgraded to schema 6: its rules are the world's
            from cockpit.store.models import ScaleRuleRow

            with all_or_nothing(db, "writing the world's autoscaling rules"):
                if not ScaleRuleRow.select().exists():  # rules someone already wrote are theirs
                    seed_rules(world)
                set_meta("scale_rules", "seeded")
        return False
    held = holdings()
    if held:
        raise SeedError(f"the store holds {held} but does not say which world they belong to "
                        f"(its world name is missing): the store is damaged; {WAY_OUT}")
    seed(db, world, digest)
    return True


def seed_rules(world: World) -> None:
    """The world's autoscaling rules as data, in its order (inside the caller's transaction)."""
    from cockpit.core.autoscale.rules import rule_spec
    from cockpit.store.models import ScaleRuleRow

    if world.autoscaling:
        ScaleRuleRow.insert_many([{"name": r.name, "spec": rule_spec(r), "position": i, "paused": not r.enabled}
                                  for i, r in enumerate(world.autoscaling)]).execute()


def holdings() -> str | None:
    """What a store holds that seeding would lose, in words; None when it is empty."""
    counts = [(HostRow, "hosts"), (EcsOrderRow, "ECS orders"), (TaskRow, "tasks"), (AuditRow, "audit entries"),
              (ContainerRow, "containers")]
    held = [f"{n:,} {what}" for model, what in counts if (n := model.select().count())]
    return ", ".join(held) or None


def unreleased_cloud_hosts() -> list[str]:
    """Cloud instances the store knows still run (and bill): a reset forgets them."""
    return [h.instance_id for h in HostRow.select(HostRow.instance_id).where(
        HostRow.instance_id.is_null(False) & HostRow.released_t.is_null() & HostRow.order.is_null(False))]


def seed(db: pw.Database, world: World, digest: str, *, reset: bool = False) -> None:
    # numpy and the placement engine load only when a store is new: start-up of a seeded store skips them.
    from cockpit.core.bootstrap import hosts_from_world, place_initial

    hosts = hosts_from_world(world)
    table, initial = place_initial(world, hosts)
    short = [i for i in initial if i.plan.unplaced]
    if short:
        raise SeedError(
            "; ".join(f"services {i.service}: containers {i.idc}: {i.plan.why_unplaced()}" for i in short)
        )
    try:
        _write(db, world, digest, hosts, table, initial, reset)
    except AddressError as e:
        raise SeedError(f"seeding the store: {e}") from None


def _write(db: pw.Database, world: World, digest: str, hosts, table, initial, reset: bool) -> None:
    start = world.start.timestamp()
    groups = {g.name: g for g in world.host_groups}
    from cockpit.core.bootstrap import expiry, instance_id

    with all_or_nothing(db, "seeding the store"):
        if reset:
            reset_store(db)
        PoolRow.insert_many([{"name": p.name, "cluster": p.cluster, "kind": p.kind} for p in world.pools]).execute()
        ServiceRow.insert_many([records.service_row(s) for s in world.services]).execute()
        if world.templates:
            TemplateRow.insert_many([records.template_row(t) for t in world.templates]).execute()
        seed_rules(world)
        addresses = world_addresses(world, hosts)
        rows = [
            {
                "id": h.id,
                "address": addr,
                "name": h.name,
                "idc": h.idc,
                "pool": h.pool,
                "group": h.group,
                "hardware": h.hardware,
                "cores": h.cores,
                "memory_gb": h.memory_gb,
                "disk_gb": h.disk_gb,
                "labels": h.labels,
                "source": h.source,
                "zone": h.zone,
                "charge_type": h.charge_type,
                "price": h.price,
                "expires_t": expiry(world, groups[h.group]),
                "created_t": start,
                "instance_id": instance_id(world.seed, h.name) if h.source == "ecs" else None,
            }
            for h, addr in zip(hosts, addresses)
        ]
        bulk_insert(HostRow, rows)
        bulk_insert(ContainerRow, _first_containers(world, table, initial, addresses, start))
        ClockRow.insert(id=1, t=start, speed=1.0, paused=False, tick=0, real_t=db_now(db)).execute()
        _backfill(world, hosts, table.counts, start)
        _registry_contents(world, start)
        set_meta("world_name", world.name)
        set_meta("world_digest", digest)
        set_meta("platform_version", "1")


def world_addresses(world: World, hosts) -> list[str]:
    """Each host's address: the world's own where its group names them (a real platform, the
    lab), else one made up in its IDC's range."""
    made = host_addresses(h.idc for h in hosts)
    given = {g.name: g.addresses for g in world.host_groups if g.addresses}
    seen: dict[str, int] = {}
    out = []
    for h, addr in zip(hosts, made):
        if h.group in given:
            k = seen[h.group] = seen.get(h.group, -1) + 1
            addr = given[h.group][k]
        out.append(addr)
    return out


def _first_containers(world: World, table, initial, addresses: list[str], start: float) -> list[dict]:
    """The world's first containers, running, each with its name, address and published ports."""
    svc = {s.name: s for s in world.services}
    taken: dict[int, set[int]] = defaultdict(set)
    out = []
    for init in initial:
        s = svc[init.service]
        for h, n in init.plan.per_host().items():
            for _ in range(n):
                out.append({"service": init.service, "host": int(table.ids[h]), "idc": init.idc, "created_t": start,
                            "name": container_name(init.service, 0, len(out) + 1), "state": "running",
                            "address": addresses[h], "ports": publish(s.ports, s.host_ports, taken[h])})
    return out


def _registry_contents(world: World, start: float) -> None:
    """On the simulated platform every registry starts with every image of the world, in sync,
    but those its releases push later. (Real registries say what they hold when first asked.)"""
    from cockpit.engine.registries import manifest_row, world_manifest

    later = {r.image for r in world.releases}
    manifests, rows = [], []
    for image in world.images:
        if image.ref in later:
            continue
        m = world_manifest(world, image.ref)
        manifests.append(manifest_row(m))
        rows += [{"registry": r.name, "repo": image.name, "tag": image.tag, "digest": m.digest, "since_t": start,
                  "seen_real": start} for r in world.registries]
    bulk_insert(ManifestRow, manifests)
    bulk_insert(RegistryImageRow, rows)


def _backfill(world: World, hosts, counts, start: float) -> None:
    """The hours before the clock starts, so the sparklines have a past from the first second."""
    import numpy as np

    from cockpit.core import load, traffic
    from cockpit.core.bootstrap import history_times
    from cockpit.engine.state import layout_from

    services = list(world.services)
    lay = layout_from(hosts, services, counts)
    alive = np.ones(len(hosts), dtype=bool)
    times = history_times(start, HISTORY_H, BACKFILL_STEP_S) + [start]
    qps = traffic.service_qps(world.traffic, services, np.array(times), world.seed)
    rows = []
    for k, t in enumerate(times):
        for s in load.compute(lay, alive, qps[:, k]):
            rows.append(metric_row(s, t))
    bulk_insert(MetricRow, rows)
    # The last sample is the platform now: the dashboard has numbers before the engine's first tick.
    bulk_insert(LiveRow, [r for r in rows if r["t"] == start])


def metric_row(s, t: float) -> dict:
    return {
        "scope": s.scope,
        "t": t,
        "hosts_alive": s.hosts_alive,
        "hosts_total": s.hosts_total,
        "containers": s.containers,
        "cpu_pct": s.cpu_pct,
        "alloc_pct": s.alloc_pct,
        "qps": s.qps,
    }
