"""Sequential greedy placement, fast.

Each container goes to the best feasible host given every container placed before it. Doing
that literally rescans every host per container. Here a host's key only changes when a
container lands on it, so hosts sit in a heap: pop the best, place on it for as long as it
stays best (binpack fills a host in one go), push it back. Random picks the k-th feasible host
from a Fenwick tree. Both make exactly the choices of `reference.place_one_by_one`.
"""

from __future__ import annotations

import heapq

import numpy as np

from cockpit.core.placement.filters import room, screen
from cockpit.core.placement.plan import Plan, finish
from cockpit.core.placement.request import Request
from cockpit.core.placement.scorers import jitter, scalar_key, vector_keys
from cockpit.core.placement.table import HostTable


def place(t: HostTable, r: Request) -> Plan:
    """Place the request on `t`, updating its usage; pass a copy to preview."""
    col = t.column(r.service)
    s = screen(t, r)
    if r.count <= 0:
        return finish(t, r, col, s, [])
    left = room(t, r, col)
    cand = np.flatnonzero(s.feasible & (left > 0))
    if r.strategy == "random":
        runs = _random(t, r, col, cand, left)
    else:
        runs = _heap(t, r, col, cand, left)
    return finish(t, r, col, s, runs)


def _heap(t: HostTable, r: Request, col: int, cand: np.ndarray, left_arr: np.ndarray) -> list[tuple[int, int]]:
    jit = jitter(len(t), r.seed) if r.strategy == "custom" else None
    keys = vector_keys(t, r, jit)[cand]
    heap = list(zip(keys.tolist(), cand.tolist()))
    heapq.heapify(heap)
    cpu_used = t.cpu_used.tolist()
    mem_used = t.mem_used.tolist()
    left = left_arr.tolist()
    cc = t.cpu_cap.tolist()
    mc = t.mem_cap.tolist()
    c, m = r.cpu, r.mem
    counts = t.counts
    runs: list[tuple[int, int]] = []
    remaining = r.count
    pop, push = heapq.heappop, heapq.heappush

    if r.strategy in ("spread", "binpack"):
        sign = 1.0 if r.strategy == "spread" else -1.0
        while remaining and heap:
            _, h = pop(heap)
            cu, mu, lh, n = cpu_used[h], mem_used[h], left[h], 0
            cch, mch = cc[h], mc[h]
            while True:
                cu += c
                mu += m
                n += 1
                lh -= 1
                remaining -= 1
                if not remaining or not lh:
                    break
                k = sign * (((cu + c) / cch + (mu + m) / mch) / 2)
                if heap:
                    top = heap[0]
                    if k > top[0] or (k == top[0] and h > top[1]):
                        push(heap, (k, h))
                        break
            cpu_used[h], mem_used[h], left[h] = cu, mu, lh
            runs.append((h, n))
    else:
        key = scalar_key(t, r, cpu_used, mem_used, counts, jit)
        while remaining and heap:
            _, h = pop(heap)
            n = 0
            while True:
                cpu_used[h] += c
                mem_used[h] += m
                counts[h, col] += 1
                n += 1
                left[h] -= 1
                remaining -= 1
                if not remaining or not left[h]:
                    break
                k = key(h)
                if heap and (k, h) > heap[0]:
                    push(heap, (k, h))
                    break
            counts[h, col] -= n  # applied once for all strategies below
            runs.append((h, n))
    _apply(t, r, col, runs, cpu_used, mem_used)
    return runs


def _random(t: HostTable, r: Request, col: int, cand: np.ndarray, left_arr: np.ndarray) -> list[tuple[int, int]]:
    u = np.random.default_rng(r.seed).random(r.count).tolist()
    n = len(t)
    flags = np.zeros(n, dtype=np.int64)
    flags[cand] = 1
    tree = _Fenwick(flags)
    left = left_arr.tolist()
    runs: list[tuple[int, int]] = []
    for i in range(r.count):
        total = tree.total
        if not total:
            break
        k = min(int(u[i] * total), total - 1)
        h = tree.kth(k)
        left[h] -= 1
        if not left[h]:
            tree.remove(h)
        if runs and runs[-1][0] == h:
            runs[-1] = (h, runs[-1][1] + 1)
        else:
            runs.append((h, 1))
    _apply(t, r, col, runs)
    return runs


def _apply(
    t: HostTable,
    r: Request,
    col: int,
    runs: list[tuple[int, int]],
    cpu_used: list[int] | None = None,
    mem_used: list[int] | None = None,
) -> None:
    if not runs:
        return
    hosts = np.array([h for h, _ in runs], dtype=np.int64)
    ns = np.array([n for _, n in runs], dtype=np.int64)
    add = np.bincount(hosts, weights=ns, minlength=len(t)).astype(np.int64)
    if cpu_used is not None and mem_used is not None:
        t.cpu_used = np.array(cpu_used, dtype=np.int64)
        t.mem_used = np.array(mem_used, dtype=np.int64)
    else:
        t.cpu_used = t.cpu_used + add * r.cpu
        t.mem_used = t.mem_used + add * r.mem
    t.disk_used = t.disk_used + add * r.disk
    t.counts[:, col] += add.astype(np.int32)


class _Fenwick:
    """Counts of feasible hosts by index: the k-th feasible host in O(log n)."""

    def __init__(self, flags: np.ndarray):
        self.n = len(flags)
        tree = [0] + flags.tolist()
        for i in range(1, self.n + 1):
            j = i + (i & -i)
            if j <= self.n:
                tree[j] += tree[i]
        self.tree = tree
        self.total = int(flags.sum())
        self.top = 1 << max(self.n.bit_length() - 1, 0) if self.n else 0

    def remove(self, i: int) -> None:
        self.total -= 1
        i += 1
        while i <= self.n:
            self.tree[i] -= 1
            i += i & -i

    def kth(self, k: int) -> int:
        """Index of the k-th (0-based) feasible host."""
        pos, step, tree = 0, self.top, self.tree
        while step:
            nxt = pos + step
            if nxt <= self.n and tree[nxt] <= k:
                pos = nxt
                k -= tree[nxt]
            step >>= 1
        return pos
