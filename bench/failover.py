"""Engine failover on PostgreSQL, mid-queue. Prints one JSON object.

Each round: a private PostgreSQL store seeded with the demo world, `cockpit serve cloud` in its own
process (the simulated cloud's ECS HTTP face, reached through the real Aliyun SDK backend), two
`cockpit engine` processes on the store, and an ECS order of 1,000 instances queued with `cockpit
ecs order` as an SRE would (at most 20 instances a call, 20 calls in flight, 300 ms a call). Once
the first instances are made and calls are in flight, the active engine is killed (SIGKILL: no
chance to hand its lease back) and the standby finishes the order.

takeover_s: from the kill to the standby running the queue (its first RunInstances call: a call
row it started after the kill); the largest of three rounds. lease_s: from the kill to the standby
holding the lease (it lapses 4 s after the last heartbeat).
orders_lost: instances ordered that no host stands for in the cloud; orders_duplicated: instances
the cloud made beyond one per host (a call repeated without its ClientToken would make them), and
hosts that stand for the same instance. The cloud is asked (DescribeInstances), not only the
store; both summed over the rounds.
rounds: each round's figures: where the order stood at the kill (`killed_at` instances made,
`in_flight_at_kill` calls the store held in flight: written, their answers not recorded), what the
cloud made, and `wall_s` from the order placed to its last instance made (the takeover included).

Goals: takeover_s <= 10, orders_lost = 0, orders_duplicated = 0.
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

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from cockpit import world  # noqa: E402
from cockpit.backends.aliyun import AliyunCloud, Credentials  # noqa: E402
from cockpit.engine.lease import TTL_S, current_holder  # noqa: E402
from cockpit.lab.procs import stop_pid  # noqa: E402
from cockpit.engine.seed import ensure_seeded  # noqa: E402
from cockpit.store.db import open_store  # noqa: E402
from cockpit.store.models import EcsCallRow, EcsOrderRow, HostRow  # noqa: E402

ROUNDS = 3
INSTANCES = 1000
PER_CALL = 20
IN_FLIGHT = 20
LATENCY_S = 0.3
TEMPLATE = 103
KEY, SECRET = "bench-key", "bench-secret"


def _env(home: str) -> dict:
    return {**os.environ, "XDG_DATA_HOME": home, "XDG_CONFIG_HOME": home, "PYTHONUNBUFFERED": "1",
            "ALIBABA_CLOUD_ACCESS_KEY_ID": KEY, "ALIBABA_CLOUD_ACCESS_KEY_SECRET": SECRET}


def _line(p: subprocess.Popen, timeout: float = 30) -> str:
    out: list[str] = []
    t = threading.Thread(target=lambda: out.append(p.stdout.readline()), daemon=True)
    t.start()
    t.join(timeout)
    if not out or not out[0]:
        raise RuntimeError(f"no line from {' '.join(p.args[2:5])} within {timeout} s")
    return out[0].strip()


def _until(pred, timeout: float, what: str) -> None:
    end = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > end:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.02)




def one_round(url: str, home: str) -> dict:
    env = _env(home)
    procs: list[subprocess.Popen] = []

    def spawn(*args: str) -> subprocess.Popen:
        p = subprocess.Popen([sys.executable, "-m", "cockpit", *args], stdout=subprocess.PIPE,
                             stderr=subprocess.DEVNULL, text=True, env=env)
        procs.append(p)
        return p

    try:
        # a cloud of its own each round: the rounds' stores are copies of one, so their tokens repeat
        server = spawn("serve", "cloud", "--latency-ms", str(int(LATENCY_S * 1000)), "--max-in-flight", str(IN_FLIGHT))
        endpoint = _line(server).split()[4]
        config = Path(home) / "cockpit.yaml"
        config.write_text(yaml.safe_dump({"db": url, "autoscale": False, "backends": {
            "cloud": {"kind": "aliyun", "endpoint": endpoint, "batch": PER_CALL, "max_in_flight": IN_FLIGHT},
            "init": {"kind": "sim", "batch": 1000, "forks": 200}}}))
        cloud = AliyunCloud("cn-beijing", Credentials(KEY, SECRET), endpoint=endpoint)
        db = open_store(url)
        before = cloud.total_instances()
        active = spawn("--config", str(config), "engine", "--speed", "1")
        if _line(active) != "engine active":
            raise RuntimeError("the first engine did not become active")
        standby = spawn("--config", str(config), "engine", "--speed", "1")
        if not _line(standby).startswith("engine standby"):
            raise RuntimeError("the second engine did not stand by")
        placed = time.time()
        r = subprocess.run([sys.executable, "-m", "cockpit", "--config", str(config), "ecs", "order", "--template",
                            str(TEMPLATE), "--count", str(INSTANCES), "--yes"], capture_output=True, text=True,
                           env=env, timeout=60)
        if r.returncode != 0:
            raise RuntimeError(f"cockpit ecs order: {r.stderr.strip()}")
        oid = int(r.stdout.split()[2].rstrip(":"))
        _until(lambda: EcsOrderRow.get_by_id(oid).created > 0
               and EcsCallRow.select().where(EcsCallRow.state == "in_flight").exists(), 30, "the first instances")
        active.send_signal(signal.SIGKILL)
        active.wait()
        killed = time.time()
        at_kill = EcsOrderRow.get_by_id(oid).created
        in_flight = EcsCallRow.select().where(EcsCallRow.state == "in_flight").count()
        _until(lambda: (h := current_holder()) is not None and h.pid == standby.pid, 30, "the standby's lease")
        lease_s = time.time() - killed
        _until(lambda: EcsCallRow.select().where(EcsCallRow.real_started > killed).exists(), 30,
               "the standby's first call")
        first = EcsCallRow.select(EcsCallRow.real_started).where(EcsCallRow.real_started > killed).order_by(
            EcsCallRow.real_started).first().real_started
        _until(lambda: EcsOrderRow.get_by_id(oid).state not in ("queued", "running"), 60, "the order to end")
        order = EcsOrderRow.get_by_id(oid)
        last = EcsCallRow.select(EcsCallRow.real_finished).where(EcsCallRow.state == "ok").order_by(
            EcsCallRow.real_finished.desc()).first().real_finished
        ids = [h.instance_id for h in HostRow.select(HostRow.instance_id).where(HostRow.order == oid)]
        held = {i.id for i in cloud.describe_instances(sorted(set(ids)))}
        made = cloud.total_instances() - before
        db.close()
    finally:
        for p in reversed(procs):
            stop_pid(p.pid, 15)
    return {
        "takeover_s": round(first - killed, 2),
        "lease_s": round(lease_s, 2),
        "killed_at": at_kill,
        "in_flight_at_kill": in_flight,
        "state": order.state,
        "created": order.created,
        "cloud_made": made,
        "lost": INSTANCES - len(held & set(ids)),
        "duplicated": (made - len(set(ids))) + (len(ids) - len(set(ids))),
        "wall_s": round(last - placed, 2),
    }


def main() -> None:
    sys.path.insert(0, str(ROOT / "tests"))
    from tests import pg

    t0 = time.monotonic()
    cluster = pg.start()
    rounds = []
    try:
        template = cluster.new_db()
        db = open_store(cluster.url(template))
        ensure_seeded(db, world.load(world.DEMO_WORLD))
        db.close()
        for _ in range(ROUNDS):
            with tempfile.TemporaryDirectory() as home:
                rounds.append(one_round(cluster.url(cluster.new_db(template=template)), home))
    finally:
        cluster.stop()
    print(json.dumps({
        "database": "postgresql",
        "instances": INSTANCES,
        "ttl_s": TTL_S,
        "takeover_s": max(r["takeover_s"] for r in rounds),
        "orders_lost": sum(r["lost"] for r in rounds),
        "orders_duplicated": sum(r["duplicated"] for r in rounds),
        "rounds": rounds,
        "bench_s": round(time.monotonic() - t0, 1),
    }))


if __name__ == "__main__":
    main()
