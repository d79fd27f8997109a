"""Giving the hosts and containers of a store from before schema 4 their addresses and ports."""

from __future__ import annotations

from collections import defaultdict

import peewee as pw

from cockpit.core.addressing import container_name, host_addresses, publish
from cockpit.store.models import ContainerRow, HostRow, ServiceRow


def backfill_addresses(db: pw.Database) -> None:
    """Hosts of the world get addresses by the simulated platform's rule (hosts an ECS order made
    learn theirs from the cloud); every container a name, its host's address and its ports."""
    hosts = list(HostRow.select(HostRow.id, HostRow.idc, HostRow.order).order_by(HostRow.id).tuples())
    world_hosts = [(hid, idc) for hid, idc, order in hosts if order is None]
    address = dict(zip([hid for hid, _ in world_hosts], host_addresses(idc for _, idc in world_hosts)))
    for hid, addr in address.items():
        HostRow.update(address=addr).where(HostRow.id == hid).execute()
    services = {r.name: (r.ports or [], (r.spec or {}).get("host_ports", [])) for r in ServiceRow.select()}
    taken: dict[int, set[int]] = defaultdict(set)
    for cid, service, host, task in (ContainerRow.select(ContainerRow.id, ContainerRow.service, ContainerRow.host,
                                                         ContainerRow.task).order_by(ContainerRow.id).tuples()):
        ports, host_ports = services.get(service, ([], []))
        ContainerRow.update(
            name=container_name(service, task or 0, cid), state="running", address=address.get(host),
            ports=publish(ports, host_ports, taken[host]),
        ).where(ContainerRow.id == cid).execute()
