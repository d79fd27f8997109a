"""Where hosts and containers answer on the simulated platform: addresses and published ports.

Every IDC of a world gets a /16 of 10.0.0.0/8 (in name order) and its hosts take addresses in
it in order; a container publishes each of its service's ports on a free host port from
PORT_BASE up, and a service that binds host ports takes them as they are. The simulated
container runtime, the seeding of a new store and the upgrade of an old one all use these rules,
so a container keeps the address and ports it was given.
"""

from __future__ import annotations

from collections.abc import Iterable

PORT_BASE = 31000
PORT_LAST = 60999
HOSTS_PER_IDC = 250 * 256


class AddressError(ValueError):
    """No address or port is left."""


def host_addresses(idcs: Iterable[str]) -> list[str]:
    """An address for each host, given each host's IDC in order."""
    names = list(idcs)
    index = {n: k + 1 for k, n in enumerate(sorted(set(names)))}
    if len(index) > 250:
        raise AddressError(f"{len(index)} IDCs: at most 250 have addresses")
    seen: dict[str, int] = {}
    out = []
    for n in names:
        k = seen.get(n, 0)
        if k >= HOSTS_PER_IDC:
            raise AddressError(f"IDC {n} has more than {HOSTS_PER_IDC} hosts")
        seen[n] = k + 1
        out.append(f"10.{index[n]}.{k // 250}.{k % 250 + 1}")
    return out


def container_name(service: str, task: int, k: int) -> str:
    """Unique on the platform: the service, the task that made it (0 for a world's first
    containers) and its number in that task. Starting it twice starts it once."""
    return f"{service}-{task}-{k}"


def publish(ports: Iterable[int], host_ports: Iterable[int], taken: set[int]) -> list[list[int]]:
    """[[container port, host port], ...] for one container; `taken` (the host's ports in use)
    gains the ones given out."""
    out = []
    for p in host_ports:
        out.append([int(p), int(p)])
        taken.add(int(p))
    fixed = {int(p) for p in host_ports}
    nxt = PORT_BASE
    for p in ports:
        if int(p) in fixed:
            continue
        while nxt in taken:
            nxt += 1
        if nxt > PORT_LAST:
            raise AddressError(f"no free host port from {PORT_BASE} to {PORT_LAST}")
        out.append([int(p), nxt])
        taken.add(nxt)
    return out


def ports_short(counts, services) -> tuple[int, int] | None:
    """(host index, ports it would need) for the first host whose containers would publish more
    ports than PORT_BASE..PORT_LAST hold, or None. `counts[h][s]`: containers of services[s]."""
    per = [sum(1 for p in s.ports if p not in set(s.host_ports)) for s in services]
    room = PORT_LAST - PORT_BASE + 1
    for h, row in enumerate(counts):
        need = sum(int(n) * k for n, k in zip(row, per) if n)
        if need > room:
            return h, need
    return None
