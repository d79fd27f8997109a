"""What hosts cost, by charge type. Prices in the world are per month (owned, monthly), per hour
(payg, accrued by the second) or per year (yearly)."""

from __future__ import annotations

from dataclasses import dataclass

HOURS_PER_MONTH = 730.0  # 365 * 24 / 12


def per_hour(charge_type: str, price: float) -> float:
    if charge_type == "payg":
        return price
    if charge_type == "yearly":
        return price / 12 / HOURS_PER_MONTH
    return price / HOURS_PER_MONTH  # owned, monthly


def per_month(charge_type: str, price: float) -> float:
    return per_hour(charge_type, price) * HOURS_PER_MONTH


def accrued(charge_type: str, price: float, created: float, released: float | None, t0: float, t1: float) -> float:
    """What a host cost over [t0, t1): its hourly rate for the part of that time it existed.
    Pay-as-you-go accrues by the second; owned and prepaid hosts are spread evenly over time."""
    start = max(t0, created)
    end = min(t1, released if released is not None else t1)
    return per_hour(charge_type, price) * max(end - start, 0.0) / 3600.0


@dataclass(frozen=True)
class CostHost:
    name: str
    idc: str
    cluster: str
    pool: str
    charge_type: str
    price: float
    created: float
    released: float | None
    expires: float | None


@dataclass(frozen=True)
class CostLine:
    scope: str  # "idc", "cluster" or "pool"
    name: str
    hosts: int
    per_day: float  # at the current rate
    per_month: float
    month_to_date: float  # accrued since the start of this month
    by_charge: dict[str, float]  # per month, by charge type


def breakdown(hosts: list[CostHost], now: float, month_start: float) -> list[CostLine]:
    """Cost per IDC, cluster and pool: the rate of the hosts in service now, and what this
    month has cost so far (released hosts included, for the time they ran)."""
    acc: dict[tuple[str, str], dict] = {}
    for h in hosts:
        live = h.released is None or h.released > now
        rate = per_hour(h.charge_type, h.price) if live else 0.0
        mtd = accrued(h.charge_type, h.price, h.created, h.released, month_start, now)
        for scope, name in (("idc", h.idc), ("cluster", h.cluster), ("pool", h.pool)):
            a = acc.setdefault((scope, name), {"hosts": 0, "rate": 0.0, "mtd": 0.0, "by": {}})
            a["hosts"] += int(live)
            a["rate"] += rate
            a["mtd"] += mtd
            a["by"][h.charge_type] = a["by"].get(h.charge_type, 0.0) + rate * HOURS_PER_MONTH
    order = {"idc": 0, "cluster": 1, "pool": 2}
    return [
        CostLine(scope, name, a["hosts"], a["rate"] * 24, a["rate"] * HOURS_PER_MONTH, a["mtd"], a["by"])
        for (scope, name), a in sorted(acc.items(), key=lambda kv: (order[kv[0][0]], kv[0][1]))
    ]


def expiring(hosts: list[CostHost], now: float, within_days: float) -> list[tuple[CostHost, float]]:
    """Prepaid hosts in service that expire within `within_days`, soonest first, with days left."""
    out = [(h, (h.expires - now) / 86400) for h in hosts
           if h.expires is not None and h.released is None and h.expires - now <= within_days * 86400]
    return sorted(out, key=lambda x: x[1])
