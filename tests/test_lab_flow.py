"""The expansion flow on the lab's real systems: containers on real dockerd engines in network
namespaces, upstream members in a real etcd, nginx with the Lua module in front, Ansible over
SSH for a host borrowed from the shared pool. Requests through nginx reach only live
containers, while a flow scales out and in under load; an engine killed in the middle of a flow
leaves every host's and container's state known."""

from __future__ import annotations

import signal

import httpx
import pytest

from cockpit.lab import state
from cockpit.lab.drive import cockpit_on, run_flow, wait_flow, wait_until
from cockpit.lab.load import SteadyLoad
from cockpit.store.models import ContainerRow, FlowItemRow, HostRow
from tests.lab import lab_up, needs_root, short_dir

pytestmark = [pytest.mark.integration, needs_root]
IDC = "lab-a"


@pytest.fixture
def lab3():
    """A lab of three hosts: two in the web pool, one in the shared pool."""
    with short_dir() as d:
        lab_up(d, hosts=3)
        yield d


def _running(engine, skip: tuple[str, ...] = ()) -> dict[str, str]:
    """Every feed container the engines run (but those of `skip`), by name -> host."""
    out = {}
    for host in set(engine.runtime.engines) - set(skip):
        out.update({c.name: host for c in engine.runtime.list(host) if c.service == "feed" and c.state == "running"})
    return out


def _members(engine) -> set[str]:
    return {m.key for m in engine.front.members("feed")}


def _stored(state_: str = "running") -> dict[str, str]:
    return {c.name: f"{c.address}:{c.ports[0][1]}" for c in ContainerRow.select().where(
        (ContainerRow.service == "feed") & (ContainerRow.state == state_))}


def test_scaling_out_and_in_under_load_sends_requests_only_to_live_containers(lab3):
    with cockpit_on(lab3) as s:
        ck, e = s.cockpit, s.engine
        first = run_flow(ck, "expand", "feed", 4, IDC)
        assert first.state == "done", first.reason
        wait_until(lambda: _members(e) == set(_stored().values()), 10, "nginx has the first containers")
        url = f"{e.front.url}/feed/"
        with SteadyLoad(url, threads=4) as load:
            # +14: more than the two web hosts hold (8 feed each): a shared host is borrowed and initialised
            out = run_flow(ck, "expand", "feed", 14, IDC, timeout_s=180)
            assert out.state == "done", out.reason
            notes = {st.name: st.note for st in out.steps}
            assert "borrowing 1 shared hosts" in notes["hosts"] or "hosts acquired" in notes["hosts"], notes
            assert notes["init"] == "1 hosts ready", [(i.name, i.detail, i.log) for i in ck.flow_items(out.id)
                                                       if i.kind == "host"]
            wait_until(lambda: _members(e) == set(_stored().values()), 10, "nginx follows discovery")
            assert set(_running(e)) == set(_stored()) and len(_stored()) == 18
            shrink = run_flow(ck, "shrink", "feed", 10, IDC, timeout_s=120)
            assert shrink.state == "done", shrink.reason
            wait_until(lambda: _members(e) == set(_stored().values()), 10, "nginx drops the stopped containers")
        counts = load.counts
        assert counts.failed == 0, counts.failures
        assert counts.sent >= 200
        live = set(_running(e))
        assert live == set(_stored()) and len(live) == 8
        # after the shrink, only live containers answer
        with httpx.Client(timeout=3, trust_env=False) as c:
            answered = {c.get(url).text.strip() for _ in range(40)}
        assert answered <= live and len(answered) > 1
        # the borrowed host was initialised over SSH by the real playbook, into its private root
        borrowed = HostRow.get(HostRow.name == "lab-a-shared-0001")
        assert borrowed.status == "ready"
        assert (lab3 / "hosts" / "lab-a-shared-0001" / "fs").exists()


def test_an_engine_killed_mid_flow_marks_its_host_and_every_item_ends_known(lab3):
    st = state.load(lab3)
    victim = "lab-a-web-0002"
    dockerd = next(p for p in st.pieces if p.kind == "dockerd" and p.host == victim)
    with cockpit_on(lab3) as s:
        ck, e = s.cockpit, s.engine
        out = ck.start_flow("expand", "feed", 12, IDC, batch=1, retries=2)
        assert out.ok, out.message
        wait_until(lambda: FlowItemRow.select().where((FlowItemRow.task == out.task) & (FlowItemRow.host == victim)
                                                      & (FlowItemRow.state == "done")).count() >= 1, 60,
                   "the first containers start on the host")
        import os

        os.kill(dockerd.pid, signal.SIGKILL)
        f = wait_flow(ck, out.task, timeout_s=120)
        items = ck.flow_items(out.task)
        assert {i.state for i in items} <= {"done", "failed"}, [(i.name, i.state) for i in items]
        failed = [i for i in items if i.state == "failed"]  # those the dead engine was still to start
        assert f.state == "done", (f.state, f.reason)
        assert all(i.host == victim for i in failed)
        assert all("does not answer" in (i.detail or "") or "not answer" in (i.detail or "") for i in failed)
        # containers that did not start hold nothing; the host is marked down, with why
        assert not ContainerRow.select().where(ContainerRow.name.in_([i.name for i in failed])).exists()
        wait_until(lambda: not HostRow.get(HostRow.name == victim).alive, 20, "the host is marked down")
        # its containers are marked down in discovery and nginx: requests reach only live containers
        host_id = HostRow.get(HostRow.name == victim).id
        on_victim = {f"{c.address}:{c.ports[0][1]}" for c in ContainerRow.select().where(
            (ContainerRow.host == host_id) & (ContainerRow.service == "feed") & (ContainerRow.state == "running"))}
        assert on_victim, "some containers had started on the host before its engine died"
        wait_until(lambda: {m.key for m in e.front.members("feed") if m.down} == on_victim, 15,
                   "nginx marks the dead host's containers down")
        live = set(_running(e, skip=(victim,)))
        with httpx.Client(timeout=3, trust_env=False) as c:
            answers = [c.get(f"{e.front.url}/feed/") for _ in range(30)]
        assert {a.status_code for a in answers} == {200}
        assert {a.text.strip() for a in answers} <= live
