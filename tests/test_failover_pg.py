"""Several jump hosts on one PostgreSQL store: two `cockpit engine` processes, the active one
SIGKILLed in the middle of the queue, the standby finishes it. Real processes throughout: a
private PostgreSQL cluster, `cockpit serve cloud` (the simulated cloud's ECS HTTP face, which both
engines reach through the real Aliyun SDK backend, as they would reach Aliyun), the engines, and
the CLI an SRE would use to queue the work. Nothing queued is lost and nothing is done twice:
the cloud is asked how many instances it holds, not only the store."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import peewee as pw
import pytest
import yaml

from cockpit.backends.aliyun import AliyunCloud, Credentials
from cockpit.engine.lease import current_holder
from cockpit.lab.procs import stop_pid
from cockpit.store.db import open_store
from cockpit.store.models import ContainerRow, EcsCallRow, EcsOrderRow, FlowItemRow, HostRow, TaskRow

pytestmark = pytest.mark.integration

KEY, SECRET = "failover-test-key", "failover-test-secret"
ORDERED = 200  # instances in the SRE's ECS order
FLOW_COUNT = 10  # relation containers in aliyun: the flow orders an ECS host for each
SCALE_IN = 5  # card containers stopped, once before the kill and once while no engine is active
LATENCY_MS = 400  # each RunInstances: 200 instances take 10 rounds of 4 calls of 5
TAKEOVER_LIMIT_S = 10.0
FINAL_HOST = ("ready", "failed", "timed_out")
FINAL_TASK = ("done", "failed", "cancelled")


def _env(home: Path) -> dict:
    return {**os.environ, "XDG_DATA_HOME": str(home), "XDG_CONFIG_HOME": str(home), "PYTHONUNBUFFERED": "1",
            "ALIBABA_CLOUD_ACCESS_KEY_ID": KEY, "ALIBABA_CLOUD_ACCESS_KEY_SECRET": SECRET}


def _line(p: subprocess.Popen, timeout: float = 30) -> str:
    out: list[str] = []
    reader = threading.Thread(target=lambda: out.append(p.stdout.readline()), daemon=True)
    reader.start()
    reader.join(timeout)
    assert out and out[0], f"no line from {p.args[2:5]} within {timeout} s"
    return out[0].rstrip("\n")


def _wait(predicate, timeout: float, what: str) -> float:
    start = time.monotonic()
    while not predicate():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)
    return time.monotonic() - start




def _card_containers() -> int:
    return ContainerRow.select().where((ContainerRow.service == "card") & (ContainerRow.state == "running")).count()


def _relation_in_aliyun() -> int:
    return ContainerRow.select().where((ContainerRow.service == "relation") & (ContainerRow.idc == "aliyun")).count()


def _settled() -> bool:
    return (EcsOrderRow.select().where(EcsOrderRow.state.in_(("queued", "running", "paused"))).count() == 0
            and TaskRow.select().where(TaskRow.state.not_in(FINAL_TASK)).count() == 0
            and HostRow.select().where(HostRow.status.not_in(FINAL_HOST)).count() == 0)


@dataclass
class Site:
    """What every jump host shares: the store, the cloud (served by its own process) and a config
    that points the real Aliyun SDK backend at it. `spawn` starts a `cockpit` process, stopped
    (by its PID) when the test ends, however it ends."""

    url: str
    env: dict
    config: Path
    cloud: AliyunCloud
    spawn: Callable[..., subprocess.Popen]

    def sre(self, *args: str) -> str:
        """A command as an SRE types it on a jump host (saying yes to its question)."""
        r = subprocess.run([sys.executable, "-m", "cockpit", "--config", str(self.config), *args, "--yes"],
                           capture_output=True, text=True, env=self.env, timeout=60)
        assert r.returncode == 0, f"cockpit {' '.join(args)}: {r.stderr}"
        return r.stdout

    def engine(self) -> tuple[subprocess.Popen, str]:
        p = self.spawn("--config", str(self.config), "engine", "--speed", "1", stderr=subprocess.DEVNULL)
        return p, _line(p)


@pytest.fixture
def site(pg_cluster, pg_demo_template, tmp_path) -> Iterator[Site]:
    url = pg_cluster.url(pg_cluster.new_db(template=pg_demo_template))
    env = _env(tmp_path)
    procs: list[subprocess.Popen] = []

    def spawn(*args: str, **kw) -> subprocess.Popen:
        p = subprocess.Popen([sys.executable, "-m", "cockpit", *args], stdout=subprocess.PIPE, text=True, env=env, **kw)
        procs.append(p)
        return p

    try:
        server = spawn("serve", "cloud", "--latency-ms", str(LATENCY_MS), "--max-in-flight", "4")
        endpoint = _line(server).split()[4]
        config = tmp_path / "cockpit.yaml"
        config.write_text(yaml.safe_dump({
            "db": url,
            "autoscale": False,  # only what the SRE queues changes the platform: the counts below are exact
            "backends": {
                "cloud": {"kind": "aliyun", "endpoint": endpoint, "batch": 5, "max_in_flight": 4},
                "init": {"kind": "sim", "batch": 1000, "forks": 200},
            },
        }))
        db = open_store(url)
        yield Site(url, env, config, AliyunCloud("cn-beijing", Credentials(KEY, SECRET), endpoint=endpoint), spawn)
        db.close()
    finally:
        for p in reversed(procs):
            stop_pid(p.pid, 15)


def test_the_standby_engine_finishes_the_queue_when_the_active_one_is_sigkilled(site):
    cloud_before, card_before, relation_before = site.cloud.total_instances(), _card_containers(), _relation_in_aliyun()
    first, said = site.engine()
    assert said == "engine active"
    second, said = site.engine()
    assert said == f"engine standby (active: {socket.gethostname()}:{first.pid})"

    assert "ECS order 1:" in site.sre("ecs", "order", "--template", "103", "--count", str(ORDERED))
    flow = int(site.sre("flow", "start", "expand", "relation", str(FLOW_COUNT), "--idc", "aliyun").split()[1])
    site.sre("scale-in", "--service", "card", "--count", str(SCALE_IN))

    # mid-queue: some instances made, calls in flight, most of the order still to come
    _wait(lambda: EcsOrderRow.get_by_id(1).created >= 40
          and EcsCallRow.select().where(EcsCallRow.state == "in_flight").exists(), 30, "the first instances")
    first.send_signal(signal.SIGKILL)
    first.wait()
    killed = time.time()
    at_kill = EcsOrderRow.get_by_id(1).created
    in_flight = EcsCallRow.select().where(EcsCallRow.state == "in_flight").count()
    assert at_kill < ORDERED, "the order finished before the kill: nothing was left to take over"
    assert TaskRow.get_by_id(flow).state not in FINAL_TASK, "the flow ended before the kill"

    site.sre("scale-in", "--service", "card", "--count", str(SCALE_IN))  # while no engine is active

    _wait(lambda: (h := current_holder()) is not None and h.pid == second.pid, TAKEOVER_LIMIT_S + 5,
          "the standby to take the lease")
    _wait(lambda: EcsCallRow.select().where(EcsCallRow.real_started > killed).exists(), TAKEOVER_LIMIT_S + 5,
          "the standby's first RunInstances")
    takeover = EcsCallRow.select(pw.fn.MIN(EcsCallRow.real_started)).where(EcsCallRow.real_started > killed).scalar() \
        - killed
    assert takeover <= TAKEOVER_LIMIT_S, f"the standby's first call came {takeover:.1f} s after the kill"

    _wait(_settled, 45, "every order, task and host to settle")
    _the_order_is_whole(1, ORDERED)
    _the_flow_ran_once(flow, relation_before)
    scale_ins = list(TaskRow.select().where(TaskRow.kind == "scale_in").order_by(TaskRow.id))
    assert [t.state for t in scale_ins] == ["done", "done"], [t.reason for t in scale_ins]
    assert card_before - _card_containers() == 2 * SCALE_IN  # each scale decision done once
    _the_cloud_holds_exactly_what_was_ordered(site.cloud, cloud_before)
    assert current_holder().pid == second.pid
    print(f"killed at {at_kill}/{ORDERED} with {in_flight} calls in flight; "
          f"the standby's first call {takeover:.2f} s later")


def _the_order_is_whole(order_id: int, count: int) -> None:
    """Exactly the instances ordered, each one host, each host with a final status."""
    order = EcsOrderRow.get_by_id(order_id)
    assert (order.state, order.created) == ("done", count)
    hosts = list(HostRow.select().where(HostRow.order == order_id))
    assert len(hosts) == count == len({h.instance_id for h in hosts})
    assert {h.status for h in hosts} <= {"ready", "failed"}


def _the_flow_ran_once(flow: int, relation_before: int) -> None:
    """Done, its ECS hosts ordered once, each container started once."""
    f = TaskRow.get_by_id(flow)
    assert f.state == "done", f.reason
    flow_orders = (f.progress or {}).get("orders") or []
    assert flow_orders and all(EcsOrderRow.get_by_id(o).state == "done" for o in flow_orders)
    items = list(FlowItemRow.select().where((FlowItemRow.task == flow) & (FlowItemRow.kind == "container")))
    deployed = [i for i in items if i.state == "done"]
    assert len(items) == FLOW_COUNT and len(deployed) == f.progress["deployed"] > 0
    assert _relation_in_aliyun() - relation_before == len(deployed)
    assert all(sum(1 for line in i.log if line[1] == "deploy" and line[2].startswith("running on")) == 1
               for i in deployed)


def _the_cloud_holds_exactly_what_was_ordered(cloud: AliyunCloud, before: int) -> None:
    """Every order's instances, counted by the cloud: none lost, none made twice."""
    orders = list(EcsOrderRow.select())
    ordered = sum(o.count for o in orders)
    assert all(o.state == "done" and o.created == o.count for o in orders)
    assert cloud.total_instances() - before == ordered
    ids = [h.instance_id for h in HostRow.select().where(HostRow.order.in_([o.id for o in orders]))]
    assert len(ids) == len(set(ids)) == ordered
    assert {i.id for i in cloud.describe_instances(ids)} == set(ids)
    calls = list(EcsCallRow.select().where(EcsCallRow.state == "ok"))
    assert len({c.token for c in calls}) == len(calls)
    assert sum(len(c.instance_ids) for c in calls) == ordered  # a token made again gave its instances back
