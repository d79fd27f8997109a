"""The engine's working copy of the platform: arrays built from the store, rebuilt when it changes."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import peewee as pw

from cockpit.core.load import Layout
from cockpit.core.placement import HostTable
from cockpit.domain import Host, Service
from cockpit.store import records
from cockpit.store.errors import WAY_OUT, StoreError
from cockpit.store.models import ContainerRow, HostRow, JSONField, ServiceRow


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
    rows do not hold together (a container on a host that is gone, a number that is not one).

    Read from the cursor as it is, with containers counted by the database: the engine reads it
    for every scale task and preview, inside its transactions, and 200,000 containers read one
    by one took most of a second (model objects, then a pair each)."""
    table, services, rows, _ = _read_table()
    return table, services, rows


def _read_table() -> tuple[HostTable, dict[str, Service], list[dict], list[Host]]:
    """current_table, and the hosts it was built from."""
    services = {r.name: records.service(r) for r in ServiceRow.select().order_by(ServiceRow.name)}
    try:
        rows = host_rows()
        counted = [(h, s, n) for h, s, n in _container_counts() if s in services]
        hosts = [records.host(r) for r in rows]
        return HostTable.build(hosts, services.values(), counted=counted), services, rows, hosts
    except (KeyError, ValueError, TypeError) as e:
        raise StoreError(f"store: the platform in it does not hold together ({type(e).__name__}: {e}); "
                         f"`cockpit store check` says where: the store is damaged; {WAY_OUT}") from None


def host_rows() -> list[dict]:
    """Every host in service as a dict of its fields (as `HostRow.select().dicts()` gives them),
    oldest first. Each distinct label set is parsed once (each row gets its own copy)."""
    fields = list(HostRow._meta.sorted_fields)
    q = HostRow.select(*fields).where(HostRow.released_t.is_null()).order_by(HostRow.id)
    names = [f.name for f in fields]
    convert = [(k, f) for k, f in enumerate(fields) if isinstance(f, (pw.BooleanField, JSONField))]
    parsed: dict[str, object] = {}
    out = []
    for raw in HostRow._meta.database.execute(q).fetchall():
        values = list(raw)
        for k, f in convert:
            v = values[k]
            if v is None:
                continue
            if isinstance(f, JSONField):
                if v not in parsed:
                    parsed[v] = f.python_value(v)  # StoreError for text that is not JSON
                got = parsed[v]
                values[k] = dict(got) if isinstance(got, dict) else got
            else:
                values[k] = bool(v)
        out.append(dict(zip(names, values)))
    return out


def _container_counts() -> list[tuple[int, str, int]]:
    """(host id, service, containers) for every host and service with containers."""
    q = (ContainerRow.select(ContainerRow.host, ContainerRow.service, pw.fn.COUNT(ContainerRow.id))
         .group_by(ContainerRow.host, ContainerRow.service))
    return ContainerRow._meta.database.execute(q).fetchall()


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
        table, by_name, rows, hosts = _read_table()
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
