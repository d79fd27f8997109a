"""The target-tracking arithmetic of Kubernetes' Horizontal Pod Autoscaler (autoscaling/v2,
pkg/controller/podautoscaler), so a `target` rule behaves as SREs who know the HPA expect:

1. desired = ceil(current x metric / target), unless metric / target is within `tolerance`
   (0.1) of 1, when nothing changes. Containers still starting count as using nothing, as the
   HPA counts pods not yet ready when it scales up: the sum of usage over the serving ones is
   divided by the target.
2. Stabilisation: the recommendation is the lowest of those within the scale-up window and the
   highest within the scale-down window (300 s by default), so a dip does not shed capacity.
3. Rate limits: a scale-up may reach at most, over the policies, the most of (the count at the
   start of each policy's period + its pods, or x (1 + percent)); a scale-down at least the
   least of (that count - pods, or x (1 - percent), truncated).
"""

from __future__ import annotations

import math

from cockpit.core.autoscale.memory import Memory
from cockpit.domain import AutoscaleRule


def raw_recommendation(running: int, total: int, cpu_pct: float, target_pct: float, tolerance: float) -> tuple[int, str]:
    """Step 1: (desired, the formula with its numbers)."""
    if running <= 0:
        return total, "no container serving yet: no metric, no change"
    usage = cpu_pct * running  # percent-containers used
    ratio = usage / (target_pct * total) if total else math.inf
    if abs(ratio - 1.0) <= tolerance:
        return total, f"{cpu_pct:.1f}% x {running} / ({target_pct:g}% x {total}) = {ratio:.3f}: within ±{tolerance:g}"
    desired = math.ceil(round(usage / target_pct, 9))  # round: 50.0000001 is 50, not 51
    return desired, f"ceil({running} x {cpu_pct:.1f}% / {target_pct:g}%) = {desired}"


def stabilise(mem: Memory, t: float, raw: int, total: int, up_window_s: float, down_window_s: float) -> int:
    """Step 2; records `raw` for the evaluations to come."""
    up_rec = down_rec = raw
    for rt, r in mem.recs:
        if rt > t - up_window_s:
            up_rec = min(up_rec, r)
        if rt > t - down_window_s:
            down_rec = max(down_rec, r)
    mem.recs.append((t, raw))
    out = total
    if out < up_rec:
        out = up_rec
    if out > down_rec:
        out = down_rec
    return out


def rate_limited(mem: Memory, t: float, wanted: int, total: int, rule: AutoscaleRule) -> int:
    """Step 3."""
    if wanted > total:
        limit = max(_up(p.kind, p.value, total - mem.added_since(t - p.period_s)) for p in rule.up)
        return min(wanted, limit)
    if wanted < total:
        limit = min(_down(p.kind, p.value, total + mem.removed_since(t - p.period_s)) for p in rule.down)
        return max(wanted, limit)
    return wanted


def _up(kind: str, value: int, start: int) -> int:
    return start + value if kind == "pods" else math.ceil(start * (1 + value / 100))


def _down(kind: str, value: int, start: int) -> int:
    return start - value if kind == "pods" else int(start * (1 - value / 100))
