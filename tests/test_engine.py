"""The engine: ticks advance the platform; one engine is active per store."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from cockpit.engine.engine import Engine
from cockpit.engine.lease import Lease, current_holder
from cockpit.store.db import open_store
from cockpit.store.models import ClockRow, EventRow, HostRow, LeaseRow, LiveRow, MetricRow


class FakeClock:
    def __init__(self, t: float = 1000.0):
        self.t = t

    def __call__(self) -> float:
        return self.t


def test_ticks_advance_platform_time_at_the_clock_speed(demo_db, demo_world):
    db = open_store(demo_db)
    real = FakeClock()
    e = Engine(db, demo_world, speed=60, real_clock=real)
    assert e.step_lease() is True  # taking over ticks once, at once
    start = ClockRow.get_by_id(1).t
    ticks = ClockRow.get_by_id(1).tick
    for _ in range(10):
        real.t += 1
        assert e.tick()
    clock = ClockRow.get_by_id(1)
    assert clock.t == pytest.approx(start + 600)
    assert clock.tick == ticks + 10
    live = LiveRow.get_by_id("all")
    assert live.t == pytest.approx(start + 600)
    assert MetricRow.select().where(MetricRow.t > start).count() == 10 * 18  # a sample a platform minute


def test_a_speed_set_by_anyone_is_picked_up_without_a_jump(demo_db, demo_world):
    db = open_store(demo_db)
    real = FakeClock()
    e = Engine(db, demo_world, speed=10, real_clock=real)
    e.step_lease()
    real.t += 1
    e.tick()
    t1 = ClockRow.get_by_id(1).t
    ClockRow.update(speed=100).execute()  # as the facade does for a viewer's request
    real.t += 1
    e.tick()  # the speed change lands at this tick
    real.t += 1
    e.tick()
    assert ClockRow.get_by_id(1).t == pytest.approx(t1 + 10 + 100)


def test_failed_hosts_are_recorded_with_events(demo_db, demo_world):
    db = open_store(demo_db)
    real = FakeClock()
    e = Engine(db, demo_world, speed=3600, real_clock=real)  # an hour a tick: a few failures
    e.step_lease()
    for _ in range(6):
        real.t += 1
        e.tick()
    down_events = EventRow.select().where(EventRow.kind == "host")
    assert down_events.count() > 0
    dead = HostRow.select().where(HostRow.alive == False).count()  # noqa: E712
    live = LiveRow.get_by_id("all")
    assert live.hosts_total - live.hosts_alive == dead


def test_two_engines_on_one_store_one_is_active(demo_db, demo_world):
    db = open_store(demo_db)
    real = FakeClock()
    a = Engine(db, demo_world, real_clock=real, lease_ttl=6, lease_clock=real)
    b = Engine(db, demo_world, real_clock=real, lease_ttl=6, lease_clock=real)
    assert a.step_lease() is True
    assert b.step_lease() is False
    assert b.tick() is False
    assert current_holder(now=real.t).holder == a.lease.id
    a.stop()  # hands the lease back: b takes over at once
    assert b.step_lease() is True


def test_a_lapsed_lease_is_taken_and_the_old_holder_stops_writing(demo_db, demo_world):
    db = open_store(demo_db)
    real = FakeClock()
    a = Engine(db, demo_world, real_clock=real, lease_ttl=6, lease_clock=real)
    b = Engine(db, demo_world, real_clock=real, lease_ttl=6, lease_clock=real)
    a.step_lease()
    real.t += 10  # a stalls past its lease
    assert b.step_lease() is True
    ticks_before = ClockRow.get_by_id(1).tick
    real.t += 1
    assert a.tick() is False  # fenced: it finds the lease gone and writes nothing
    assert a.active is False
    assert ClockRow.get_by_id(1).tick == ticks_before
    assert b.tick() is True


def test_lease_rows_are_one_per_name(demo_db):
    db = open_store(demo_db)
    real = FakeClock()
    leases = [Lease(db, clock=real) for _ in range(5)]
    assert [x.acquire() for x in leases].count(True) == 1
    assert LeaseRow.select().count() == 1


# --- real processes ----------------------------------------------------------------------

COCKPIT = [sys.executable, "-m", "cockpit"]


def _spawn(db: str, home: Path) -> subprocess.Popen:
    env = {**os.environ, "XDG_DATA_HOME": str(home), "XDG_CONFIG_HOME": str(home), "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        COCKPIT + ["engine", "--db", db, "--speed", "60"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env,
    )


def _first_line(p: subprocess.Popen, timeout: float = 20) -> str:
    out: list[str] = []
    reader = threading.Thread(target=lambda: out.append(p.stdout.readline()), daemon=True)
    reader.start()
    reader.join(timeout)
    if not out:
        raise AssertionError(f"no output from engine within {timeout}s")
    return out[0].rstrip("\n")


def _wait_for(predicate, timeout: float) -> bool:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def test_two_engine_processes_one_active_and_the_standby_takes_over_after_sigkill(demo_db, tmp_path):
    first = _spawn(demo_db, tmp_path)
    try:
        assert _first_line(first) == "engine active"
        second = _spawn(demo_db, tmp_path)
        try:
            line = _first_line(second)
            assert line.startswith("engine standby (active: ") and f":{first.pid})" in line
            db = open_store(demo_db)
            first.send_signal(signal.SIGKILL)
            killed = time.monotonic()
            first.wait()
            # the lease lapses (4 s after the last heartbeat) and the standby takes over: the README
            # promises 5 s
            assert _wait_for(lambda: (h := current_holder()) is not None and h.pid == second.pid, 20)
            takeover = time.monotonic() - killed
            assert takeover <= 5.0, f"takeover took {takeover:.1f} s"
            tick = ClockRow.get_by_id(1).tick
            assert _wait_for(lambda: ClockRow.get_by_id(1).tick > tick, 10)
            db.close()
        finally:
            second.send_signal(signal.SIGTERM)
            assert second.wait(timeout=10) == 0
    finally:
        if first.poll() is None:
            first.kill()
    db = open_store(demo_db)
    assert current_holder() is None  # the survivor handed its lease back on SIGTERM
