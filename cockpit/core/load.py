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
    """The platform's shape as index arrays; rebuilt only when hosts or containers change."""

    host_idc: np.ndarray  # (H,) index into idcs
    host_pool: np.ndarray  # (H,) index into pools
    host_cores: np.ndarray  # (H,) float
    host_mem: np.ndarray  # (H,) GB
    cont_host: np.ndarray  # (C,) host index
    cont_service: np.ndarray  # (C,) service index
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
    S = len(L.svc_cpu)
    up = alive[L.cont_host] if len(L.cont_host) else np.zeros(0, dtype=bool)
    n_up = np.bincount(L.cont_service[up], minlength=S).astype(float)
    per_qps = np.divide(qps, n_up, out=np.zeros(S), where=n_up > 0)
    per_used = np.minimum(per_qps * L.svc_cpk / 1000.0, L.svc_cpu)
    c_qps = per_qps[L.cont_service] * up
    c_used = per_used[L.cont_service] * up
    c_res = L.svc_cpu[L.cont_service] * up
    c_mem = L.svc_mem[L.cont_service] * up

    n_idc, n_pool = len(L.idcs), len(L.pools)
    # One flat key per host: idc * n_pool + pool; scopes aggregate over these keys.
    hkey = L.host_idc * n_pool + L.host_pool
    K = n_idc * n_pool
    ckey = hkey[L.cont_host] if len(L.cont_host) else np.zeros(0, dtype=np.int64)

    def per_key(weights, keys):
        return np.bincount(keys, weights=weights, minlength=K) if len(keys) else np.zeros(K)

    hosts_total = np.bincount(hkey, minlength=K).astype(float)
    hosts_alive = per_key(alive.astype(float), hkey)
    cores_alive = per_key(L.host_cores * alive, hkey)
    mem_alive = per_key(L.host_mem * alive, hkey)
    containers = per_key(up.astype(float), ckey)
    used = per_key(c_used, ckey)
    reserved = per_key(c_res, ckey)
    mem_reserved = per_key(c_mem, ckey)
    q = per_key(c_qps, ckey)
    columns = np.stack([hosts_alive, hosts_total, containers, used, reserved, cores_alive, mem_reserved, mem_alive, q])

    by_idc = columns.reshape(len(columns), n_idc, n_pool)
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
