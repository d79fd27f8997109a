"""Figures that do not mislead: hosts that cannot take containers yet are not capacity, and a
container too big for every host says so rather than "the hosts are full"."""

from __future__ import annotations

from cockpit.core.placement import HostTable, Request, place
from cockpit.domain import Host, PlacementRules, Service, Traffic
from cockpit.engine.engine import Engine
from cockpit.store.models import HostRow, LiveRow
from tests.test_engine import FakeClock


def _ordered_hosts(n: int, status: str = "pending") -> None:
    HostRow.insert_many([
        {"name": f"ecs-5-{k:04d}", "idc": "aliyun", "pool": "feed-web", "group": "order-5", "hardware": "ecs-c6",
         "cores": 16, "memory_gb": 32, "disk_gb": 200, "source": "ecs", "zone": "cn-beijing-h",
         "charge_type": "payg", "price": 3.8, "created_t": 0.0, "instance_id": f"i-o5-{k}", "order": 5,
         "status": status}
        for k in range(n)]).execute()


def test_hosts_waiting_for_initialisation_are_not_capacity(session):
    real = FakeClock()
    e = Engine(session.db, session.world, real_clock=real)
    assert e.step_lease()
    before = LiveRow.get_by_id("aliyun/feed-web")
    _ordered_hosts(3800)
    from cockpit.store.db import bump_version

    bump_version()
    real.t += 1
    assert e.tick()
    after = LiveRow.get_by_id("aliyun/feed-web")
    assert after.hosts_total == before.hosts_total + 3800
    assert after.hosts_alive == before.hosts_alive  # up, but not yet able to take containers
    assert abs(after.alloc_pct - before.alloc_pct) < 1.0  # the allocation does not collapse
    e.stop()


def test_the_planner_never_places_on_a_host_that_is_not_initialised(session):
    _ordered_hosts(50)
    c = session.cockpit
    p = c.preview(c.whatif(target="feed", count=200, idc="aliyun"))
    used = {p.before.names[h] for h in p.root.plan.per_host()}
    assert not any(name.startswith("ecs-5-") for name in used)
    i = p.before.names.index("ecs-5-0000")
    assert p.root.plan.reason(i) == "host not ready to take containers (initialisation pending)"


def _host(i: int, cores: int, mem: int) -> Host:
    return Host(i, f"h{i}", "a", "p", "g", "hw", cores, mem, 100, {}, "physical", None, "owned", 0.0)


def test_a_container_bigger_than_any_host_says_so():
    svc = Service("big", "http", "big:1", "p", cpu=48, memory_gb=64, disk_gb=0, ports=(), containers={},
                  traffic=Traffic(1, 1), rules=PlacementRules())
    t = HostTable.build([_host(1, 32, 32), _host(2, 12, 16)], [svc])
    plan = place(t, Request.for_service(svc, 3))
    why = plan.why_unplaced()
    assert "no host is big enough" in why and "48 cores" in why and "the largest passing hosts have 32 cores" in why
    assert "full" not in why
