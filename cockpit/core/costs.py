"""What hosts cost, by charge type. Prices in the world are per month (owned, monthly), per hour
(payg, accrued by the second) or per year (yearly)."""

from __future__ import annotations

HOURS_PER_MONTH = 730.0  # 365 * 24 / 12


def per_hour(charge_type: str, price: float) -> float:
    if charge_type == "payg":
        return price
    if charge_type == "yearly":
        return price / 12 / HOURS_PER_MONTH
    return price / HOURS_PER_MONTH  # owned, monthly


def per_month(charge_type: str, price: float) -> float:
    return per_hour(charge_type, price) * HOURS_PER_MONTH
