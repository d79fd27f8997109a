"""Expansion templates depend on each other by ratio: scaling feed by 10 scales user by 4.

`ceil(n * ratio) + elastic_count`, applied recursively. A cycle would scale forever, so it is
rejected with its members named.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from cockpit.domain import Template


class CycleError(ValueError):
    def __init__(self, cycle: list[int]):
        self.cycle = cycle
        path = " -> ".join(f"sid {s}" for s in cycle + cycle[:1])
        super().__init__(f"dependency cycle: {path}")


def find_cycle(graph: dict[int, list[int]]) -> list[int] | None:
    """The first cycle found in a sid -> [sid] graph, as a list of sids, or None."""
    WHITE, GREY, BLACK = 0, 1, 2
    colour = {n: WHITE for n in graph}
    stack: list[int] = []

    def visit(n: int) -> list[int] | None:
        colour[n] = GREY
        stack.append(n)
        for m in graph.get(n, []):
            if colour.get(m, BLACK) == GREY:
                return stack[stack.index(m) :]
            if colour.get(m) == WHITE:
                found = visit(m)
                if found:
                    return found
        stack.pop()
        colour[n] = BLACK
        return None

    for n in sorted(graph):
        if colour[n] == WHITE:
            found = visit(n)
            if found:
                return found
    return None


@dataclass(frozen=True)
class Demand:
    """How many containers one template asks for, and why."""

    sid: int
    service: str
    count: int
    via: tuple[int, ...]  # the sids that led here, the root first


def dependent_count(n: int, ratio: float, elastic_count: int) -> int:
    # Round the product first: 10 * 0.3 is 3.0000000000000004 in floating point, and must stay 3.
    return math.ceil(round(n * ratio, 9)) + elastic_count


def expand(templates: dict[int, Template], sid: int, count: int) -> list[Demand]:
    """The root demand and every dependent demand, depth first, in template order.

    A template reached along two paths is asked for twice, once per path, as the platform
    would: each dependency edge is its own ratio.
    """
    graph = {t.sid: [d.sid for d in t.dependencies] for t in templates.values()}
    cycle = find_cycle(graph)
    if cycle:
        raise CycleError(cycle)
    if sid not in templates:
        raise KeyError(sid)
    out: list[Demand] = []

    def walk(s: int, n: int, via: tuple[int, ...]) -> None:
        t = templates[s]
        out.append(Demand(s, t.service, n, via))
        for dep in t.dependencies:
            walk(dep.sid, dependent_count(n, dep.ratio, dep.elastic_count), via + (s,))

    walk(sid, count, ())
    return out
