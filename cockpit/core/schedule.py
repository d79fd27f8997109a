"""Local clock times in platform time: when did 01:00 last pass?"""

from __future__ import annotations

from datetime import datetime, time, timedelta, timezone


def crossings(last: float, now: float, hhmm: str, tz: timezone) -> list[float]:
    """Every instant in (last, now] at which the local clock showed `hhmm` (oldest first)."""
    if now <= last:
        return []
    h, m = map(int, hhmm.split(":"))
    day = datetime.fromtimestamp(last, tz).date()
    out = []
    while True:
        t = datetime.combine(day, time(h, m), tzinfo=tz).timestamp()
        if t > now:
            return out
        if t > last:
            out.append(t)
        day += timedelta(days=1)
