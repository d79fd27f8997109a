"""Scheduling managers on a real etcd: two engine processes on one store; the active one, which
is also every IDC's scheduling manager, is SIGKILLed in the middle of a flow; the standby takes
the engine lease and the IDC's lock and finishes the flow, with no step done twice."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid

import pytest
import yaml

from cockpit.backends.discovery_etcd import EtcdDiscovery
from cockpit.core.flow import FlowSpec
from cockpit.engine.flow import queue_flow
from cockpit.store.db import open_store
from cockpit.store.models import ClockRow, FlowItemRow, TaskRow
from tests.etcd import etcd_server  # noqa: F401 (fixture)

pytestmark = pytest.mark.integration


def _spawn(config, home) -> subprocess.Popen:
    env = {**os.environ, "XDG_DATA_HOME": str(home), "XDG_CONFIG_HOME": str(home), "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", "cockpit", "--config", str(config), "engine", "--speed", "60"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)


def _line(p: subprocess.Popen, timeout: float = 30) -> str:
    out: list[str] = []
    t = threading.Thread(target=lambda: out.append(p.stdout.readline()), daemon=True)
    t.start()
    t.join(timeout)
    assert out, f"no output from the engine within {timeout} s"
    return out[0].rstrip("\n")


def _until(predicate, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


def test_the_standby_manager_finishes_the_flow_when_the_active_one_is_killed(demo_db, tmp_path, etcd_server):
    prefix = f"/failover-{uuid.uuid4().hex[:8]}"
    config = tmp_path / "cockpit.yaml"
    config.write_text(yaml.safe_dump({"db": demo_db, "autoscale": False, "backends": {
        "discovery": {"kind": "etcd", "url": etcd_server.url, "prefix": prefix}}}))
    etcd = EtcdDiscovery(etcd_server.url, prefix=prefix)
    first = _spawn(config, tmp_path)
    second = None
    try:
        assert _line(first) == "engine active"
        second = _spawn(config, tmp_path)
        assert _line(second).startswith("engine standby")
        db = open_store(demo_db)
        with db.atomic():
            fid = queue_flow("shrink", FlowSpec("card", 3, "tucheng", drain_s=8.0), "sre", ClockRow.get_by_id(1).t)
        assert _until(lambda: (TaskRow.get_by_id(fid).progress or {}).get("step") == "drain", 30)
        manager = etcd.lock_holder("scheduler/tucheng")
        assert manager is not None
        before = TaskRow.get_by_id(fid).progress["steps"]
        first.send_signal(signal.SIGKILL)
        first.wait()
        # the engine lease lapses, then the IDC's lock: the standby becomes both and goes on
        assert _until(lambda: TaskRow.get_by_id(fid).state == "done", 40), TaskRow.get_by_id(fid).reason
        after = TaskRow.get_by_id(fid).progress["steps"]
        assert etcd.lock_holder("scheduler/tucheng") not in (None, manager)
        # what the dead manager finished was not done again; the drain it began was waited out
        for step in ("deregister", "drain"):
            assert after[step]["t0"] == before[step]["t0"]
        items = list(FlowItemRow.select().where(FlowItemRow.task == fid))
        assert len(items) == 3 and {(i.step, i.state) for i in items} == {("stop", "done")}
        assert all(sum(1 for line in i.log if line[1] == "stop" and line[2].startswith("stopped")) == 1
                   for i in items)
        db.close()
    finally:
        for p in (first, second):
            if p is not None and p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    p.kill()
        etcd.close()
