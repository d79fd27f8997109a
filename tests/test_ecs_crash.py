"""SIGKILL the engine in the middle of draining an ECS order, start it again: no order lost, no
instance created twice, no host left without a status. Real processes: `cockpit serve cloud`
(the simulated cloud's HTTP face) and `cockpit engine` with the Aliyun SDK backend."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import yaml

from cockpit.backends.aliyun import AliyunCloud, Credentials
from cockpit.store.db import open_store
from cockpit.store.models import EcsCallRow, EcsOrderRow, HostRow

KEY, SECRET = "crash-test-key", "crash-test-secret"


def _env(home: Path) -> dict:
    return {**os.environ, "XDG_DATA_HOME": str(home), "XDG_CONFIG_HOME": str(home), "PYTHONUNBUFFERED": "1",
            "ALIBABA_CLOUD_ACCESS_KEY_ID": KEY, "ALIBABA_CLOUD_ACCESS_KEY_SECRET": SECRET}


def _wait(predicate, timeout: float, what: str) -> None:
    deadline = time.time() + timeout
    while not predicate():
        if time.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def test_sigkill_mid_drain_loses_nothing_and_creates_nothing_twice(demo_db, tmp_path):
    env = _env(tmp_path)
    server = subprocess.Popen([sys.executable, "-m", "cockpit", "serve", "cloud", "--latency-ms", "250",
                               "--max-in-flight", "4"], stdout=subprocess.PIPE, text=True, env=env)
    engines: list[subprocess.Popen] = []
    try:
        endpoint = server.stdout.readline().split()[4]
        cfg = tmp_path / "config.yaml"
        cfg.write_text(yaml.safe_dump({
            "db": demo_db,
            "backends": {
                "cloud": {"kind": "aliyun", "endpoint": endpoint, "batch": 5, "max_in_flight": 4},
                "init": {"kind": "sim", "batch": 200, "forks": 50},
            },
        }))
        cockpit = [sys.executable, "-m", "cockpit", "--config", str(cfg)]
        r = subprocess.run(cockpit + ["ecs", "order", "--template", "103", "--count", "200", "--yes"],
                           capture_output=True, text=True, env=env, timeout=60)
        assert r.returncode == 0, r.stderr
        db = open_store(demo_db)

        def engine() -> subprocess.Popen:
            p = subprocess.Popen(cockpit + ["engine", "--speed", "1"], stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL, env=env)
            engines.append(p)
            return p

        first = engine()
        _wait(lambda: EcsOrderRow.get_by_id(1).created >= 40, 60, "the first instances")
        first.send_signal(signal.SIGKILL)
        first.wait()
        o = EcsOrderRow.get_by_id(1)
        assert o.created < 200, "killed too late to test anything"
        in_flight = EcsCallRow.select().where(EcsCallRow.state == "in_flight").count()

        engine()  # a new engine takes the lapsed lease and picks the queue up where it stood
        _wait(lambda: EcsOrderRow.get_by_id(1).state == "done", 90, "the order to finish")
        _wait(lambda: HostRow.select().where((HostRow.order == 1) & HostRow.status.in_(("pending", "initialising"))).count() == 0,
              60, "every new host to be initialised")

        hosts = list(HostRow.select().where(HostRow.order == 1))
        ids = [h.instance_id for h in hosts]
        assert EcsOrderRow.get_by_id(1).created == 200 == len(hosts) == len(set(ids))
        assert all(h.status in ("ready", "failed") for h in hosts)
        cloud = AliyunCloud("cn-beijing", Credentials(KEY, SECRET), endpoint=endpoint)
        assert {i.id for i in cloud.describe_instances(ids)} == set(ids)
        from aliyunsdkecs.request.v20140526.DescribeInstancesRequest import DescribeInstancesRequest

        everything = DescribeInstancesRequest()
        everything.set_PageSize(1)
        assert cloud._do(everything)["TotalCount"] == 100 + 200  # the world's 100 ECS hosts, and ours: none twice
        print(f"killed at {o.created}/200 with {in_flight} calls in flight")
    finally:
        for p in engines:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    p.kill()
        server.terminate()
        server.wait(timeout=10)
