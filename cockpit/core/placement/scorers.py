"""Ranking feasible hosts. The host with the smallest key wins; ties go to the lower index.

Scores look at a host *after* the container lands (as Nomad's binpack does), so a big
container on a small host counts for what it really takes:

    u'(h) = ((cpu_used + cpu) / cpu_cap + (mem_used + mem) / mem_cap) / 2

spread: key = u' (least allocated first); binpack: key = -u' (most allocated first);
custom: key = -(sum of weight * scorer) over named scorers:
    spread      1 - u'
    binpack     u'
    random      a seeded per-host jitter in [0, 1)
    label:K=V   1 when the host's label K is V
    with:SVC    1 when the host already runs SVC
Each key exists twice: vectorised for the reference and the first ranking, and as a scalar for
the planner's inner loop. Both do the same float operations in the same order.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from cockpit.core.placement.request import Request
from cockpit.core.placement.table import HostTable

SCORER_HELP = "spread, binpack, random, label:KEY=VALUE, with:SERVICE"


def check_weights(weights: tuple[tuple[str, float], ...]) -> str | None:
    """Why a custom scorer list is unusable, or None."""
    if not weights:
        return f"custom needs at least one weighted scorer ({SCORER_HELP})"
    for name, w in weights:
        if name in ("spread", "binpack", "random"):
            continue
        if name.startswith("label:") and "=" in name[6:] and name[6:].split("=", 1)[0]:
            continue
        if name.startswith("with:") and name[5:]:
            continue
        return f"unknown scorer {name!r} (known: {SCORER_HELP})"
    return None


def parse_weights(text: str) -> tuple[tuple[str, float], ...]:
    """'spread=0.6, label:gen=new=0.3' -> (('spread', 0.6), ('label:gen=new', 0.3)); ValueError."""
    out = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        name, sep, weight = part.rpartition("=")
        try:
            w = float(weight)
        except ValueError:
            w = float("nan")
        if not sep or not name or w != w or abs(w) > 100:
            raise ValueError(f"{part!r} is not SCORER=WEIGHT (scorers: {SCORER_HELP}; weights -100..100)")
        out.append((name.strip(), w))
    why = check_weights(tuple(out))
    if why:
        raise ValueError(why)
    return tuple(out)


def jitter(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).random(n)


def vector_keys(t: HostTable, r: Request, jit: np.ndarray | None) -> np.ndarray:
    """The key of every host, from the table's current usage."""
    u = ((t.cpu_used + r.cpu) / t.cpu_cap + (t.mem_used + r.mem) / t.mem_cap) / 2
    if r.strategy == "spread":
        return u
    if r.strategy == "binpack":
        return -u
    acc = np.zeros(len(t))
    for name, w in r.weights:
        acc = acc + w * _vector_part(t, u, name, jit)
    return -acc


def _vector_part(t: HostTable, u: np.ndarray, name: str, jit) -> np.ndarray:
    if name == "spread":
        return 1 - u
    if name == "binpack":
        return u
    if name == "random":
        return jit
    if name.startswith("label:"):
        key, value = name[6:].split("=", 1)
        return (t.label(key) == value).astype(float)
    return (t.counts[:, t.column(name[5:])] > 0).astype(float)


ScalarKey = Callable[[int], float]


def scalar_key(
    t: HostTable, r: Request, cpu_used: list[int], mem_used: list[int], counts: np.ndarray, jit: np.ndarray | None
) -> ScalarKey:
    """key(h) over live Python lists of usage, for the custom strategy."""
    cc = t.cpu_cap.tolist()
    mc = t.mem_cap.tolist()
    c, m = r.cpu, r.mem
    parts: list[tuple[float, Callable[[int, float], float]]] = []
    jl = jit.tolist() if jit is not None else []
    for name, w in r.weights:
        if name == "spread":
            parts.append((w, lambda h, u: 1 - u))
        elif name == "binpack":
            parts.append((w, lambda h, u: u))
        elif name == "random":
            parts.append((w, lambda h, u: jl[h]))
        elif name.startswith("label:"):
            key, value = name[6:].split("=", 1)
            match = (t.label(key) == value).astype(float).tolist()
            parts.append((w, lambda h, u, match=match: match[h]))
        else:
            col = t.column(name[5:])
            parts.append((w, lambda h, u, col=col: 1.0 if counts[h, col] > 0 else 0.0))

    def key(h: int) -> float:
        u = ((cpu_used[h] + c) / cc[h] + (mem_used[h] + m) / mc[h]) / 2
        acc = 0.0
        for w, f in parts:
            acc = acc + w * f(h, u)
        return -acc

    return key
