"""From traffic and placement to what the dashboard shows, per IDC and per pool.

A service's traffic is shared by its running containers (containers on dead hosts serve
nothing, so the survivors take more); a container's CPU is its share of qps times the
service's cores per 1,000 qps, capped at its reservation.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from cockpit.domain import ScopeStats

ALL = "all"


@dataclass
class Layout:
    """The platform's shape as arrays; rebuilt only when hosts or containers change."""

    host_idc: np.ndarray  # (H,) index into idcs
    host_pool: np.ndarray  # (H,) index into pools
    host_cores: np.ndarray  # (H,) float
    host_mem: np.ndarray  # (H,) GB
    counts: np.ndarray  # (H, S) containers per host and service
    svc_cpu: np.ndarray  # (S,) reserved cores per container
    svc_cpk: np.ndarray  # (S,) cores per 1,000 qps
    svc_mem: np.ndarray  # (S,) reserved GB per container
    idcs: list[str]
    pools: list[str]

    @cached_property
    def scopes(self) -> list[str]:
        """Every scope with hosts: "all", each IDC, then each IDC/pool, in a stable order."""
        combos = sorted(set(zip(self.host_idc.tolist(), self.host_pool.tolist())))
        out = [ALL]
        for i, idc in enumerate(self.idcs):
            if any(c[0] == i for c in combos):
                out.append(idc)
                out.extend(f"{idc}/{self.pools[p]}" for (ii, p) in combos if ii == i)
        return out


def compute(layout: Layout, alive: np.ndarray, qps: np.ndarray) -> list[ScopeStats]:
    """Stats for every scope, given which hosts are alive and each service's qps."""
    L = layout
    up = L.counts * alive[:, None]  # (H, S) running containers
    n_up = up.sum(axis=0).astype(float)
    per_qps = np.divide(qps, n_up, out=np.zeros(len(n_up)), where=n_up > 0)
    per_used = np.minimum(per_qps * L.svc_cpk / 1000.0, L.svc_cpu)

    n_pool = len(L.pools)
    # One flat key per host: idc * n_pool + pool; scopes aggregate over these keys.
    hkey = L.host_idc * n_pool + L.host_pool
    K = len(L.idcs) * n_pool
    per_host = [
        alive.astype(float),  # hosts alive
        np.ones(len(alive)),  # hosts total
        up.sum(axis=1).astype(float),  # containers running
        up @ per_used,  # cores used
        up @ L.svc_cpu,  # cores reserved
        L.host_cores * alive,  # cores of live hosts
        up @ L.svc_mem,  # memory reserved
        L.host_mem * alive,  # memory of live hosts
        up @ per_qps,  # qps
    ]
    columns = np.stack([np.bincount(hkey, weights=w, minlength=K) for w in per_host])
    by_idc = columns.reshape(len(columns), len(L.idcs), n_pool)
    out = [_stats(ALL, columns.sum(axis=1))]
    for scope in L.scopes[1:]:
        if "/" in scope:
            idc, pool = scope.split("/", 1)
            col = by_idc[:, L.idcs.index(idc), L.pools.index(pool)]
        else:
            col = by_idc[:, L.idcs.index(scope), :].sum(axis=1)
        out.append(_stats(scope, col))
    return out


def _stats(scope: str, c: np.ndarray) -> ScopeStats:
    hosts_alive, hosts_total, containers, used, reserved, cores_alive, mem_res, mem_alive, q = c.tolist()
    alloc = max(reserved / cores_alive if cores_alive else 0.0, mem_res / mem_alive if mem_alive else 0.0)
    return ScopeStats(
        scope=scope,
        hosts_alive=int(round(hosts_alive)),
        hosts_total=int(round(hosts_total)),
        containers=int(round(containers)),
        cpu_pct=100.0 * used / reserved if reserved else 0.0,
        alloc_pct=100.0 * alloc,
        qps=q,
    )
