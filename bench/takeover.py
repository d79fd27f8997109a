"""Engine takeover and the cost of fencing, on SQLite and on a private PostgreSQL. Prints one JSON object.

takeover_s: two `cockpit engine` processes on one store; the active one is killed (SIGKILL, no
chance to hand its lease back); the time until the standby holds the lease and ticks. Three
rounds per database; the README promises 5 s (the lease lapses 4 s after the last heartbeat, a
standby looks every 0.5 s).

fenced_tx_per_s: transactions per second that each renew the lease before writing one row, as
every engine writer does (the tick, the task runner, the ECS drainer, the init-status writer),
against the same transactions without the fence.

Goals: takeover_max_s <= 5.0 on both databases.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from cockpit import world  # noqa: E402
from cockpit.engine.lease import POLL_S, TTL_S, Lease, current_holder  # noqa: E402
from cockpit.engine.seed import ensure_seeded  # noqa: E402
from cockpit.store.db import open_store  # noqa: E402
from cockpit.store.models import ClockRow, Meta  # noqa: E402

ROUNDS = 3


def _engine(url: str, home: str) -> subprocess.Popen:
    env = {**os.environ, "XDG_DATA_HOME": home, "XDG_CONFIG_HOME": home, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", "cockpit", "engine", "--db", url, "--speed", "60"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)


def _line(p: subprocess.Popen, timeout: float = 30) -> str:
    out: list[str] = []
    t = threading.Thread(target=lambda: out.append(p.stdout.readline()), daemon=True)
    t.start()
    t.join(timeout)
    if not out:
        raise RuntimeError("an engine said nothing")
    return out[0].strip()


def _until(pred, timeout: float) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return
        time.sleep(0.02)
    raise RuntimeError("timed out")


def takeover(url: str, home: str) -> float:
    first = _engine(url, home)
    second = None
    try:
        assert _line(first) == "engine active"
        second = _engine(url, home)
        assert _line(second).startswith("engine standby")
        db = open_store(url)
        tick = ClockRow.get_by_id(1).tick
        first.send_signal(signal.SIGKILL)
        t0 = time.monotonic()
        first.wait()
        _until(lambda: (h := current_holder()) is not None and h.pid == second.pid, 30)
        _until(lambda: ClockRow.get_by_id(1).tick > tick, 30)
        took = time.monotonic() - t0
        db.close()
        return took
    finally:
        for p in (first, second):
            if p is not None and p.poll() is None:
                p.send_signal(signal.SIGTERM)
                p.wait(timeout=15)


def fenced_rate(url: str, n: int = 500) -> tuple[float, float]:
    db = open_store(url)
    lease = Lease(db, name="bench")
    assert lease.acquire()
    t0 = time.perf_counter()
    for i in range(n):
        with db.atomic():
            Meta.insert(key="bench", value=str(i)).on_conflict(conflict_target=[Meta.key],
                                                               update={Meta.value: str(i)}).execute()
    plain = n / (time.perf_counter() - t0)
    t0 = time.perf_counter()
    for i in range(n):
        with lease.fenced():
            Meta.insert(key="bench", value=str(i)).on_conflict(conflict_target=[Meta.key],
                                                               update={Meta.value: str(i)}).execute()
    fenced = n / (time.perf_counter() - t0)
    lease.release()
    db.close()
    return round(plain), round(fenced)


def run(url: str, home: str) -> dict:
    w = world.load(world.DEMO_WORLD)
    db = open_store(url)
    ensure_seeded(db, w)
    db.close()
    rounds = [round(takeover(url, home), 2) for _ in range(ROUNDS)]
    plain, fenced = fenced_rate(url)
    return {"takeover_s": rounds, "takeover_max_s": max(rounds), "plain_tx_per_s": plain, "fenced_tx_per_s": fenced}


def main() -> None:
    out: dict = {"ttl_s": TTL_S, "poll_s": POLL_S, "promise_s": 5.0}
    with tempfile.TemporaryDirectory() as d:
        out["sqlite"] = run(os.path.join(d, "bench.db"), d)
        sys.path.insert(0, str(ROOT / "tests"))
        from tests import pg

        cluster = pg.start()
        try:
            out["postgres"] = run(cluster.url(cluster.new_db()), d)
        finally:
            cluster.stop()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
