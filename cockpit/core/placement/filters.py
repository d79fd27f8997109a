"""Feasibility: which hosts may take a container, and for every other host, why not.

Like Nomad's feasibility checkers, each stage is small and named; a host is rejected by the
first stage that refuses it, and the funnel (hosts left after each stage) tells the user which
filter removed the last hosts.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from cockpit.core.constraints import Subject, parse_amount, subject
from cockpit.core.placement.request import Request
from cockpit.core.placement.table import MIB, MILLI, HostTable
from cockpit.domain import Constraint


@dataclass(frozen=True)
class Stage:
    name: str  # as shown in the funnel: "alive", "idc tucheng", "role == web"
    keep: np.ndarray  # bool per host
    why: Callable[[int], str]  # the reason host i was refused


def _column(t: HostTable, what: Subject) -> np.ndarray:
    """The values per host that a constraint compares: amounts in cores or GB, or text."""
    if what.kind == "amount":
        if what.name == "cores":
            return t.cpu_cap / MILLI
        return (t.mem_cap if what.name == "memory" else t.disk_cap) / MIB
    if what.kind == "field":
        return getattr(t, what.name)
    return t.label(what.name)


def _compare(col: np.ndarray, numeric: bool, c: Constraint) -> np.ndarray:
    if c.op == "in":
        choices = [v.strip() for v in c.value.split(",")]
        if numeric:
            return np.isin(col, [parse_amount(v) for v in choices])
        return np.isin(col, np.array(choices, dtype=object))
    if numeric:
        want = parse_amount(c.value)
        x = col
    elif c.op in ("==", "!="):
        eq = col == c.value
        return eq if c.op == "==" else ~eq
    else:  # ordering on a label: numeric where the label is a number, refused where not
        want = float(c.value)
        x = np.array([_to_float(v) for v in col], dtype=float)
    with np.errstate(invalid="ignore"):
        return {
            "==": x == want,
            "!=": x != want,
            ">=": x >= want,
            "<=": x <= want,
            ">": x > want,
            "<": x < want,
        }[c.op]


def _to_float(v) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return math.nan


def _fmt_num(what: Subject, v: float) -> str:
    if what.name == "cores":
        return f"{v:g} cores"
    return f"{v / 1024:g} TB" if v >= 1024 and v % 1024 == 0 else f"{v:g} GB"


def constraint_stage(t: HostTable, c: Constraint) -> Stage:
    what = subject(c)
    col = _column(t, what)
    numeric = what.kind == "amount"
    keep = _compare(col, numeric, c)

    def why(i: int) -> str:
        v = col[i]
        if numeric:
            return f"{c.key} {_fmt_num(what, float(v))} (needs {c})"
        if what.kind == "field":
            return f"{what.name}={v} (needs {c})"
        if v is None:
            return f"no label {what.name} (needs {c})"
        return f"label {what.name}={v} (needs {c})"

    return Stage(str(c), np.asarray(keep, dtype=bool), why)


def static_stages(t: HostTable, r: Request) -> list[Stage]:
    """Every stage whose answer does not change as containers are placed."""
    stages = [Stage("alive", t.usable.copy(), lambda i: "host is down" if not t.alive[i]
                    else f"host not ready to take containers (initialisation {t.status[i]})")]
    if r.idc is not None:
        stages.append(Stage(f"idc {r.idc}", t.idc == r.idc, lambda i: f"in idc {t.idc[i]}"))
    if r.pool is not None:
        stages.append(Stage(f"pool {r.pool}", t.pool == r.pool, lambda i: f"in pool {t.pool[i]}"))
    for c in r.constraints:
        stages.append(constraint_stage(t, c))
    for name in r.only_with:
        col = t.column(name)
        stages.append(
            Stage(f"only with {name}", t.counts[:, col] > 0, lambda i, name=name: f"runs no {name} container")
        )
    for name in r.never_with:
        col = t.column(name)
        stages.append(
            Stage(
                f"never with {name}",
                t.counts[:, col] == 0,
                lambda i, name=name, col=col: f"runs {t.counts[i, col]} {name} container(s)",
            )
        )
    if r.host_ports:
        blockers = [
            s for s, ports in t.host_ports.items() if s != r.service and set(ports) & set(r.host_ports)
        ]
        if blockers:
            cols = [t.column(s) for s in blockers]
            busy = t.counts[:, cols].sum(axis=1) > 0
            stages.append(
                Stage(
                    "host ports " + ",".join(map(str, r.host_ports)),
                    ~busy,
                    lambda i: "port taken by " + ", ".join(s for s, c in zip(blockers, cols) if t.counts[i, c] > 0),
                )
            )
    return stages


def per_host_limit(r: Request) -> int | None:
    """At most this many of the service per host: max_per_host, or 1 when it binds host ports."""
    limits = [x for x in (r.max_per_host, 1 if r.host_ports else None) if x is not None]
    return min(limits) if limits else None


def room(t: HostTable, r: Request, col: int) -> np.ndarray:
    """How many more containers of the request each host can take now (resources and per-host limit)."""
    big = np.iinfo(np.int64).max
    n = (t.cpu_cap - t.cpu_used) // r.cpu if r.cpu else np.full(len(t), big)
    n = np.minimum(n, (t.mem_cap - t.mem_used) // r.mem) if r.mem else n
    n = np.minimum(n, (t.disk_cap - t.disk_used) // r.disk) if r.disk else n
    limit = per_host_limit(r)
    if limit is not None:
        n = np.minimum(n, limit - t.counts[:, col].astype(np.int64))
    return np.maximum(n, 0)


def shortage(t: HostTable, r: Request, col: int, i: int) -> str:
    """Why host i cannot take one more container of the request."""
    limit = per_host_limit(r)
    if limit is not None and t.counts[i, col] >= limit:
        if r.host_ports and limit == 1:
            return f"port {','.join(map(str, r.host_ports))} in use by {r.service}"
        return f"{t.counts[i, col]} {r.service} already (max {limit} per host)"
    if r.mem and t.mem_cap[i] - t.mem_used[i] < r.mem:
        return f"mem {t.mem_used[i] / MIB:g}/{t.mem_cap[i] / MIB:g} GB"
    if r.cpu and t.cpu_cap[i] - t.cpu_used[i] < r.cpu:
        return f"cpu {t.cpu_used[i] / MILLI:g}/{t.cpu_cap[i] / MILLI:g} cores"
    return f"disk {t.disk_used[i] / MIB:g}/{t.disk_cap[i] / MIB:g} GB"


@dataclass
class Screening:
    """The result of the static stages: who is left, and who was refused by which stage."""

    stages: list[Stage]
    feasible: np.ndarray  # bool
    refused_by: np.ndarray  # stage index per host, -1 when it passed every stage
    funnel: list[tuple[str, int]]  # (stage name, hosts left after it)

    def reason(self, i: int) -> str | None:
        k = int(self.refused_by[i])
        return None if k < 0 else self.stages[k].why(i)


def screen(t: HostTable, r: Request) -> Screening:
    stages = static_stages(t, r)
    left = np.ones(len(t), dtype=bool)
    refused_by = np.full(len(t), -1, dtype=np.int32)
    funnel = [("all hosts", len(t))]
    for k, stage in enumerate(stages):
        out = left & ~stage.keep
        refused_by[out] = k
        left &= stage.keep
        funnel.append((stage.name, int(left.sum())))
    return Screening(stages, left, refused_by, funnel)
