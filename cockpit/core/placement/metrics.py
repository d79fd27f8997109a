"""What a plan does to the hosts it could use: utilisation before and after, balance,
fragmentation, and how many eggs end up in one basket.

Utilisation of a host is the tighter of its CPU and memory shares reserved: the dimension that
runs out first is the one that matters (the dashboard's "Alloc" is the same figure).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cockpit.core.placement.filters import per_host_limit
from cockpit.core.placement.plan import Plan
from cockpit.core.placement.request import Request
from cockpit.core.placement.table import MIB, MILLI, HostTable


def utilisation(t: HostTable) -> np.ndarray:
    return np.maximum(t.cpu_used / t.cpu_cap, t.mem_used / t.mem_cap)


def scope_mask(t: HostTable, r: Request) -> np.ndarray:
    """The hosts a request could use at all: alive and initialised, in its IDC and pool."""
    m = t.usable.copy()
    if r.idc is not None:
        m &= t.idc == r.idc
    if r.pool is not None:
        m &= t.pool == r.pool
    return m


@dataclass(frozen=True)
class PlanMetrics:
    requested: int
    placed: int
    unplaced: int
    hosts_touched: int
    scope_hosts: int
    util_mean_before: float
    util_mean_after: float
    imbalance_std_before: float
    imbalance_std_after: float
    imbalance_range_before: float  # max minus min utilisation
    imbalance_range_after: float
    stranded_cores: float  # free CPU on hosts whose memory cannot take another such container
    stranded_memory_gb: float  # free memory on hosts whose CPU cannot take another
    largest_fit: int  # the most containers of this shape that still fit on one host
    largest_fit_host: str | None
    blast_radius: int  # most containers of this service on one host, after
    blast_host: str | None

    def as_json(self) -> dict:
        out = dict(self.__dict__)
        for k, v in out.items():
            if isinstance(v, float):
                out[k] = round(v, 4)
        return out


def measure(before: HostTable, after: HostTable, plan: Plan) -> PlanMetrics:
    r = plan.request
    scope = scope_mask(before, r)
    idx = np.flatnonzero(scope)
    ub = utilisation(before)[idx]
    ua = utilisation(after)[idx]
    col = after.column(r.service)

    free_cpu = (after.cpu_cap - after.cpu_used)[idx]
    free_mem = (after.mem_cap - after.mem_used)[idx]
    cpu_short = free_cpu < r.cpu if r.cpu else np.zeros(len(idx), dtype=bool)
    mem_short = free_mem < r.mem if r.mem else np.zeros(len(idx), dtype=bool)
    stranded_cpu = free_cpu[mem_short & ~cpu_short].sum() / MILLI
    stranded_mem = free_mem[cpu_short & ~mem_short].sum() / MIB

    fit = np.full(len(idx), np.iinfo(np.int64).max)
    if r.cpu:
        fit = np.minimum(fit, free_cpu // r.cpu)
    if r.mem:
        fit = np.minimum(fit, free_mem // r.mem)
    limit = per_host_limit(r)
    if limit is not None:
        fit = np.minimum(fit, np.maximum(limit - after.counts[idx, col].astype(np.int64), 0))
    fit = np.maximum(fit, 0)

    counts = after.counts[:, col]
    blast = int(counts.max()) if len(counts) else 0
    return PlanMetrics(
        requested=r.count,
        placed=plan.placed,
        unplaced=plan.unplaced,
        hosts_touched=len(plan.per_host()),
        scope_hosts=len(idx),
        util_mean_before=_mean(ub),
        util_mean_after=_mean(ua),
        imbalance_std_before=float(ub.std()) if len(ub) else 0.0,
        imbalance_std_after=float(ua.std()) if len(ua) else 0.0,
        imbalance_range_before=float(ub.max() - ub.min()) if len(ub) else 0.0,
        imbalance_range_after=float(ua.max() - ua.min()) if len(ua) else 0.0,
        stranded_cores=float(stranded_cpu),
        stranded_memory_gb=float(stranded_mem),
        largest_fit=int(fit.max()) if len(fit) else 0,
        largest_fit_host=after.names[int(idx[np.argmax(fit)])] if len(fit) and fit.max() > 0 else None,
        blast_radius=blast,
        blast_host=after.names[int(np.argmax(counts))] if blast else None,
    )


def _mean(x: np.ndarray) -> float:
    return float(x.mean()) if len(x) else 0.0
