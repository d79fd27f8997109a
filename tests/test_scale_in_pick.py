"""A big scale-in stays inside the engine's lease: which containers it stops is decided with a heap
(not a sort of every host per container), its calls are made and recorded 500 at a time, and
its rows are settled a chunk at a time. What it stops, and in which order, is what it always was:
the old selection is kept here as the reference."""

from __future__ import annotations

import math
from collections import defaultdict

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cockpit.engine.engine import sim_runtime
from cockpit.engine.outside import BATCH, due, perform, record
from cockpit.engine.scale import crowded_first
from cockpit.engine.state import current_table
from cockpit.engine.tasks import _kinds
from cockpit.store.errors import StoreError
from cockpit.store.models import CallRow, ContainerRow, EventRow, HostRow, TaskRow
from tests.test_outside import engine_for


def reference_pick(have: np.ndarray, load: np.ndarray, count: int) -> dict[int, int]:
    """The selection as it was: every host sorted again for each container stopped."""
    have = have.copy()
    take: dict[int, int] = defaultdict(int)
    for _ in range(count):
        i = int(np.lexsort((-load, -have))[0])
        have[i] -= 1
        take[i] += 1
    return take


def reference_victims(service: str, count: int, idc: str | None = None) -> list[str]:
    """The containers the old scale-in stopped, in the order it asked for them: the newest first,
    host by host, one query per host."""
    table, _, _ = current_table()
    col = table.column(service)
    mask = table.counts[:, col] > 0
    if idc:
        mask &= table.idc == idc
    have = table.counts[:, col].copy()
    have[~mask] = 0
    load = (table.cpu_used / table.cpu_cap + table.mem_used / table.mem_cap) / 2
    names = []
    for i, n in reference_pick(have, load, count).items():
        q = (ContainerRow.select(ContainerRow.name)
             .where((ContainerRow.host == int(table.ids[i])) & (ContainerRow.service == service)
                    & (ContainerRow.state == "running"))
             .order_by(ContainerRow.id.desc()).limit(n))
        names += [name for (name,) in q.tuples()]
    return names


# loads from a few values, so that hosts tie; NaN is a host of capacity 0 in a damaged store
LOADS = st.sampled_from([0.0, 0.25, 0.5, 0.5000001, 1.0, 2.0, math.inf, math.nan])


@st.composite
def platforms(draw) -> tuple[np.ndarray, np.ndarray, int]:
    n = draw(st.integers(1, 12))
    have = np.array(draw(st.lists(st.integers(0, 6), min_size=n, max_size=n)), dtype=np.int32)
    if have.sum() == 0:
        have[draw(st.integers(0, n - 1))] = 1
    load = np.array(draw(st.lists(LOADS, min_size=n, max_size=n)), dtype=np.float64)
    return have, load, draw(st.integers(1, int(have.sum())))


@settings(max_examples=400, deadline=None)
@given(platforms())
def test_the_heap_stops_as_many_on_the_same_hosts_in_the_same_order_as_the_sort_did(p):
    have, load, count = p
    got = crowded_first(have, load, count)
    assert list(got.items()) == list(reference_pick(have, load, count).items())
    assert sum(got.values()) == count


def test_a_scale_in_asks_to_stop_the_same_containers_in_the_same_order_as_before(session):
    e, _ = engine_for(session)
    for service, count, idc in (("feed", 700, None), ("card", 45, "yongfeng")):
        expected = reference_victims(service, count, idc)
        assert session.cockpit.scale_in(service, count, idc=idc).ok
        task = TaskRow.select().order_by(TaskRow.id.desc()).get()
        assert e.runner._prepare(task.id, _kinds()["scale_in"])
        asked = [c.request["name"] for c in CallRow.select().where(CallRow.task == task.id).order_by(CallRow.id)]
        assert asked == expected
        e.run_tasks()
        assert TaskRow.get_by_id(task.id).state == "done"
    e.stop()


def test_a_scale_in_of_more_than_a_batch_is_made_500_calls_at_a_time_and_finishes(session):
    e, _ = engine_for(session)
    before = ContainerRow.select().where(ContainerRow.service == "feed").count()
    assert session.cockpit.scale_in("feed", 1200).ok
    task = TaskRow.get()
    assert e.runner._prepare(task.id, _kinds()["scale_in"])
    first = due(task.id, e.real_clock())
    assert len(first) == BATCH and [c.id for c in first] == sorted(c.id for c in first)
    e.run_tasks()
    task = TaskRow.get_by_id(task.id)
    assert task.state == "done" and task.progress["feed"]["stopped"] == 1200
    assert ContainerRow.select().where(ContainerRow.service == "feed").count() == before - 1200
    assert ContainerRow.select().where(ContainerRow.state != "running").count() == 0
    assert {s for (s,) in CallRow.select(CallRow.state).where(CallRow.task == task.id).tuples()} == {"done"}
    e.stop()


def test_an_engine_that_dies_between_batches_is_followed_by_one_that_stops_only_the_rest(session):
    e, real = engine_for(session)
    before = ContainerRow.select().where(ContainerRow.service == "feed").count()
    assert session.cockpit.scale_in("feed", 1100).ok
    task = TaskRow.get()
    assert e.runner._prepare(task.id, _kinds()["scale_in"])
    answers = perform(due(task.id, real()), e.handlers())
    with e.lease.fenced():
        record(answers, real())
    runtime = e.runtime
    e.lease.release()  # it dies here: 500 stopped and recorded, 600 not yet asked
    e.active = False
    assert CallRow.select().where((CallRow.task == task.id) & (CallRow.state == "done")).count() == BATCH
    successor, _ = engine_for(session, runtime=runtime, real=real)
    successor.run_tasks()
    task = TaskRow.get_by_id(task.id)
    assert task.state == "done" and task.progress["feed"]["stopped"] == 1100
    assert ContainerRow.select().where(ContainerRow.service == "feed").count() == before - 1100
    assert max(c.attempts for c in CallRow.select().where(CallRow.task == task.id)) == 1  # none made twice
    e.stop()
    successor.stop()


def test_containers_that_could_not_be_stopped_run_on_and_the_rest_are_gone(session):
    e, real = engine_for(session)
    runtime = e.runtime
    feed_hosts = {h for (h,) in ContainerRow.select(ContainerRow.host).where(ContainerRow.service == "feed")
                  .distinct().tuples()}
    down = {n for (n,) in HostRow.select(HostRow.name).where(HostRow.id.in_(sorted(feed_hosts)[::3])).tuples()}
    runtime.unreachable |= down  # a third of the hosts' engines do not answer
    before = ContainerRow.select().where(ContainerRow.service == "feed").count()
    assert session.cockpit.scale_in("feed", 1500).ok
    for _ in range(10):  # the back-offs, until the calls to the dead engines give up
        e.run_tasks()
        real.t += 120
    task = TaskRow.get()
    stopped = task.progress["feed"]["stopped"]
    assert task.state == "done" and 0 < stopped < 1500
    assert ContainerRow.select().where(ContainerRow.service == "feed").count() == before - stopped
    assert ContainerRow.select().where(ContainerRow.state != "running").count() == 0
    on_down = CallRow.select().where((CallRow.task == task.id) & CallRow.target.in_(down)).count()
    assert stopped == 1500 - on_down
    assert EventRow.select().where(EventRow.message.contains(f"({on_down} could not be stopped)")).count() == 1
    e.stop()


def test_a_scale_out_of_more_than_a_batch_leaves_every_container_with_its_own_address_and_ports(session):
    e, _ = engine_for(session)
    c = session.cockpit
    outcome = c.apply_plan(c.preview(c.whatif(target="feed", count=600)))
    assert outcome.ok
    e.run_tasks()
    assert TaskRow.get_by_id(outcome.task).state == "done"
    started = {call.key: call.result for call in CallRow.select().where(
        (CallRow.task == outcome.task) & (CallRow.kind == "container.start"))}
    assert len(started) >= 600
    rows = {r.name: r for r in ContainerRow.select().where(ContainerRow.task == outcome.task)}
    assert rows.keys() == started.keys()
    for name, r in rows.items():
        assert (r.state, r.ref, r.address, r.ports) == ("running", started[name]["ref"], started[name]["address"],
                                                         started[name]["ports"])
    e.stop()


def test_the_simulated_runtime_adopts_every_running_container_as_the_store_has_it(session):
    runtime = sim_runtime()
    names = dict(HostRow.select(HostRow.id, HostRow.name).tuples())
    rows = list(ContainerRow.select())
    assert len(rows) > 1000
    for r in rows:
        info = runtime.inspect(names[r.host], r.name)
        assert (info.service, info.address, info.state) == (r.service, r.address, "running")
        assert info.ports == tuple(tuple(p) for p in r.ports)


def test_a_damaged_ports_value_is_named_when_the_engine_adopts_the_containers(session):
    first = ContainerRow.select(ContainerRow.id).order_by(ContainerRow.id).scalar()
    # written raw: the model would encode any value as JSON
    ContainerRow._meta.database.execute_sql("UPDATE container SET ports = '[[8080, 31' WHERE id = ?", (first,))
    with pytest.raises(StoreError, match="container.ports"):
        sim_runtime()
