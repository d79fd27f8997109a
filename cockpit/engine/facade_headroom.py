"""The facade's headroom read: "if this IDC, pool or hardware class were lost now (or at tonight's
peak), could the rest absorb its containers?" The platform is read from the store as the planner
sees it; traffic comes from the world's daily curve, its hot events and those set off by hand.
Nothing is written: it is a what-if (see cockpit.core.headroom for the model)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # numpy and the model are imported when a headroom is asked: not on the way to the first paint
    from cockpit.core.headroom import HeadroomView
    from cockpit.engine.facade import Cockpit


def headroom(cockpit: Cockpit, lost_kind: str, lost_name: str, at: str = "now") -> HeadroomView:
    """Lose every host of `lost_kind` (idc, pool or hardware) named `lost_name` and re-place the
    demand at `at` (now, or peak: tonight's highest point of the daily curve) on the rest.
    HeadroomError names what is wrong with the question; StoreError when the store is damaged."""
    import numpy as np

    from cockpit.core.headroom import TIMES, HeadroomError, Loss, headroom as answer, peak_time
    from cockpit.core.traffic import service_qps
    from cockpit.engine.state import current_table
    from cockpit.engine.step import running_hot_events

    if at not in TIMES:
        raise HeadroomError(f"--at must be one of {', '.join(TIMES)}, got {at!r}")
    w = cockpit.world
    known = {"idc": [i.name for i in w.idcs], "pool": [p.name for p in w.pools],
             "hardware": [h.name for h in w.hardware]}.get(lost_kind, [])
    table, services, _ = current_table()
    now = cockpit.clock().t
    when = now if at == "now" else peak_time(w.traffic, now)
    order = [services[name] for name in table.services]
    injected = [ev for _, ev in running_hot_events()]
    q = service_qps(w.traffic, order, np.array([now, when]), w.seed, injected)  # (services, 2)
    qps_now = {s.name: float(q[i, 0]) for i, s in enumerate(order)}
    qps_at = {s.name: float(q[i, 1]) for i, s in enumerate(order)}
    return answer(table, cockpit.catalog(services), Loss(lost_kind, lost_name), qps_now, qps_at,
                  at=at, when=when, known=known, targets={p.pool: p.target_cpu_pct for p in w.scaling.pools})


class HeadroomFacade:
    """Mixed into Cockpit: `cockpit.headroom("idc", "tucheng", "peak")`."""

    def headroom(self, lost_kind: str, lost_name: str, at: str = "now") -> HeadroomView:
        return headroom(self, lost_kind, lost_name, at)  # type: ignore[arg-type]
