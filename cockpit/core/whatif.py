"""What-if previews: "if I add 200 feed containers in tucheng with binpack, which hosts fill up,
what is stranded, and do I need ECS hosts?"

A preview places the request and every dependent service its templates pull in (feed +10 pulls
user +4 and card +3), one after another on a copy of the platform, measures each plan, and works
out the hosts still needed for what did not fit: from the shared pool first, then ECS.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

from cockpit.core.constraints import parse_constraints
from cockpit.core.costs import per_hour, per_month
from cockpit.core.dependencies import Demand, expand
from cockpit.core.placement import STRATEGIES, HostTable, Plan, Request, parse_weights, place
from cockpit.core.placement.filters import per_host_limit
from cockpit.core.placement.metrics import PlanMetrics, measure, scope_mask, utilisation
from cockpit.domain import Constraint, Hardware, Service, Template


class WhatIfError(ValueError):
    """The request cannot be previewed; the message says why."""


@dataclass(frozen=True)
class WhatIf:
    service: str | None  # a service, or
    sid: int | None  # a template
    count: int
    idc: str | None = None
    strategy: str = "spread"
    extra: tuple[Constraint, ...] = ()  # the user's extra filters, for the requested service
    weights: tuple[tuple[str, float], ...] = ()
    seed: int = 0

    def describe(self) -> str:
        what = self.service if self.service else f"template {self.sid}"
        where = f" in {self.idc}" if self.idc else ""
        extra = f" where {', '.join(map(str, self.extra))}" if self.extra else ""
        return f"{what} +{self.count}{where} ({self.strategy}){extra}"


@dataclass(frozen=True)
class Need:
    """Where the containers that did not fit could go."""

    unplaced: int
    shared_hosts: int = 0  # hosts to borrow from the shared pool
    shared_containers: int = 0
    ecs_hosts: int = 0
    ecs_containers: int = 0
    ecs_instance_type: str | None = None
    ecs_charge: str | None = None
    cost_per_hour: float = 0.0
    cost_per_month: float = 0.0
    nowhere: int = 0  # containers neither could take
    note: str = ""

    def as_json(self) -> dict:
        out = dict(self.__dict__)
        out["cost_per_hour"] = round(self.cost_per_hour, 2)
        out["cost_per_month"] = round(self.cost_per_month, 2)
        return out


@dataclass
class ServicePlan:
    service: str
    sid: int | None
    count: int
    via: tuple[int, ...]
    plan: Plan
    metrics: PlanMetrics
    need: Need


@dataclass
class Preview:
    request: WhatIf
    before: HostTable
    after: HostTable
    parts: list[ServicePlan] = field(default_factory=list)

    @property
    def root(self) -> ServicePlan:
        return self.parts[0]

    @property
    def dependencies(self) -> list[ServicePlan]:
        return self.parts[1:]

    @property
    def cost_per_month(self) -> float:
        return sum(p.need.cost_per_month for p in self.parts)

    def heat(self) -> list[tuple[str, float, float]]:
        """(host, utilisation before, after) for every host the requested service could use."""
        r = self.root.plan.request
        idx = scope_mask(self.before, r).nonzero()[0]
        ub, ua = utilisation(self.before), utilisation(self.after)
        return [(self.before.names[i], float(ub[i]), float(ua[i])) for i in idx]


@dataclass(frozen=True)
class Catalog:
    """What a preview needs to know of the world besides the hosts."""

    services: dict[str, Service]
    templates: dict[int, Template]
    hardware: dict[str, Hardware]
    shared_pool: str


def build(
    cat: Catalog,
    default_weights: tuple[tuple[str, float], ...],
    *,
    target: str,
    count: int | str,
    idc: str | None = None,
    strategy: str = "spread",
    filters: str = "",
    weights: str = "",
    seed: int | str = 0,
    idcs: set[str] | None = None,
) -> WhatIf:
    """A request from what a user typed: a service or template (name, sid or `sid:N`), a count,
    an IDC, a strategy, comma-separated filters and custom weights. WhatIfError says what is wrong."""
    target = target.strip()
    sid = None
    service = None
    by_name = {t.name: sid for sid, t in cat.templates.items()}
    if target.removeprefix("sid:").isdigit():
        sid = int(target.removeprefix("sid:"))
    elif target in by_name:
        sid = by_name[target]
    else:
        service = target
    try:
        n = int(count)
    except (TypeError, ValueError):
        raise WhatIfError(f"count must be a whole number, got {count!r}") from None
    if not 1 <= n <= 10_000_000:
        raise WhatIfError(f"count must be between 1 and 10000000, got {n}")
    try:
        s = int(seed or 0)
    except (TypeError, ValueError):
        raise WhatIfError(f"seed must be a whole number, got {seed!r}") from None
    if not 0 <= s <= 2**63 - 1:
        raise WhatIfError(f"seed must be from 0 to {2**63 - 1}, got {s}")
    idc = (idc or "").strip() or None
    if idc is not None and idcs is not None and idc not in idcs:
        raise WhatIfError(f"no IDC named {idc!r} (known: {', '.join(sorted(idcs))})")
    if strategy not in STRATEGIES:
        raise WhatIfError(f"strategy must be one of {', '.join(STRATEGIES)}, got {strategy!r}")
    try:
        extra = parse_constraints(filters or "")
        w = parse_weights(weights) if weights and weights.strip() else ()
    except ValueError as e:
        raise WhatIfError(str(e)) from None
    unknown = [name for name, _ in w if name.startswith("with:") and name[5:] not in cat.services]
    if unknown:
        raise WhatIfError(f"scorer {unknown[0]!r}: no service named {unknown[0][5:]!r}")
    req = WhatIf(service, sid, n, idc, strategy, extra, w, s)
    _, tpl = resolve(cat, req)  # the target must exist
    if strategy == "custom" and not w:
        w = (tpl.scoring if tpl and tpl.scoring else ()) or default_weights
        if not w:
            raise WhatIfError("custom needs weights: give them (spread=0.6,random=0.4) or set custom_scoring in the world")
        req = replace(req, weights=w)
    return req


def strategies_to_compare(req: WhatIf, cat: Catalog, default_weights: tuple) -> list[tuple[str, tuple]]:
    """spread, binpack and random, and custom when the world or template defines its weights."""
    out: list[tuple[str, tuple]] = [("spread", ()), ("binpack", ()), ("random", ())]
    _, tpl = resolve(cat, req)
    custom = req.weights if req.strategy == "custom" else ((tpl.scoring if tpl else ()) or default_weights)
    if custom:
        out.append(("custom", custom))
    return out


def resolve(cat: Catalog, req: WhatIf) -> tuple[Service, Template | None]:
    if req.sid is not None:
        t = cat.templates.get(req.sid)
        if t is None:
            raise WhatIfError(f"no template with sid {req.sid} (known: {', '.join(map(str, sorted(cat.templates)))})")
        return cat.services[t.service], t
    svc = cat.services.get(req.service or "")
    if svc is None:
        raise WhatIfError(f"no service named {req.service!r} (known: {', '.join(sorted(cat.services))})")
    tpl = next((t for sid, t in sorted(cat.templates.items()) if t.service == svc.name), None)
    return svc, tpl


def preview(table: HostTable, cat: Catalog, req: WhatIf) -> Preview:
    """Plan the request and its dependencies on a copy of `table` (which is left as it is)."""
    if req.count < 1:
        raise WhatIfError(f"count must be at least 1, got {req.count}")
    if req.idc is not None and req.idc not in set(table.idc.tolist()):
        raise WhatIfError(f"no hosts in IDC {req.idc!r}")
    svc, tpl = resolve(cat, req)
    demands = expand(cat.templates, tpl.sid, req.count) if tpl else []
    if not demands:
        demands = [Demand(0, svc.name, req.count, ())]
    out = Preview(req, table, table.copy())
    spare = table.copy()  # the shared pool as the borrowing so far leaves it
    for k, d in enumerate(demands):
        s = cat.services[d.service]
        r = Request.for_service(
            s, d.count, idc=req.idc, strategy=req.strategy, extra=req.extra if k == 0 else (),
            weights=req.weights, seed=req.seed,
        )
        before = out.after.copy()
        plan = place(out.after, r)
        template = cat.templates.get(d.sid) if d.sid else tpl
        need = needed(spare, cat, r, plan.unplaced, template)
        out.parts.append(ServicePlan(s.name, d.sid or None, d.count, d.via, plan, measure(before, out.after, plan), need))
    return out


def needed(spare: HostTable, cat: Catalog, r: Request, unplaced: int, template: Template | None) -> Need:
    """Hosts for what did not fit: borrowed from the shared pool first (taken from `spare`, so
    dependent services do not borrow the same hosts twice), then created in ECS."""
    if unplaced <= 0:
        return Need(0)
    left = unplaced
    borrow = place(spare, replace(r, pool=cat.shared_pool, count=left))
    shared_hosts, shared_containers = len(borrow.per_host()), borrow.placed
    left -= borrow.placed
    if not left:
        return Need(unplaced, shared_hosts, shared_containers)
    if template is None or template.ecs is None:
        return Need(unplaced, shared_hosts, shared_containers, nowhere=left,
                    note=f"{r.service} has no template with ECS settings: {left} containers have nowhere to go")
    e = template.ecs
    hw = cat.hardware[e.hardware]
    per = per_fresh_host(hw, r)
    if per == 0:
        return Need(unplaced, shared_hosts, shared_containers, nowhere=left,
                    note=f"one {r.service} container does not fit an empty {e.instance_type}")
    hosts = math.ceil(left / per)
    return Need(
        unplaced, shared_hosts, shared_containers,
        ecs_hosts=hosts, ecs_containers=left, ecs_instance_type=e.instance_type, ecs_charge=e.charge.type,
        cost_per_hour=hosts * per_hour(e.charge.type, e.charge.price),
        cost_per_month=hosts * per_month(e.charge.type, e.charge.price),
    )


def per_fresh_host(hw: Hardware, r: Request) -> int:
    """How many containers of the request an empty host of this class takes."""
    n = min(
        (hw.cores * 1000) // r.cpu if r.cpu else 10**9,
        (hw.memory_gb * 1024) // r.mem if r.mem else 10**9,
        (hw.disk_gb * 1024) // r.disk if r.disk else 10**9,
    )
    limit = per_host_limit(r)
    return int(min(n, limit) if limit is not None else n)


def document(p: Preview) -> dict:
    """The plan as data: what `cockpit plan --json` prints and the plan view exports."""

    def part(sp: ServicePlan) -> dict:
        names = p.before.names
        return {
            "service": sp.service,
            "count": sp.count,
            "placements": [{"host": names[h], "service": sp.service, "count": n} for h, n in sp.plan.per_host().items()],
            "unplaced": sp.plan.unplaced,
            "why_unplaced": sp.plan.why_unplaced(),
            "metrics": sp.metrics.as_json(),
            "needed": sp.need.as_json(),
        }

    r = p.request
    doc = {
        "request": {"service": p.root.service, "sid": r.sid, "count": r.count, "idc": r.idc,
                    "strategy": r.strategy, "filters": [str(c) for c in r.extra],
                    "weights": dict(r.weights), "seed": r.seed},
        **part(p.root),
        "dependencies": [{**part(d), "via": list(d.via)} for d in p.dependencies],
        "cost_per_month": round(p.cost_per_month, 2),
    }
    return doc


def compare(table: HostTable, cat: Catalog, req: WhatIf, strategies: list[tuple[str, tuple]]) -> dict[str, Preview]:
    """The same request under several strategies: (name, weights) pairs."""
    return {name: preview(table, cat, replace(req, strategy=name, weights=w)) for name, w in strategies}

