"""The engine's working copy of the platform: arrays built from the store, rebuilt when it changes."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cockpit.core.load import Layout
from cockpit.core.placement import HostTable
from cockpit.domain import Host, Service
from cockpit.store import records
from cockpit.store.errors import WAY_OUT, StoreError
from cockpit.store.models import ContainerRow, HostRow, ServiceRow


def layout_from(hosts: list[Host], services: list[Service], counts: np.ndarray) -> Layout:
    """`counts[h, s]`: containers of services[s] on hosts[h]."""
    idcs = sorted({h.idc for h in hosts})
    pools = sorted({h.pool for h in hosts})
    ii = {n: i for i, n in enumerate(idcs)}
    pi = {n: i for i, n in enumerate(pools)}
    return Layout(
        host_idc=np.array([ii[h.idc] for h in hosts], dtype=np.int64),
        host_pool=np.array([pi[h.pool] for h in hosts], dtype=np.int64),
        host_cores=np.array([h.cores for h in hosts], dtype=float),
        host_mem=np.array([h.memory_gb for h in hosts], dtype=float),
        counts=counts.astype(float),
        svc_cpu=np.array([s.cpu for s in services], dtype=float),
        svc_cpk=np.array([s.traffic.cores_per_kqps for s in services], dtype=float),
        svc_mem=np.array([s.memory_gb for s in services], dtype=float),
        idcs=idcs,
        pools=pools,
    )


def current_table() -> tuple[HostTable, dict[str, Service], list[dict]]:
    """The platform now as the planner sees it: hosts in service with their containers; the
    services by name; and the host rows as dicts (in the table's order). StoreError when the
    rows do not hold together (a container on a host that is gone, a number that is not one)."""
    services = {r.name: records.service(r) for r in ServiceRow.select().order_by(ServiceRow.name)}
    rows = list(HostRow.select().where(HostRow.released_t.is_null()).order_by(HostRow.id).dicts())
    pairs = [(h, s) for h, s in ContainerRow.select(ContainerRow.host, ContainerRow.service).tuples() if s in services]
    try:
        hosts = [records.host(r) for r in rows]
        return HostTable.build(hosts, services.values(), pairs), services, rows
    except (KeyError, ValueError, TypeError) as e:
        raise StoreError(f"store: the platform in it does not hold together ({type(e).__name__}: {e}); "
                         f"`cockpit store check` says where: the store is damaged; {WAY_OUT}") from None


@dataclass
class PlatformState:
    hosts: list[Host]
    host_ids: np.ndarray
    alive: np.ndarray
    ready: np.ndarray  # initialised: only hosts alive and ready count as capacity
    down_until: np.ndarray  # epoch s; nan while alive
    services: list[Service]
    layout: Layout

    @classmethod
    def load(cls) -> PlatformState:
        table, by_name, rows = current_table()
        hosts = [records.host(r) for r in rows]
        services = [by_name[n] for n in table.services]
        return cls(
            hosts=hosts,
            host_ids=table.ids,
            alive=np.array([r["alive"] for r in rows], dtype=bool),
            ready=np.array([r["status"] == "ready" for r in rows], dtype=bool),
            down_until=np.array([r["down_until_t"] if r["down_until_t"] is not None else np.nan for r in rows]),
            services=services,
            layout=layout_from(hosts, services, table.counts),
        )


def catalog(world, services: dict[str, Service] | None = None):
    """Services (read now unless given), templates, hardware: what a preview needs besides hosts."""
    from cockpit.core.whatif import Catalog
    from cockpit.store.models import TemplateRow

    return Catalog(
        services=services if services is not None else {r.name: records.service(r) for r in ServiceRow.select()},
        templates={r.sid: records.template(r) for r in TemplateRow.select()},
        hardware={h.name: h for h in world.hardware},
        shared_pool=world.shared_pool.name,
    )
