"""Where a lab's hosts go: IDCs, pools and host groups, from the number of hosts and IDCs.

Hosts are shared out between the IDCs (`lab-a`, `lab-b`), the first IDCs taking one more when
they do not divide evenly. In an IDC of two hosts or more the last one is in the shared pool and
the others in the `web` pool; a lone host is in `web`. A host's name is its group's name and
its number in the group (`lab-a-web-0001`), as the world names hosts; it is also its hostname.
"""

from __future__ import annotations

from dataclasses import dataclass

IDC_NAMES = ("lab-a", "lab-b")
MAX_HOSTS = 16
WEB_POOL, SHARED_POOL = "web", "shared"


@dataclass(frozen=True)
class Group:
    name: str
    idc: str
    pool: str
    hosts: tuple[int, ...]  # lab host numbers (1-based), in order


def groups(hosts: int, idcs: int) -> list[Group]:
    if not 1 <= idcs <= len(IDC_NAMES):
        raise ValueError(f"idcs: expected 1 or 2, got {idcs}")
    if not 1 <= hosts <= MAX_HOSTS:
        raise ValueError(f"hosts: expected 1 to {MAX_HOSTS}, got {hosts}")
    if hosts < idcs:
        raise ValueError(f"hosts: {idcs} IDCs need at least {idcs} hosts (one each), got {hosts}")
    out, n = [], 1
    for i, idc in enumerate(IDC_NAMES[:idcs]):
        k = hosts // idcs + (1 if i < hosts % idcs else 0)
        numbers = tuple(range(n, n + k))
        n += k
        web, shared = (numbers[:-1], numbers[-1:]) if k >= 2 else (numbers, ())
        out.append(Group(f"{idc}-web", idc, WEB_POOL, web))
        if shared:
            out.append(Group(f"{idc}-shared", idc, SHARED_POOL, shared))
    return out


def host_names(gs: list[Group]) -> dict[int, tuple[str, str]]:
    """Lab host number -> (host name, IDC)."""
    return {n: (f"{g.name}-{i:04d}", g.idc) for g in gs for i, n in enumerate(g.hosts, 1)}
