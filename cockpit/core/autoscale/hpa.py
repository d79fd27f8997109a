"""The target-tracking arithmetic of Kubernetes' Horizontal Pod Autoscaler (autoscaling/v2,
pkg/controller/podautoscaler), so a `target` rule behaves as SREs who know the HPA expect:

1. desired = ceil(serving x metric / target), unless metric / target is within `tolerance`
   (0.1) of 1, when nothing changes. On a scale-up while containers are still starting, those
   count as using nothing (as the HPA counts pods not yet ready); if that brings the ratio within
   tolerance or below 1, nothing changes.
2. Stabilisation: the recommendation is the lowest of those within the scale-up window and the
   highest within the scale-down window (300 s by default), so a dip does not shed capacity.
3. Rate limits: a scale-up may reach at most, over the policies, the most of (the count at the
   start of each policy's period + its pods, or x (1 + percent), rounded up); a scale-down at
   least the least of (that count - pods, or x (1 - percent), truncated). The count at a
   period's start is the current one less what was added and plus what was removed within it;
   a limit below the current count holds it (no scale-down for a scale-up), and the mirror.
   Only the default `selectPolicy: Max` (the policy allowing the most change) is implemented.
"""

from __future__ import annotations

import math

from cockpit.core.autoscale.memory import Memory
from cockpit.domain import AutoscaleRule


def raw_recommendation(running: int, total: int, cpu_pct: float, target_pct: float, tolerance: float) -> tuple[int, str]:
    """Step 1, as the HPA's replica calculator: the ratio over the serving containers decides;
    when it asks for more while some are still starting, those count as using nothing, and if
    that brings the ratio within tolerance or turns its direction, nothing changes."""
    if running <= 0:
        return total, "no container serving yet: no metric, no change"
    ratio = cpu_pct / target_pct
    starting = total - running
    if not (starting > 0 and ratio > 1.0):
        if abs(ratio - 1.0) <= tolerance:
            return total, f"{cpu_pct:.1f}% / {target_pct:g}% = {ratio:.3f}: within ±{tolerance:g}"
        desired = math.ceil(round(ratio * running, 9))  # round: 50.0000001 is 50, not 51
        return desired, f"ceil({running} x {cpu_pct:.1f}% / {target_pct:g}%) = {desired}"
    again = cpu_pct * running / (target_pct * total)  # the starting ones at 0%
    if abs(again - 1.0) <= tolerance or again < 1.0:
        return total, (f"{running} x {cpu_pct:.1f}% over {total} (the {starting} starting at 0%) / {target_pct:g}% "
                       f"= {again:.3f}: no change")
    desired = math.ceil(round(again * total, 9))
    return desired, f"ceil({running} x {cpu_pct:.1f}% / {target_pct:g}%) = {desired} (the {starting} starting at 0%)"


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
    """Step 3. Each policy's period starts at the count before the changes made within it, both
    ways (current - added + removed); the limit never turns a scale-up into a scale-down or back."""
    def start(period_s: int) -> int:
        return total - mem.added_since(t - period_s) + mem.removed_since(t - period_s)

    if wanted > total:
        limit = max(_up(p.kind, p.value, start(p.period_s)) for p in rule.up)
        return min(wanted, max(limit, total))
    if wanted < total:
        limit = min(_down(p.kind, p.value, start(p.period_s)) for p in rule.down)
        return max(wanted, min(limit, total))
    return wanted


def _up(kind: str, value: int, start: int) -> int:
    return start + value if kind == "pods" else math.ceil(start * (1 + value / 100))


def _down(kind: str, value: int, start: int) -> int:
    return start - value if kind == "pods" else int(start * (1 - value / 100))
