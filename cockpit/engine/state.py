"""The engine's working copy of the platform: arrays built from the store, rebuilt when it changes."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cockpit.core.load import Layout
from cockpit.domain import Host, Service
from cockpit.store import records
from cockpit.store.models import ContainerRow, HostRow, ServiceRow


def layout_from(hosts: list[Host], services: list[Service], cont_host: list[int], cont_service: list[str]) -> Layout:
    idcs = sorted({h.idc for h in hosts})
    pools = sorted({h.pool for h in hosts})
    si = {s.name: i for i, s in enumerate(services)}
    ii = {n: i for i, n in enumerate(idcs)}
    pi = {n: i for i, n in enumerate(pools)}
    return Layout(
        host_idc=np.array([ii[h.idc] for h in hosts], dtype=np.int64),
        host_pool=np.array([pi[h.pool] for h in hosts], dtype=np.int64),
        host_cores=np.array([h.cores for h in hosts], dtype=float),
        host_mem=np.array([h.memory_gb for h in hosts], dtype=float),
        cont_host=np.array(cont_host, dtype=np.int64),
        cont_service=np.array([si[s] for s in cont_service], dtype=np.int64),
        svc_cpu=np.array([s.cpu for s in services], dtype=float),
        svc_cpk=np.array([s.traffic.cores_per_kqps for s in services], dtype=float),
        svc_mem=np.array([s.memory_gb for s in services], dtype=float),
        idcs=idcs,
        pools=pools,
    )


@dataclass
class PlatformState:
    hosts: list[Host]
    host_ids: np.ndarray
    alive: np.ndarray
    down_until: np.ndarray  # epoch s; nan while alive
    services: list[Service]
    layout: Layout

    @classmethod
    def load(cls) -> PlatformState:
        rows = list(HostRow.select().where(HostRow.released_t.is_null()).order_by(HostRow.id))
        hosts = [records.host(r) for r in rows]
        services = [records.service(r) for r in ServiceRow.select().order_by(ServiceRow.name)]
        index = {h.id: i for i, h in enumerate(hosts)}
        known = {s.name for s in services}
        pairs = [
            (index[host_id], svc)
            for host_id, svc in ContainerRow.select(ContainerRow.host, ContainerRow.service).tuples()
            if host_id in index and svc in known
        ]
        lay = layout_from(hosts, services, [p[0] for p in pairs], [p[1] for p in pairs])
        return cls(
            hosts=hosts,
            host_ids=np.array([h.id for h in hosts], dtype=np.int64),
            alive=np.array([r.alive for r in rows], dtype=bool),
            down_until=np.array([r.down_until_t if r.down_until_t is not None else np.nan for r in rows]),
            services=services,
            layout=lay,
        )
