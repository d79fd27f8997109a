"""What each kind of rule needs beyond its shape (the schema checks types and ranges): the world
file's check and an edit in the view both ask this, so a rule is judged the same either way."""

from __future__ import annotations

# What a day can be replayed under (core/autoscale/simulate.py): here, where naming them costs no
# numpy (the CLI's parser offers them on every start).
POLICIES = ("rules", "hpa", "static-peak")

NEEDS = {
    "cpu": ("threshold_pct",),
    "target": ("target_pct",),
    "schedule": ("at",),
    "predict": ("target_pct",),
    "event": (),
}
USES = {  # the fields each kind reads; others are refused so a rule means what it says
    "cpu": {"threshold_pct", "factor"},
    "target": {"target_pct", "tolerance", "up_window_s", "down_window_s", "up", "down"},
    "schedule": {"at", "days", "lead_min", "hold_min", "min_count", "factor"},
    "predict": {"target_pct", "horizon_min"},
    "event": {"factor", "hold_min"},
}
COMMON = {"name", "kind", "services", "enabled"}


def rule_problems(rule: dict) -> list[tuple[str, str]]:
    """(field, why) for each problem of a rule whose shape is already checked."""
    kind = rule["kind"]
    out = [(f, f"a {kind} rule needs {f}") for f in NEEDS[kind] if f not in rule]
    out += [(f, f"a {kind} rule does not use {f} (it uses: {', '.join(sorted(USES[kind]))})")
            for f in sorted(set(rule) - COMMON - USES[kind])]
    if kind == "schedule" and "min_count" not in rule and "factor" not in rule:
        out.append(("", "a schedule rule needs min_count, factor or both: what to keep during the window"))
    if kind == "schedule" and rule.get("lead_min", 30) + rule.get("hold_min", 60) > 1440:
        out.append(("hold_min", "a schedule's window (lead_min + hold_min) may last at most a day"))
    return out


def rule_spec(rule) -> dict:
    """A rule as the mapping it is written as (the world file's form): the fields its kind uses."""
    out = {"name": rule.name, "kind": rule.kind, "services": list(rule.services)}
    for f in sorted(USES[rule.kind]):
        v = getattr(rule, f)
        if v is None:
            continue
        if f in ("up", "down"):
            v = [{"kind": p.kind, "value": p.value, "period_s": p.period_s} for p in v]
        elif f == "at":
            v = list(v)
        out[f] = v
    return out
