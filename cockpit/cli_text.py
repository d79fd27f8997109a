"""Plain-text forms of what the screens show, for `cockpit plan` and scripts that read text."""

from __future__ import annotations

from cockpit.core.placement.metrics import utilisation
from cockpit.core.whatif import Need, Preview, ServicePlan

COMPARE = [
    ("placed", "placed", "{:d}"),
    ("unplaced", "unplaced", "{:d}"),
    ("hosts touched", "hosts_touched", "{:d}"),
    ("util mean after", "util_mean_after", "{:.0%}"),
    ("imbalance σ after", "imbalance_std_after", "{:.3f}"),
    ("max-min after", "imbalance_range_after", "{:.0%}"),
    ("stranded cores", "stranded_cores", "{:.0f}"),
    ("stranded mem GB", "stranded_memory_gb", "{:.0f}"),
    ("largest fit (ctrs)", "largest_fit", "{:d}"),
    ("blast radius", "blast_radius", "{:d}"),
]


def need_text(need: Need) -> str:
    if not need.unplaced:
        return "none"
    bits = []
    if need.shared_hosts:
        bits.append(f"{need.shared_hosts} shared hosts ({need.shared_containers})")
    if need.ecs_hosts:
        bits.append(f"{need.ecs_hosts} x {need.ecs_instance_type} ({need.cost_per_hour:,.0f}/h, "
                    f"{need.cost_per_month:,.0f}/month)")
    if need.nowhere:
        bits.append(f"{need.nowhere} with nowhere to go")
    return ", ".join(bits)


def _part(sp: ServicePlan) -> list[str]:
    m = sp.metrics
    lines = [
        f"  placed {m.placed} of {m.requested} on {m.hosts_touched} hosts; unplaced {m.unplaced}",
        f"  utilisation {m.util_mean_before:.0%} -> {m.util_mean_after:.0%}; imbalance σ "
        f"{m.imbalance_std_before:.3f} -> {m.imbalance_std_after:.3f}, max-min {m.imbalance_range_before:.0%} -> "
        f"{m.imbalance_range_after:.0%}",
        f"  stranded {m.stranded_cores:.0f} cores, {m.stranded_memory_gb:.0f} GB; largest fit {m.largest_fit}"
        + (f" ({m.largest_fit_host})" if m.largest_fit_host else "")
        + f"; blast radius {m.blast_radius}" + (f" ({m.blast_host})" if m.blast_host else ""),
    ]
    if sp.plan.unplaced:
        lines.append(f"  {sp.plan.why_unplaced()}")
    lines.append(f"  needs: {need_text(sp.need)}")
    return lines


def plan_text(p: Preview) -> str:
    out = [p.request.describe()] + _part(p.root)
    ub, ua = utilisation(p.before), utilisation(p.after)
    out.append(f"  {'HOST':<18} {'IDC':<9} {'POOL':<9} {'ADD':>4} {'BEFORE':>6} {'AFTER':>6}")
    for h, n in p.root.plan.per_host().items():
        out.append(f"  {p.before.names[h]:<18} {p.before.idc[h]:<9} {p.before.pool[h]:<9} {n:>4} "
                   f"{ub[h]:>6.0%} {ua[h]:>6.0%}")
    for d in p.dependencies:
        via = " -> ".join(f"sid {s}" for s in d.via)
        out.append(f"{d.service} +{d.count} (via {via})")
        out += _part(d)
    if p.cost_per_month:
        out.append(f"cost of the hosts still needed: {p.cost_per_month:,.0f} a month")
    return "\n".join(out)


def compare_text(previews: dict[str, Preview]) -> str:
    names = list(previews)
    first = next(iter(previews.values()))
    out = [f"{first.request.describe().rsplit(' (', 1)[0]}, by strategy",
           f"{'':<20}" + "".join(f"{n:>10}" for n in names)]
    for label, key, fmt in COMPARE:
        out.append(f"{label:<20}" + "".join(f"{fmt.format(getattr(previews[n].root.metrics, key)):>10}" for n in names))
    out.append(f"{'shared+ECS hosts':<20}" + "".join(
        f"{str(previews[n].root.need.shared_hosts) + '+' + str(previews[n].root.need.ecs_hosts):>10}" for n in names))
    out.append(f"{'cost/month (all)':<20}" + "".join(f"{previews[n].cost_per_month:>10,.0f}" for n in names))
    return "\n".join(out)
