"""Placement, checked by properties: capacity is never exceeded, every filter holds, the fast planner
makes exactly the one-by-one reference's choices, and spread and binpack behave as their names say.

The checks evaluate constraints with their own small evaluator, not the planner's filter code."""

from __future__ import annotations

import re

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from cockpit.core.dependencies import CycleError, expand
from cockpit.core.placement import HostTable, Request, parse_constraints, place
from cockpit.core.placement.reference import place_one_by_one
from cockpit.domain import Constraint, Dependency, Host, PlacementRules, Service, Template, Traffic

HARDWARE = [(12, 16, 600), (32, 32, 1200), (32, 128, 24000), (16, 32, 200), (8, 8, 100)]
SERVICES = ["web", "db", "cache"]


def svc(name: str, cpu=1.0, mem=2.0, disk=0.0, **rules) -> Service:
    host_ports = rules.pop("host_ports", ())
    return Service(name, "http", "img:1", "p0", cpu, mem, disk, (), {}, Traffic(1, 1), PlacementRules(**rules),
                   host_ports)


@st.composite
def tables(draw, min_hosts=1, max_hosts=40):
    n = draw(st.integers(min_hosts, max_hosts))
    hosts = []
    for i in range(n):
        c, m, d = draw(st.sampled_from(HARDWARE))
        hosts.append(Host(
            id=i + 1, name=f"h{i:03d}", idc=draw(st.sampled_from(["a", "b"])), pool=draw(st.sampled_from(["p0", "p1"])),
            group="g", hardware=f"hw{c}", cores=c, memory_gb=m, disk_gb=d,
            labels={"role": draw(st.sampled_from(["web", "rpc"])), "gen": draw(st.sampled_from(["old", "new"])),
                    "disk": draw(st.sampled_from(["ssd", "hdd"]))},
            source="physical", zone=None, charge_type="owned", price=0, alive=draw(st.integers(0, 9)) > 0,
        ))
    existing_specs = [svc("db", 2, 4, host_ports=(5432,)), svc("cache", 1, 8)]
    containers = []
    for h in hosts:
        for s in existing_specs:
            for _ in range(draw(st.integers(0, 2))):
                containers.append((h.id, s.name))
    table = HostTable.build(hosts, existing_specs, [])
    # add existing containers only where they fit, as a real platform would have them
    for host_id, name in containers:
        i = host_id - 1
        s = next(x for x in existing_specs if x.name == name)
        r = Request.for_service(s, 1, pool=None)
        col = table.column(name)
        if (table.cpu_used[i] + r.cpu <= table.cpu_cap[i] and table.mem_used[i] + r.mem <= table.mem_cap[i]
                and not (s.host_ports and table.counts[i, col] > 0)):
            table.cpu_used[i] += r.cpu
            table.mem_used[i] += r.mem
            table.counts[i, col] += 1
    return table


@st.composite
def requests(draw):
    constraints = draw(st.lists(st.sampled_from([
        Constraint("role", "==", "web"), Constraint("gen", "!=", "old"), Constraint("disk", ">=", "1T"),
        Constraint("cores", ">", "12"), Constraint("gen", "in", "old,new"), Constraint("memory", "<=", "32"),
        Constraint("disk", "==", "ssd"), Constraint("disk", "!=", "ssd"), Constraint("label.gen", "==", "new"),
        Constraint("label.disk", "in", "hdd,nvme"), Constraint("disk", "in", "600,1.171875T"),
    ]), max_size=2, unique=True))
    rules = {}
    if draw(st.booleans()):
        rules["max_per_host"] = draw(st.integers(1, 4))
    if draw(st.integers(0, 3)) == 0:
        rules["never_with"] = ("db",)
    if draw(st.integers(0, 4)) == 0:
        rules["only_with"] = ("cache",)
    host_ports = (5432,) if draw(st.integers(0, 5)) == 0 else ()
    s = svc("web", draw(st.sampled_from([0.5, 1, 2, 4])), draw(st.sampled_from([1, 2, 4, 8])),
            draw(st.sampled_from([0, 10, 100])), constraints=tuple(constraints), host_ports=host_ports, **rules)
    strategy = draw(st.sampled_from(["spread", "binpack", "random", "custom"]))
    weights = (("spread", 0.5), ("random", 0.3), ("label:gen=new", 0.2), ("with:web", 0.1)) if strategy == "custom" else ()
    return Request.for_service(
        s, draw(st.integers(0, 120)), idc=draw(st.sampled_from([None, "a", "b"])),
        pool=draw(st.sampled_from([None, "p0"])), strategy=strategy, weights=weights, seed=draw(st.integers(0, 5)),
    )


def _label_ok(labels: dict, cores: int, mem: int, disk: int, c: Constraint) -> bool:
    """An independent evaluator for the constraints the tests use: label.KEY is always a label;
    a capacity key compared with a word (disk == ssd) is the label of that name."""
    numbers = {"cores": cores, "memory": mem, "disk": disk}

    def amount(v: str) -> float:
        return float(v[:-1]) * 1024 if v.endswith("T") else float(v)

    if c.key in numbers and c.value.split(",")[0][0].isdigit():
        value = numbers[c.key]
        if c.op == "in":
            return value in [amount(v) for v in c.value.split(",")]
        want = amount(c.value)
        return {">=": value >= want, ">": value > want, "<=": value <= want, "<": value < want,
                "==": value == want, "!=": value != want}[c.op]
    have = labels.get(c.key.removeprefix("label."))
    if c.op == "in":
        return have in c.value.split(",")
    return (have == c.value) if c.op == "==" else (have != c.value)


SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(tables(), requests())
def test_plans_respect_capacity_and_every_filter(table, r):
    before = table.copy()
    after = table.copy()
    plan = place(after, r)
    assert (after.cpu_used <= after.cpu_cap).all()
    assert (after.mem_used <= after.mem_cap).all()
    assert (after.disk_used <= after.disk_cap).all()
    web = after.column("web")
    db = before.column("db")
    cache = before.column("cache")
    for h, n in plan.per_host().items():
        assert before.alive[h]
        assert r.idc is None or before.idc[h] == r.idc
        assert r.pool is None or before.pool[h] == r.pool
        for c in r.constraints:
            assert _label_ok(before.labels[h], before.cpu_cap[h] // 1000, before.mem_cap[h] // 1024,
                             before.disk_cap[h] // 1024, c), (c, before.labels[h])
        if "db" in r.never_with:
            assert before.counts[h, db] == 0
        if "cache" in r.only_with:
            assert before.counts[h, cache] > 0
        if r.max_per_host is not None:
            assert after.counts[h, web] <= r.max_per_host
        if r.host_ports:
            assert after.counts[h, web] <= 1 and before.counts[h, db] == 0
    assert plan.placed + plan.unplaced == r.count
    web_before = before.column("web")  # (first: it may widen `counts`)
    assert plan.placed == after.counts[:, web].sum() - before.counts[:, web_before].sum()


@SETTINGS
@given(tables(), requests())
def test_the_fast_plan_is_the_one_by_one_reference_plan(table, r):
    fast, ref = table.copy(), table.copy()
    a = place(fast, r)
    b = place_one_by_one(ref, r)
    assert np.array_equal(a.sequence(), b.sequence())
    assert (fast.cpu_used == ref.cpu_used).all() and (fast.counts == ref.counts).all()
    assert a.why_unplaced() == b.why_unplaced()


@SETTINGS
@given(tables(), requests())
def test_plans_are_deterministic(table, r):
    assert np.array_equal(place(table.copy(), r).sequence(), place(table.copy(), r).sequence())


def identical_hosts(n: int, cores=32, mem=32) -> HostTable:
    hosts = [Host(i + 1, f"h{i:03d}", "a", "p0", "g", "new", cores, mem, 1000, {}, "physical", None, "owned", 0)
             for i in range(n)]
    return HostTable.build(hosts, [])


@SETTINGS
@given(st.integers(1, 60), st.integers(0, 400), st.sampled_from([(1, 2), (2, 4), (4, 2), (0.5, 1)]))
def test_spread_keeps_identical_hosts_within_one(n_hosts, count, shape):
    t = identical_hosts(n_hosts)
    r = Request.for_service(svc("web", *shape), count, pool=None, strategy="spread")
    plan = place(t, r)
    per = t.counts[:, t.column("web")]
    if plan.unplaced == 0:
        assert per.max() - per.min() <= 1
    else:  # every host is full
        assert (per == per.max()).all()


@SETTINGS
@given(st.integers(1, 30), st.integers(0, 400), st.sampled_from([(1, 2), (2, 4), (4, 2), (0.5, 1)]))
def test_binpack_fills_a_host_before_it_opens_another(n_hosts, count, shape):
    t = identical_hosts(n_hosts)
    r = Request.for_service(svc("web", *shape), count, pool=None, strategy="binpack")
    plan = place(t, r)
    per_host_max = min(int(32 / shape[0]), int(32 / shape[1]))
    seq = plan.sequence().tolist()
    opened = []
    for h in seq:
        if not opened or opened[-1] != h:
            assert h not in opened, "went back to a host it had left"
            if opened:
                assert t.counts[opened[-1], t.column("web")] == per_host_max, "opened a host before filling the last"
            opened.append(h)


def test_every_refused_host_has_a_reason_and_the_last_filter_is_named():
    t = identical_hosts(4, cores=12, mem=16)
    t.labels[0]["role"] = "rpc"
    t.alive[1] = False
    r = Request.for_service(svc("web", 2, 4, constraints=(Constraint("role", "==", "web"),)), 10, pool=None)
    plan = place(t, r)
    assert plan.placed == 0
    assert plan.reason(0) == "label role=rpc (needs role == web)"
    assert plan.reason(1) == "host is down"
    assert plan.reason(2) == "no label role (needs role == web)"
    assert plan.why_unplaced() == "placed 0 of 10: no host passes 'role == web' (it removed the last 3 hosts)"


def labelled_hosts() -> HostTable:
    """Four hosts whose `disk` and `cores` labels are named like the built-in capacities."""
    labels = [{"disk": "ssd", "gen": "new"}, {"disk": "hdd", "gen": "old"}, {"disk": "ssd", "gen": "old"},
              {"gen": "new", "cores": "many"}]
    hosts = [Host(i + 1, f"h{i:03d}", "a", "p0", "g", "new", 32, 32, 2048, lab, "physical", None, "owned", 0)
             for i, lab in enumerate(labels)]
    return HostTable.build(hosts, [])


def test_a_capacity_key_compared_with_a_word_filters_on_the_label_of_that_name():
    t = labelled_hosts()
    plan = place(t, Request.for_service(svc("web", constraints=(Constraint("disk", "==", "ssd"),)), 8, pool=None))
    assert set(plan.per_host()) == {0, 2}
    assert plan.reason(1) == "label disk=hdd (needs disk == ssd)"
    assert plan.reason(3) == "no label disk (needs disk == ssd)"


def test_label_prefix_always_names_the_label():
    t = labelled_hosts()
    plan = place(t, Request.for_service(svc("web", constraints=(Constraint("label.gen", "==", "new"),)), 8, pool=None))
    assert set(plan.per_host()) == {0, 3}
    assert plan.reason(1) == "label gen=old (needs label.gen == new)"
    plan = place(labelled_hosts(), Request.for_service(
        svc("web", constraints=(Constraint("label.cores", "in", "many,few"),)), 8, pool=None))
    assert set(plan.per_host()) == {3}


def test_a_capacity_key_compared_with_an_amount_is_still_the_capacity():
    t = labelled_hosts()
    plan = place(t, Request.for_service(svc("web", constraints=(Constraint("disk", ">=", "3T"),)), 8, pool=None))
    assert plan.placed == 0 and plan.reason(0) == "disk 2 TB (needs disk >= 3T)"
    plan = place(labelled_hosts(), Request.for_service(
        svc("web", constraints=(Constraint("disk", "==", "2T"),)), 8, pool=None))
    assert set(plan.per_host()) == {0, 1, 2, 3}


@pytest.mark.parametrize(
    "text, message",
    [
        ("role ===", "the value '=' starts with '='"),
        ("disk >> 2", "the value '> 2' starts with '>'"),
        ("role == ", "is not a constraint like"),
        ("-x == 1", "'-x' is not a key"),
        ("label. == x", "'label.' is not a key"),
        ("gen in old,", "an empty choice in 'old,'"),
        ("role == web,,gen == new", "an empty constraint"),
        ("role == web,", "an empty constraint"),
        ("disk in ssd,2T", "mixes amounts and label values"),
        ("disk >= ssd", "'ssd' is not an amount"),
        ("gen >= inf", ">= needs a number"),
        ("role == a, x", "'x' is not a constraint like"),
    ],
)
def test_malformed_constraints_are_refused_with_the_reason(text, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        parse_constraints(text)


def test_constraints_parse_at_the_first_operator():
    assert parse_constraints("gen in a==b, disk == ssd, label.disk != hdd") == (
        Constraint("gen", "in", "a==b"), Constraint("disk", "==", "ssd"), Constraint("label.disk", "!=", "hdd"))
    assert parse_constraints("  ") == ()


def test_when_resources_run_out_the_plan_says_how_many_fit_and_what_is_short():
    t = identical_hosts(3, cores=12, mem=16)
    plan = place(t, Request.for_service(svc("web", 2, 4), 20, pool=None))
    assert plan.placed == 12
    assert plan.reason(0) == "mem 16/16 GB"
    assert plan.why_unplaced() == "placed 12 of 20: the 3 hosts that pass every filter are full (mem on 3)"


# --- dependencies -------------------------------------------------------------------------

def tpl(sid, service, *deps):
    return Template(sid, f"t{sid}", service, "p0", "new", "img:1", tuple(Dependency(*d) for d in deps))


def test_dependencies_scale_by_ratio_recursively():
    templates = {t.sid: t for t in [
        tpl(101, "feed", (102, 0.4, 0), (103, 0.3, 0)), tpl(102, "user", (104, 0.2, 1)), tpl(103, "card"),
        tpl(104, "relation"),
    ]}
    got = [(d.service, d.count, d.via) for d in expand(templates, 101, 10)]
    assert got == [("feed", 10, ()), ("user", 4, (101,)), ("relation", 2, (101, 102)), ("card", 3, (101,))]


def test_a_dependency_cycle_is_rejected_with_the_cycle_named():
    templates = {t.sid: t for t in [tpl(1, "a", (2, 1, 0)), tpl(2, "b", (3, 1, 0)), tpl(3, "c", (1, 0.5, 0))]}
    with pytest.raises(CycleError, match="sid 1 -> sid 2 -> sid 3 -> sid 1"):
        expand(templates, 1, 5)


@given(st.integers(1, 10_000), st.floats(0, 5, allow_nan=False), st.integers(0, 10))
def test_dependent_counts_are_ceil_of_n_times_ratio_plus_elastic(n, ratio, elastic):
    templates = {1: tpl(1, "a", (2, ratio, elastic)), 2: tpl(2, "b")}
    dep = expand(templates, 1, n)[1].count
    exact = n * ratio
    assume(abs(exact - round(exact)) > 1e-6 or exact == round(exact))
    assert dep == int(np.ceil(round(exact, 9))) + elastic
