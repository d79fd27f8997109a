"""Headroom what-if: lose an IDC, a pool or a hardware class, now or at tonight's peak, and see
whether the rest absorbs its containers and what it would take. Answers worked out by hand."""

from __future__ import annotations

import json
import math
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cockpit import cli_args as arg
from cockpit import cli_headroom
from cockpit.core.headroom import HeadroomError, Loss, containers_needed, headroom, lost_mask, peak_time
from cockpit.core.placement import HostTable
from cockpit.core.whatif import Catalog
from cockpit.domain import (Charge, EcsSpec, Hardware, Host, Peak, PlacementRules, Service, Template, Traffic,
                            TrafficCurve)
from tests.conftest import make_cfg

WORLD = Path(__file__).resolve().parent / "data" / "headroom-world.yaml"
TZ = timezone(timedelta(hours=8))


def host(i: int, name: str, idc: str, hardware: str, pool: str = "web", cores: int = 16, mem: int = 64) -> Host:
    return Host(i, name, idc, pool, "g", hardware, cores, mem, 500, {}, "physical", None, "owned", 0.0)


def web(max_per_host: int | None = None) -> Service:
    return Service("web", "http", "web:1", "web", 2.0, 4.0, 0.0, (), {}, Traffic(1000, 4),
                   PlacementRules(max_per_host=max_per_host))


ECS = EcsSpec("ali", "ecs.c6.4xlarge", "m-1", "ecs", Charge("payg", 3.8), ("z",), ("sg",), ("vsw",))
HARDWARE = {"old": Hardware("old", 16, 64, 500), "new": Hardware("new", 16, 64, 500),
            "ecs": Hardware("ecs", 16, 32, 200)}


def platform(svc: Service) -> tuple[HostTable, Catalog]:
    """4 web hosts of 16 cores / 64 GB: h1, h2 old in IDC x; h3, h4 new in IDC y; 5 web containers
    (2 cores, 4 GB) on each: 10 of 16 cores used, 6 free. One shared-pool host of 8 cores in y."""
    hosts = [host(1, "h1", "x", "old"), host(2, "h2", "x", "old"), host(3, "h3", "y", "new"),
             host(4, "h4", "y", "new"), host(5, "s1", "y", "new", pool="shared", cores=8, mem=32)]
    containers = [(h, "web") for h in (1, 2, 3, 4) for _ in range(5)]
    table = HostTable.build(hosts, [svc], containers)
    cat = Catalog({"web": svc}, {1: Template(1, "web-expand", "web", "web", "new", "web:1", ecs=ECS)}, HARDWARE,
                  "shared")
    return table, cat


NOW = {"web": 1000.0}


def test_losing_a_hardware_class_now_replaces_its_containers_then_borrows_the_shared_pool():
    table, cat = platform(web())
    v = headroom(table, cat, Loss("hardware", "old"), NOW, NOW, when=0.0)
    # Lost: h1 and h2, 5 + 5 = 10 containers. Survivors h3, h4 have 16 - 10 = 6 free cores each,
    # 6 // 2 = 3 containers each: 6 placed, 10 - 6 = 4 unplaced. The shared host's 8 cores take
    # 8 // 2 = 4 (16 GB of its 32): all 4, no ECS.
    (s,) = v.services
    assert (s.demand.running, s.demand.lost, s.demand.needed, s.demand.to_place) == (20, 10, 20, 10)
    assert (s.placed, s.unplaced) == (6, 4)
    assert {v.names[h]: n for h, n in s.plan.per_host().items()} == {"h3": 3, "h4": 3}
    assert (s.need.shared_hosts, s.need.shared_containers, s.need.ecs_hosts) == (1, 4, 0)
    assert not v.absorbed and v.lost_hosts == ["h1", "h2"]
    assert (v.shared_hosts, v.ecs_hosts, v.cost_per_month) == (1, 0, 0.0)
    # Web pool now: 40 of 64 cores = 62.5%; after: h3, h4 at 8 containers = 16 of 16 cores = 100%.
    web_pool = next(p for p in v.pools if p.pool == "web")
    assert (web_pool.hosts_now, web_pool.hosts_lost) == (4, 2)
    assert web_pool.util_now == pytest.approx(0.625) and web_pool.util_after == pytest.approx(1.0)
    assert web_pool.free_cores_after == 0.0
    assert table.counts.sum() == 20 and table.alive.all()  # the platform itself is untouched


def test_the_per_host_limit_holds_on_survivors_shared_hosts_and_new_ecs_hosts():
    table, cat = platform(web(max_per_host=6))
    v = headroom(table, cat, Loss("idc", "x"), NOW, NOW, when=0.0)
    # Lost: IDC x = h1, h2, 10 containers. h3, h4 hold 5 each, at most 6 per host: 1 more each,
    # 2 placed, 8 unplaced. The shared host: 8 cores // 2 = 4 (limit 6): 4. Left 4 for ECS: an
    # empty ecs host takes min(16 // 2, 32 // 4, 6) = 6, so ceil(4 / 6) = 1 host at 3.8 an hour,
    # 3.8 x 730 = 2774 a month.
    (s,) = v.services
    assert (s.placed, s.unplaced) == (2, 8)
    assert (s.need.shared_containers, s.need.ecs_containers, s.need.ecs_hosts) == (4, 4, 1)
    assert s.need.ecs_instance_type == "ecs.c6.4xlarge"
    assert v.cost_per_month == pytest.approx(2774.0)
    assert set(s.plan.full_reasons.values()) == {"6 web already (max 6 per host)"}


def test_at_the_peak_the_demand_is_scaled_with_traffic():
    table, cat = platform(web())
    v = headroom(table, cat, Loss("idc", "x"), NOW, {"web": 1500.0}, at="peak", when=0.0)
    # needed = ceil(20 x 1500 / 1000) = 30; surviving = 20 - 10 = 10; to place 30 - 10 = 20.
    # Survivors take 3 + 3 = 6: 14 unplaced. Shared host: 4. ECS: 10 left, 8 a host (16 // 2,
    # 32 // 4): ceil(10 / 8) = 2 hosts, 2 x 2774 = 5548 a month.
    (s,) = v.services
    assert (s.demand.needed, s.demand.to_place, s.placed, s.unplaced) == (30, 20, 6, 14)
    assert (s.need.shared_containers, s.need.ecs_containers, s.need.ecs_hosts) == (4, 10, 2)
    assert v.cost_per_month == pytest.approx(5548.0)
    assert (v.to_place, v.unplaced, v.ecs_hosts) == (20, 14, 2)


def test_at_the_peak_services_that_lost_nothing_still_need_their_peak_count():
    table, cat = platform(web())
    # A hardware class the world knows but no host has: nothing lost. At the peak web needs
    # ceil(20 x 1.5) = 30: 10 more; 4 hosts x 3 free = 12 >= 10: absorbed.
    v = headroom(table, cat, Loss("hardware", "gpu"), NOW, {"web": 1500.0}, at="peak", when=0.0, known=["gpu"])
    (s,) = v.services
    assert (s.demand.lost, s.demand.to_place, s.placed, s.unplaced) == (0, 10, 10, 0)
    assert v.absorbed and v.lost_hosts == []
    # Losing it now needs nothing at all.
    assert headroom(table, cat, Loss("hardware", "gpu"), NOW, NOW, when=0.0, known=["gpu"]).services == []


def test_losing_a_pool_without_room_elsewhere_goes_to_ecs():
    table, cat = platform(web())
    v = headroom(table, cat, Loss("pool", "web"), NOW, NOW, when=0.0)
    # All 20 lost, no web host left: the shared host takes 4, ECS 16 at 8 a host = 2 hosts.
    (s,) = v.services
    assert (s.placed, s.unplaced, s.need.shared_containers, s.need.ecs_hosts) == (0, 20, 4, 2)
    assert next(p for p in v.pools if p.pool == "web").util_after == 0.0


@pytest.mark.parametrize("running, now, at, want", [
    (20, 1000, 1500, 30),  # 20 x 1.5
    (3, 1000, 1001, 4),  # 3.003: rounded up
    (3, 1000, 1000 * (1 + 1e-12), 3),  # float noise on an exact multiple adds nothing
    (20, 1000, 500, 10),  # traffic falling: fewer needed
    (5, 0, 100, 5),  # no traffic now: nothing to scale with, the count stays
    (0, 1000, 2000, 0),
])
def test_containers_needed_keeps_cpu_per_container_as_now(running, now, at, want):
    assert containers_needed(running, now, at) == want


def test_a_service_whose_traffic_falls_at_the_peak_places_only_what_it_lacks():
    table, cat = platform(web())
    v = headroom(table, cat, Loss("idc", "x"), NOW, {"web": 400.0}, at="peak", when=0.0)
    # needed = ceil(20 x 0.4) = 8 <= 10 surviving: nothing to place, absorbed.
    (s,) = v.services
    assert (s.demand.lost, s.demand.needed, s.demand.to_place) == (10, 8, 0) and v.absorbed


@pytest.mark.parametrize("loss, message", [
    (Loss("idc", "z"), "no idc named 'z' (known: x, y)"),
    (Loss("pool", "db"), "no pool named 'db' (known: shared, web)"),
    (Loss("hardware", "gpu"), "no hardware named 'gpu' (known: new, old)"),
    (Loss("rack", "r1"), "'rack' is not one of idc, pool, hardware"),
])
def test_an_unknown_scope_names_the_known_ones(loss, message):
    table, _ = platform(web())
    with pytest.raises(HeadroomError, match=message.replace("(", r"\(").replace(")", r"\)")):
        lost_mask(table, loss)


def _at(h: int, m: int, day: int = 26) -> float:
    return datetime(2026, 11, day, h, m, tzinfo=TZ).timestamp()


CURVE = TrafficCurve(timedelta(hours=8), 0.15, 0.45, (Peak(12.5, 0.85, 0.9), Peak(22.5, 1.0, 1.1)))


@pytest.mark.parametrize("now, want", [
    (_at(11, 50), _at(22, 30)),  # tonight, not the lower 12:30 peak
    (_at(22, 30), _at(22, 30)),  # at the peak: now
    (_at(23, 0), _at(22, 30, day=27)),  # past it: tomorrow's
])
def test_the_peak_is_the_next_highest_point_of_the_daily_curve(now, want):
    assert peak_time(CURVE, now) == want


@settings(max_examples=60, deadline=None)
@given(per_host=st.lists(st.integers(0, 8), min_size=4, max_size=4), lose=st.sampled_from(
    [("idc", "x"), ("idc", "y"), ("hardware", "old"), ("hardware", "new"), ("pool", "web")]),
    ratio=st.floats(0.2, 3.0), limit=st.one_of(st.none(), st.integers(1, 8)))
def test_every_container_to_place_is_placed_or_accounted_for(per_host, lose, ratio, limit):
    svc = web(limit)
    hosts = [host(1, "h1", "x", "old"), host(2, "h2", "x", "old"), host(3, "h3", "y", "new"),
             host(4, "h4", "y", "new"), host(5, "s1", "y", "new", pool="shared", cores=8, mem=32)]
    containers = [(i + 1, "web") for i, n in enumerate(per_host) for _ in range(min(n, limit or n))]
    table = HostTable.build(hosts, [svc], containers)
    _, cat = platform(svc)
    v = headroom(table, cat, Loss(*lose), NOW, {"web": 1000.0 * ratio}, at="peak", when=0.0)
    lost = lost_mask(table, Loss(*lose))
    for s in v.services:
        assert s.placed + s.unplaced == s.demand.to_place
        assert s.need.shared_containers + s.need.ecs_containers + s.need.nowhere == s.unplaced
        assert not any(lost[h] for h in s.plan.per_host())  # nothing lands on a lost host
        if limit is not None:  # survivors keep the limit with what they already run
            for h, n in s.plan.per_host().items():
                assert table.counts[h, 0] + n <= limit
    assert v.absorbed == (v.unplaced == 0)


# --- the command and the facade on a store ---------------------------------------------------


def _cli(argv: list[str]):
    p = arg.Parser(prog="cockpit")
    sub = p.add_subparsers(dest="command", parser_class=arg.SubParser)
    cli_headroom.add_parser(sub)
    return p.parse_args(argv)


def _run(tmp_path, capsys, *argv: str) -> tuple[int, str, str]:
    cfg = make_cfg(str(tmp_path / "h.db"), world=str(WORLD))
    code = cli_headroom.run(_cli(["headroom", *argv]), cfg)
    out = capsys.readouterr()
    return code, out.out, out.err


def test_cli_json_losing_an_idc_now(tmp_path, capsys):
    code, out, _ = _run(tmp_path, capsys, "--idc", "a", "--json")
    assert code == 0
    doc = json.loads(out)
    # The world: a and b each 2 web hosts of 16 cores with 6 web containers (12 cores); b has an
    # 8-core shared host. Losing a: 12 to place; b's hosts have 4 free cores each: 2 + 2 = 4;
    # the shared host takes 8 // 2 = 4; ECS the last 4 (8 a host): 1 x 3.8 x 730 = 2774 a month.
    assert doc["lost"] == {"kind": "idc", "name": "a", "hosts": ["a-web-0001", "a-web-0002"]}
    assert (doc["at"], doc["absorbed"], doc["to_place"], doc["unplaced"]) == ("now", False, 12, 8)
    assert (doc["shared_hosts"], doc["ecs_hosts"], doc["cost_per_month"]) == (1, 1, 2774.0)
    (s,) = doc["services"]
    assert {k: s[k] for k in ("service", "running", "lost", "needed", "to_place", "placed", "unplaced")} == {
        "service": "web", "running": 24, "lost": 12, "needed": 24, "to_place": 12, "placed": 4, "unplaced": 8}
    assert s["placements"] == {"b-web-0001": 2, "b-web-0002": 2}
    assert s["needed_hosts"]["ecs_instance_type"] == "ecs.c6.4xlarge"
    pools = {p["pool"]: p for p in doc["pools"]}
    # web now 48 of 64 cores = 75%; after: b's 2 hosts full, 100%.
    assert (pools["web"]["hosts_left"], pools["web"]["util_now"], pools["web"]["util_after"]) == (2, 0.75, 1.0)
    assert doc["local_time"] == "2026-11-26T11:50:00+08:00"


def test_cli_json_at_the_peak(tmp_path, capsys):
    code, out, _ = _run(tmp_path, capsys, "--idc", "a", "--at", "peak", "--json")
    doc = json.loads(out)
    assert code == 0 and doc["local_time"] == "2026-11-26T22:30:00+08:00"
    (s,) = doc["services"]
    # needed comes from the traffic at 11:50 and 22:30; the rest follows by hand from it.
    assert s["needed"] == math.ceil(24 * s["qps_at"] / s["qps_now"]) > 24
    assert s["to_place"] == s["needed"] - 12 and s["placed"] == 4
    left = s["to_place"] - 4 - 4  # b's survivors take 4, the shared host 4
    assert s["needed_hosts"]["ecs_hosts"] == math.ceil(left / 8)


def test_cli_text_says_whether_it_is_absorbed(tmp_path, capsys):
    code, out, _ = _run(tmp_path, capsys, "--hardware", "small")
    # The shared host holds nothing: losing it moves nothing.
    assert code == 0 and out.splitlines()[0].endswith(": absorbed")
    code, out, _ = _run(tmp_path, capsys, "--idc", "a")
    assert "NOT absorbed: 8 containers do not fit" in out and "1 x ecs.c6.4xlarge" in out


@pytest.mark.parametrize("argv, message", [
    (["--idc", "c"], "cockpit headroom: error: no idc named 'c' (known: a, ali, b)"),
    (["--pool", "db"], "cockpit headroom: error: no pool named 'db' (known: shared, web)"),
    (["--hardware", "gpu"], "cockpit headroom: error: no hardware named 'gpu' (known: ecs, small, std)"),
])
def test_cli_unknown_scope_is_one_line_naming_the_known_values(tmp_path, capsys, argv, message):
    code, out, err = _run(tmp_path, capsys, *argv)
    assert code == 2 and out == "" and err == message + "\n"


@pytest.mark.parametrize("argv, message", [
    (["--idc", "a", "--pool", "web"], "argument --pool: not allowed with argument --idc"),
    ([], "one of the arguments --idc --pool --hardware is required"),
    (["--idc", "a", "--at", "noon"], "argument --at: invalid choice: 'noon'"),
    (["--idc", "a\nb"], "argument --idc: expected a name"),
])
def test_cli_bad_arguments_exit_2_on_one_line(capsys, argv, message):
    with pytest.raises(SystemExit) as e:
        _cli(["headroom", *argv])
    err = capsys.readouterr().err
    assert e.value.code == 2 and message in err and err.count("\n") == 1


def test_losing_an_idc_of_the_demo_replaces_exactly_what_it_ran(session):
    from cockpit.engine.facade_headroom import headroom as read

    v = read(session.cockpit, "idc", "tucheng", "now")
    table = session.cockpit.hosts()
    ran = {}
    for h in table:
        if h.idc == "tucheng" and h.alive and h.status == "ready":
            for name, n in h.services.items():
                ran[name] = ran.get(name, 0) + n
    assert {s.demand.service: s.demand.to_place for s in v.services} == ran
    for s in v.services:
        assert s.placed + s.unplaced == s.demand.lost
        assert s.need.shared_containers + s.need.ecs_containers + s.need.nowhere == s.unplaced
