"""Initialising new hosts: real ansible-runner playbooks against local-connection hosts, statuses
through one writer, failures with their task and message, retries, time-outs, no secrets leaked."""

from __future__ import annotations

import time

import pytest

from cockpit.backends.ansible import AnsibleInit
from cockpit.backends.base import InitEvent, InitTarget
from cockpit.backends.factory import InitSettings, init_target
from cockpit.backends.sim.init import SimInit
from cockpit.engine.init import InitRunner, StatusWriter
from cockpit.store.db import open_store
from cockpit.store.models import EventRow, HostRow

SECRET = "cloud-secret-that-must-not-leak"


def _new_hosts(n: int, prefix: str = "ecs-9") -> list[str]:
    names = [f"{prefix}-{i:04d}" for i in range(1, n + 1)]
    for name in names:
        HostRow.insert(name=name, idc="aliyun", pool="feed-web", group="order-9", hardware="ecs-c6", cores=16,
                       memory_gb=32, disk_gb=200, source="ecs", zone="cn-beijing-i", charge_type="payg", price=3.8,
                       created_t=0, status="pending", instance_id=f"i-{name}").execute()
    return names


def _status() -> dict[str, tuple[str, str | None, str | None]]:
    return {h.name: (h.status, h.init_task, h.status_detail) for h in HostRow.select().where(HostRow.group == "order-9")}


@pytest.mark.integration
def test_ansible_initialises_hosts_and_records_a_failure_with_its_task(demo_db, demo_world, tmp_path, monkeypatch):
    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_SECRET", SECRET)
    db = open_store(demo_db)
    names = _new_hosts(3)
    roots = tmp_path / "roots"
    roots.mkdir()
    (roots / names[2]).write_text("not a directory")  # this host's disk is broken
    backend = AnsibleInit(work_dir=tmp_path / "ansible", connection="local", root_dir=roots)
    writer = StatusWriter(db)
    runner = InitRunner(db, backend, writer, timeout_s=120,
                        target=init_target(demo_world, InitSettings(root_dir=str(roots))))
    runner.run_now()
    st = _status()
    assert st[names[0]][0] == st[names[1]][0] == "ready"
    status, task, message = st[names[2]]
    assert (status, task) == ("failed", "configuration directories")
    assert "exists" in message or "directory" in message
    for name in names[:2]:  # the playbook ran: NTP, sysctl and Docker configured under the host's root
        etc = roots / name / "etc"
        assert "server ntp1.aliyun.com iburst" in (etc / "chrony" / "chrony.conf").read_text()
        assert "net.core.somaxconn = 65535" in (etc / "sysctl.d" / "90-dcp.conf").read_text()
        assert "reg-aliyun" in (etc / "docker" / "daemon.json").read_text()  # the IDC's registry as mirror
    assert EventRow.select().where(EventRow.message.contains(f"host {names[2]} initialisation failed")).count() == 1
    # the artifacts of the run hold no secret from the cockpit's environment
    for f in (tmp_path / "ansible").rglob("*"):
        if f.is_file():
            assert SECRET not in f.read_text(errors="ignore"), f

    # fixed, and retried: it becomes ready
    (roots / names[2]).unlink()
    HostRow.update(status="pending").where(HostRow.name == names[2]).execute()
    runner.run_now()
    assert _status()[names[2]][0] == "ready"
    writer.stop()


def test_a_local_connection_refuses_a_host_without_its_own_root(tmp_path):
    backend = AnsibleInit(work_dir=tmp_path, connection="local", root_dir=tmp_path)
    with pytest.raises(ValueError, match="init_root other than /"):
        backend.inventory([InitTarget("h1", None, {})])


def test_simulated_init_goes_through_every_status_and_some_fail(demo_db):
    db = open_store(demo_db)
    names = _new_hosts(60)
    seen: dict[str, list[str]] = {}

    class Watching(SimInit):
        def run(self, hosts, emit, timeout_s, stop=None):
            def spy(ev: InitEvent):
                seen.setdefault(ev.host, []).append(ev.status)
                emit(ev)
            super().run(hosts, spy, timeout_s, stop)

    writer = StatusWriter(db)
    runner = InitRunner(db, Watching(seed=3, failure_rate=0.1, task_s=(0.001, 0.005), forks=20), writer, batch=25)
    runner.run_now()
    st = _status()
    assert {s for s, _, _ in st.values()} <= {"ready", "failed"}
    failed = [n for n, (s, _, _) in st.items() if s == "failed"]
    assert 0 < len(failed) < 20
    assert all(st[n][1] and st[n][2] for n in failed)  # the task and the message are kept
    assert all(seen[n][0] == "initialising" for n in names)
    writer.stop()


def test_hosts_without_a_result_in_time_are_timed_out(demo_db):
    db = open_store(demo_db)
    names = _new_hosts(3)
    writer = StatusWriter(db)
    runner = InitRunner(db, SimInit(task_s=(0.5, 0.5), failure_rate=0.0), writer, timeout_s=0.2)
    runner.run_now()
    st = _status()
    assert all(st[n][0] == "timed_out" for n in names)
    assert all(st[n][2] == "no result within 0.2 s" for n in names)
    writer.stop()


def test_hosts_left_initialising_by_a_dead_engine_start_again(demo_db):
    db = open_store(demo_db)
    names = _new_hosts(2)
    HostRow.update(status="initialising", init_task="docker installed").where(HostRow.name.in_(names)).execute()
    runner = InitRunner(db, SimInit(), StatusWriter(db))
    assert runner.recover() == 2
    assert {s for s, _, _ in _status().values()} == {"pending"}


def test_many_events_go_through_one_writer(demo_db):
    db = open_store(demo_db)
    names = _new_hosts(200)
    writer = StatusWriter(db)
    t0 = time.perf_counter()
    for _ in range(5):
        for n in names:
            writer.put(InitEvent(n, "initialising", "ntp servers"))
    for n in names:
        writer.put(InitEvent(n, "ready"))
    writer.flush()
    assert time.perf_counter() - t0 < 10
    assert {s for s, _, _ in _status().values()} == {"ready"}
    writer.stop()


def test_failed_hosts_can_be_retried_from_the_facade_and_only_they(session):
    names = _new_hosts(2)
    HostRow.update(status="failed", init_task="docker installed", status_detail="E: no package").where(
        HostRow.name == names[0]).execute()
    assert not session.cockpit.retry_init([names[1]]).ok  # it did not fail
    assert session.cockpit.retry_init(names).ok
    assert _status()[names[0]] == ("pending", None, None)


def test_a_batch_ends_when_its_engine_loses_the_lease_and_writes_nothing_more(demo_db):
    db = open_store(demo_db)
    _new_hosts(5)
    writer = StatusWriter(db)
    runner = InitRunner(db, SimInit(seed=1, failure_rate=0, task_s=(1.0, 1.0)), writer, batch=5)
    assert runner.kick()  # a batch of 5 hosts, about 5 s of work
    time.sleep(0.3)
    runner.stop()  # the engine lost its lease
    writer.stop()
    start = time.monotonic()
    while not runner._busy.acquire(timeout=0.1):
        assert time.monotonic() - start < 3, "the batch did not end"
    runner._busy.release()
    assert {s for s, _, _ in _status().values()} == {"initialising"}  # the successor starts them again
    db.close()
