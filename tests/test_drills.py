"""SIGKILL drills: `cockpit engine` killed in the middle of each kind of write it makes, started
again, and the platform checked for anything lost or done twice. Real processes on the demo
platform; the kill lands while the work is half-way (seen in the store, not guessed by time).

ECS orders have their own drill (test_ecs_crash.py), flows theirs (test_scheduler_failover.py,
test_failover_pg.py); here: pool moves, scale-ins, replication, and autoscaling decisions."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import peewee as pw
import pytest
import yaml

from cockpit.engine.autoscale import ACTOR
from cockpit.store.db import open_store
from cockpit.store.models import (CallRow, ContainerRow, HostRow, PoolMoveRow, ReplicationRow, ReplicationTaskRow,
                                  ScaleDecisionRow, TaskRow)

pytestmark = pytest.mark.integration


class Drill:
    def __init__(self, db: str, home: Path, **config):
        self.db = db
        self.env = {**os.environ, "XDG_DATA_HOME": str(home), "XDG_CONFIG_HOME": str(home), "PYTHONUNBUFFERED": "1"}
        self.config = home / "cockpit.yaml"
        self.config.write_text(yaml.safe_dump({"db": db, "autoscale": False, **config}))
        self.engines: list[subprocess.Popen] = []

    def cli(self, *args: str) -> str:
        r = subprocess.run([sys.executable, "-m", "cockpit", "--config", str(self.config), *args, "--yes"],
                           capture_output=True, text=True, env=self.env, timeout=60)
        assert r.returncode == 0, r.stderr
        return r.stdout

    def engine(self, speed: float = 1) -> subprocess.Popen:
        p = subprocess.Popen([sys.executable, "-m", "cockpit", "--config", str(self.config), "engine", "--speed",
                              str(speed)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=self.env)
        self.engines.append(p)
        return p

    def kill_when(self, engine: subprocess.Popen, midway: Callable[[], bool], what: str, timeout: float = 60) -> None:
        """SIGKILL the engine the moment the store shows the work half-way."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                if midway():
                    break
            except pw.OperationalError:  # the engine holds the write lock a moment: look again
                pass
            assert engine.poll() is None, "the engine died by itself"
            assert time.monotonic() < deadline, f"never saw {what} half-way"
            time.sleep(0.002)
        engine.send_signal(signal.SIGKILL)
        engine.wait()

    def stop(self) -> None:
        for p in self.engines:
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(15)
                except subprocess.TimeoutExpired:
                    p.kill()


def _wait(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


@pytest.fixture
def drill(demo_db, tmp_path) -> Iterator[Drill]:
    d = Drill(demo_db, tmp_path)
    db = open_store(demo_db)
    yield d
    d.stop()
    db.close()


def _calls_half_done(task: int) -> bool:
    states = {s for (s,) in CallRow.select(CallRow.state).where(CallRow.task == task).tuples()}
    return "done" in states and "pending" in states


def _calls_asked(task: int) -> bool:
    """Its calls written (the intent), not all answered."""
    return CallRow.select().where((CallRow.task == task) & (CallRow.state == "pending")).exists()


def _running(service: str | None = None) -> int:
    q = ContainerRow.select().where(ContainerRow.state == "running")
    return (q.where(ContainerRow.service == service) if service else q).count()


def _whole_containers() -> None:
    """Nothing left half-started or half-stopped, no container twice, every call answered."""
    assert ContainerRow.select().where(ContainerRow.state != "running").count() == 0
    names = [n for (n,) in ContainerRow.select(ContainerRow.name).tuples()]
    assert len(names) == len(set(names))
    assert CallRow.select().where(CallRow.state == "pending").count() == 0


def test_a_pool_move_killed_half_way_moves_each_host_once_and_keeps_every_container(drill):
    before = _running()
    in_shared = HostRow.select().where(HostRow.pool == "shared").count()
    drill.cli("move", "--from", "feed-web", "--idc", "yongfeng", "--to", "shared", "--count", "100")
    task = TaskRow.get(TaskRow.kind == "pool_move").id
    drill.kill_when(drill.engine(), lambda: _calls_half_done(task), "the move's containers")
    assert TaskRow.get_by_id(task).state != "done"
    drill.engine()
    _wait(lambda: TaskRow.get_by_id(task).state in ("done", "failed"), 60, "the move")
    assert TaskRow.get_by_id(task).state == "done", TaskRow.get_by_id(task).reason
    moves = list(PoolMoveRow.select().where(PoolMoveRow.task == task))
    assert len(moves) == len({m.host for m in moves}) == 100
    assert HostRow.select().where(HostRow.pool == "shared").count() == in_shared + 100
    moved = [h.id for h in HostRow.select().where(HostRow.name.in_([m.host for m in moves]))]
    assert ContainerRow.select().where(ContainerRow.host.in_(moved)).count() == 0
    _whole_containers()
    assert _running() == before  # every container re-placed, none lost, none twice


def test_a_scale_in_killed_half_way_stops_exactly_what_was_asked(drill):
    before = _running("card")
    drill.cli("scale-in", "--service", "card", "--count", "300")
    task = TaskRow.get(TaskRow.kind == "scale_in").id
    drill.kill_when(drill.engine(), lambda: _calls_asked(task), "the scale-in's stops")
    drill.engine()
    _wait(lambda: TaskRow.get_by_id(task).state in ("done", "failed"), 60, "the scale-in")
    assert TaskRow.get_by_id(task).state == "done", TaskRow.get_by_id(task).reason
    _whole_containers()
    assert before - _running("card") == 300


def test_a_replication_killed_half_way_copies_each_image_once(drill):
    # the demo's 12:05 release of feed reaches the main registry 15 platform minutes in: at x600, 1.5 s
    drill.kill_when(drill.engine(speed=600), lambda: ReplicationTaskRow.select().where(
        ReplicationTaskRow.state == "succeeded").exists() and ReplicationTaskRow.select().where(
        ReplicationTaskRow.state.in_(("pending", "running"))).exists(), "a replication", timeout=90)
    ex = ReplicationRow.select().order_by(ReplicationRow.id).first()
    drill.engine(speed=600)
    _wait(lambda: ReplicationRow.get_by_id(ex.id).state not in ("pending", "running"), 90, "the replication")
    ex = ReplicationRow.get_by_id(ex.id)
    assert ex.state == "succeeded", ex.error
    tasks = list(ReplicationTaskRow.select().where(ReplicationTaskRow.execution == ex.id))
    keys = [(t.repo, t.tag, t.destination) for t in tasks]
    assert len(keys) == len(set(keys)) == ex.tasks_total and {t.state for t in tasks} == {"succeeded"}
    assert ex.bytes_moved == sum(t.bytes_moved for t in tasks) == ex.bytes_needed  # nothing counted twice


def test_autoscaling_killed_between_decisions_decides_each_moment_once(demo_db, tmp_path):
    d = Drill(demo_db, tmp_path, autoscale=True)
    db = open_store(demo_db)
    try:
        first = d.engine(speed=600)  # the 12:30 peak is 40 platform minutes in: 4 s
        d.kill_when(first, lambda: ScaleDecisionRow.select().count() >= 2, "the autoscaler's decisions", timeout=90)
        decided = ScaleDecisionRow.select().count()
        d.engine(speed=600)
        _wait(lambda: ScaleDecisionRow.select().count() >= decided + 2, 90, "decisions after the restart")
        d.stop()
        decisions = list(ScaleDecisionRow.select())
        moments = [(r.service, r.t) for r in decisions]
        assert len(moments) == len(set(moments)), "a moment was decided twice"
        # each task the autoscaler queued belongs to exactly one decision, written with it
        tasks = {t.id for t in TaskRow.select().where((TaskRow.actor == ACTOR) & TaskRow.kind.in_(("scale", "scale_in")))}
        carried = [r.task for r in decisions if r.task is not None]
        assert len(carried) == len(set(carried)) and set(carried) == tasks
    finally:
        d.stop()
        db.close()
