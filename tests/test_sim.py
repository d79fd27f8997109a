"""The simulated platform: its clock, the daily traffic curve, load, and failing hosts."""

from __future__ import annotations

from datetime import datetime

import numpy as np
import pytest

from cockpit.backends.sim.clock import SimClock
from cockpit.core import failures, load, traffic
from cockpit.core.failures import FailureModel
from cockpit.domain import HotEvent


def test_the_clock_runs_at_its_speed_and_pauses_without_jumping():
    c = SimClock(t0=1000.0, real0=50.0, speed=60)
    assert c.now(51.0) == 1060.0
    c.rebase(52.0, paused=True)
    assert c.now(100.0) == 1120.0
    c.rebase(100.0, paused=False, speed=1)
    assert c.now(110.0) == 1130.0


def _local(world, hhmm: str) -> float:
    h, m = map(int, hhmm.split(":"))
    return datetime(2026, 11, 27, h, m, tzinfo=world.traffic.tz).timestamp()


def test_traffic_peaks_at_lunch_and_late_evening_and_is_quiet_at_night(demo_world):
    c = demo_world.traffic
    hours = np.arange(0, 24, 1 / 60)
    lv = traffic.level(c, hours)
    assert abs(hours[np.argmax(lv)] - 22.5) < 0.1
    day = (hours > 10) & (hours < 16)
    assert abs(hours[day][np.argmax(lv[day])] - 12.5) < 0.1
    assert lv.max() == pytest.approx(1.0, abs=0.02)
    assert lv[(hours >= 3) & (hours <= 5)].max() < 0.2
    assert lv[(hours >= 3) & (hours <= 5)].max() < lv[(hours >= 12) & (hours <= 13)].min() / 3


def test_service_qps_follows_the_curve_and_batch_fills_the_night(demo_world):
    w = demo_world
    feed = w.service("feed")
    etl = w.service("etl")
    at = {h: _local(w, h) for h in ("04:00", "12:30", "22:30")}
    q = {h: traffic.service_qps(w.traffic, [feed, etl], t, w.seed) for h, t in at.items()}
    assert q["22:30"][0] == pytest.approx(feed.traffic.peak_qps, rel=0.06)
    assert q["04:00"][0] < 0.2 * feed.traffic.peak_qps
    assert q["04:00"][1] > q["22:30"][1] * 3  # the batch job runs at night


def test_hot_events_multiply_traffic_while_they_last(demo_world):
    w = demo_world
    start = datetime(2026, 11, 27, 15, 0, tzinfo=w.traffic.tz)
    ev = HotEvent("x", start, 60, 3.0, ("feed",))
    t = np.array([start.timestamp() - 60, start.timestamp() + 1800, start.timestamp() + 7200])
    m = traffic.hot_multiplier([ev], "feed", t)
    assert m.tolist() == [1.0, 3.0, 1.0]
    assert traffic.hot_multiplier([ev], "user", t).tolist() == [1.0, 1.0, 1.0]


def _layout():
    return load.Layout(
        host_idc=np.array([0, 0, 1]),
        host_pool=np.array([0, 1, 0]),
        host_cores=np.array([32.0, 32.0, 16.0]),
        host_mem=np.array([32.0, 32.0, 32.0]),
        counts=np.array([[2.0], [1.0], [1.0]]),  # containers per host of the one service
        svc_cpu=np.array([2.0]),
        svc_cpk=np.array([4.0]),
        svc_mem=np.array([4.0]),
        idcs=["a", "b"],
        pools=["web", "shared"],
    )


def test_load_shares_traffic_among_running_containers_and_caps_cpu():
    lay = _layout()
    stats = {s.scope: s for s in load.compute(lay, np.array([True, True, True]), np.array([1000.0]))}
    assert stats["all"].qps == pytest.approx(1000.0)
    assert stats["all"].containers == 4
    assert stats["all"].cpu_pct == pytest.approx(50.0)  # 250 qps * 4 cores/kqps = 1 core of 2
    assert stats["a/web"].qps == pytest.approx(500.0)
    # a dead host: its containers serve nothing, the survivors take the traffic
    stats = {s.scope: s for s in load.compute(lay, np.array([False, True, True]), np.array([1000.0]))}
    assert stats["all"].containers == 2 and stats["a/web"].qps == 0
    assert stats["all"].qps == pytest.approx(1000.0)
    assert stats["a"].hosts_alive == 1 and stats["a"].hosts_total == 2
    # overload: CPU is capped at the reservation
    stats = {s.scope: s for s in load.compute(lay, np.array([True] * 3), np.array([1e6]))}
    assert stats["all"].cpu_pct == pytest.approx(100.0)


def test_hosts_fail_at_the_modelled_rate_and_come_back():
    n = 20_000
    rng = np.random.default_rng(1)
    model = FailureModel(per_host_hour=0.01, repair_min=(10, 20))
    alive = np.ones(n, dtype=bool)
    until = np.full(n, np.nan)
    change = failures.step(alive, until, now=3600.0, dt=3600.0, model=model, rng=rng)
    assert 150 < len(change.down) < 250  # about 1% of 20,000 in an hour
    alive[change.down] = False
    later = failures.step(alive, change.down_until, now=3600.0 + 25 * 60, dt=1.0, model=model, rng=rng)
    assert set(later.up.tolist()) == set(change.down.tolist())
