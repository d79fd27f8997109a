"""Registries in the world file: topologies (master to slaves, hierarchies, dual-master pairs),
replication policies with their defaults, and the simulated platform's releases. Bad ones get
one `file:line: field: message` line each, and `cockpit check` exits 2."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cockpit import world
from cockpit.cli import main
from cockpit.domain import RepoFilter, World
from cockpit.world import WorldError
from cockpit.world_registry_checks import cron_problem
from tests.test_world import DEMO_TEXT, SMALL_TEXT

SMALL_REGISTRIES = """registries:
  - {name: reg-yf, idc: yf, role: master}
  - {name: reg-ali, idc: ali, role: slave, replicates_from: reg-yf}
"""
assert SMALL_REGISTRIES in SMALL_TEXT


def text_with(registries: list[str], extra: str = "") -> str:
    """The small world with these registry lines (flow mappings) and extra top-level sections."""
    block = "registries:\n" + "".join(f"  - {line}\n" for line in registries)
    return SMALL_TEXT.replace(SMALL_REGISTRIES, block + extra)


def load(registries: list[str], extra: str = "") -> World:
    return world.loads(text_with(registries, extra), "w.yaml")


def problems(registries: list[str], extra: str = "") -> list[str]:
    try:
        load(registries, extra)
    except WorldError as e:
        return [str(p) for p in e.problems]
    return []


def line_of(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


def reg(name: str, role: str = "slave", src: str | None = None, idc: str = "yf", more: str = "") -> str:
    fields = f"name: {name}, idc: {idc}, role: {role}"
    if src:
        fields += f", replicates_from: {src}"
    return "{" + fields + (", " + more if more else "") + "}"


# --- topologies that are accepted ------------------------------------------------------------------


def test_master_to_slaves_is_one_tree_with_the_master_on_top():
    w = load([reg("reg-m", "master"), reg("reg-s1", src="reg-m"), reg("reg-s2", src="reg-m", idc="ali")])
    assert [tuple(r.name for r in root) for root in w.topology_roots()] == [("reg-m",)]
    assert [r.name for r in w.children("reg-m")] == ["reg-s1", "reg-s2"]
    assert [w.depth(n) for n in ("reg-m", "reg-s1", "reg-s2")] == [0, 1, 1]
    assert w.dual_peer("reg-m") is None and w.dual_peer("reg-s1") is None


def test_a_hierarchy_of_any_depth_is_accepted_and_depth_counts_the_hops_from_the_top():
    chain = [reg("reg-0", "master")] + [reg(f"reg-{i}", src=f"reg-{i - 1}") for i in range(1, 6)]
    w = load(chain)
    assert [w.depth(f"reg-{i}") for i in range(6)] == [0, 1, 2, 3, 4, 5]
    assert [r.name for r in w.children("reg-2")] == ["reg-3"]
    assert w.children("reg-5") == ()


def test_a_slave_may_be_listed_before_the_registry_it_replicates_from():
    w = load([reg("reg-sub", src="reg-idc"), reg("reg-idc", src="reg-main"), reg("reg-main", "master")])
    assert w.depth("reg-sub") == 2 and w.topology_roots()[0][0].name == "reg-main"


def test_a_dual_master_pair_is_one_root_and_each_is_the_others_peer():
    w = load([reg("reg-a", "master", "reg-b"), reg("reg-s", src="reg-b"), reg("reg-b", "master", "reg-a", idc="ali")])
    assert [tuple(r.name for r in root) for root in w.topology_roots()] == [("reg-a", "reg-b")]
    assert w.dual_peer("reg-a") == "reg-b" and w.dual_peer("reg-b") == "reg-a"
    assert w.children("reg-a") == () and [r.name for r in w.children("reg-b")] == ["reg-s"]
    assert (w.depth("reg-a"), w.depth("reg-b"), w.depth("reg-s")) == (0, 0, 1)


def test_several_trees_each_have_their_root():
    w = load([reg("reg-x", "master"), reg("reg-a", "master", "reg-b"), reg("reg-b", "master", "reg-a"),
              reg("reg-y", "master"), reg("reg-x1", src="reg-x")])
    assert [tuple(r.name for r in root) for root in w.topology_roots()] == [("reg-x",), ("reg-a", "reg-b"), ("reg-y",)]


def test_registry_lookup_names_what_is_missing():
    w = load([reg("reg-m", "master")])
    assert w.registry("reg-m").instances == 1 and w.registry("reg-m").link_mbps == 1000
    with pytest.raises(KeyError, match="no registry named 'nope'"):
        w.registry("nope")


# --- topologies that are refused -------------------------------------------------------------------


def test_a_cycle_that_is_not_a_dual_master_pair_is_refused_naming_its_registries():
    regs = [reg("reg-m", "master"), reg("reg-b", src="reg-c"), reg("reg-a", src="reg-b"), reg("reg-c", src="reg-a")]
    text = text_with(regs)
    found = problems(regs)
    line = line_of(text, "name: reg-b,")
    assert found == [f"w.yaml:{line}: registries[1].replicates_from: replication cycle: reg-b -> reg-c -> reg-a -> reg-b "
                     "(each replicates from the next); only two masters may replicate from each other (dual-master)"]


@pytest.mark.parametrize(
    "pair",
    [
        [reg("reg-a", "slave", "reg-b"), reg("reg-b", "slave", "reg-a")],
        [reg("reg-a", "master", "reg-b"), reg("reg-b", "slave", "reg-a")],
    ],
    ids=["two-slaves", "master-and-slave"],
)
def test_two_registries_replicating_from_each_other_are_a_cycle_unless_both_are_masters(pair):
    (p,) = problems([reg("reg-m", "master")] + pair)
    assert "registries[1].replicates_from: replication cycle: reg-a -> reg-b -> reg-a" in p


def test_three_masters_in_a_ring_are_a_cycle_not_a_dual_pair():
    (p,) = problems([reg("reg-a", "master", "reg-c"), reg("reg-b", "master", "reg-a"), reg("reg-c", "master", "reg-b")])
    assert "replication cycle: reg-a -> reg-c -> reg-b -> reg-a" in p


def test_slaves_below_a_cycle_are_not_reported_again():
    found = problems([reg("reg-m", "master"), reg("reg-a", src="reg-b"), reg("reg-b", src="reg-a"),
                      reg("reg-c", src="reg-a"), reg("reg-d", src="reg-c")])
    assert len(found) == 1 and "reg-a -> reg-b -> reg-a" in found[0]


def test_a_master_that_replicates_from_a_registry_that_does_not_replicate_back_is_refused():
    regs = [reg("reg-a", "master"), reg("reg-b", "master", "reg-a")]
    (p,) = problems(regs)
    line = line_of(text_with(regs), "name: reg-b,")
    assert p == (f"w.yaml:{line}: registries[1].replicates_from: a master replicates only from its dual-master peer, "
                 "and 'reg-a' does not replicate from 'reg-b'")


def test_a_master_below_a_dual_pair_is_refused_too():
    found = problems([reg("reg-a", "master", "reg-b"), reg("reg-b", "master", "reg-a"), reg("reg-c", "master", "reg-a")])
    assert len(found) == 1 and "registries[2].replicates_from: a master replicates only from its dual-master peer" in found[0]


def test_a_cycle_through_replication_policies_is_refused_at_the_policy_that_closes_it(tmp_path, capsys):
    policy = "  - name: back-up\n    source: reg-tucheng-b\n    destinations: [reg-yongfeng]\n"
    anchor = "\n\n# The simulated platform's pushes"
    text = DEMO_TEXT.replace(anchor, "\n" + policy + anchor[1:], 1)
    assert text != DEMO_TEXT
    bad = tmp_path / "w.yaml"
    bad.write_text(text)
    assert main(["check", str(bad)]) == 2
    (err,) = capsys.readouterr().err.strip().splitlines()
    line = line_of(text, "destinations: [reg-yongfeng]")
    assert err == (f"{bad}:{line}: replication[2].destinations[0]: replication cycle through the policies: "
                   "reg-tucheng-b -> reg-yongfeng -> reg-tucheng -> reg-tucheng-b (each copies to the next); only "
                   "the two masters of a declared dual-master pair may replicate both ways")


def test_policies_both_ways_between_a_dual_master_pair_are_not_a_cycle_but_a_third_registry_makes_one():
    pair = [reg("reg-a", "master", "reg-b"), reg("reg-b", "master", "reg-a"), reg("reg-c", src="reg-a")]
    both = ("replication:\n  - {name: ab, source: reg-a, destinations: [reg-b, reg-c]}\n"
            "  - {name: ba, source: reg-b, destinations: [reg-a]}\n")
    assert problems(pair, both) == []
    (p,) = problems(pair, both + "  - {name: cb, source: reg-c, destinations: [reg-b]}\n")
    assert "replication[2].destinations[0]: replication cycle through the policies: reg-c -> reg-b -> reg-a -> reg-c" in p


def test_a_slave_names_the_registry_it_replicates_from():
    (p,) = problems([reg("reg-m", "master"), reg("reg-s")])
    assert p.endswith("registries[1].replicates_from: a slave registry names the registry it replicates from")


def test_a_registry_cannot_replicate_from_itself():
    (p,) = problems([reg("reg-m", "master"), reg("reg-s", src="reg-s")])
    assert p.endswith("registries[1].replicates_from: a registry cannot replicate from itself")


POLICY = "replication:\n  - {{name: p, source: reg-yf{more}}}\n"
RELEASE = 'releases:\n  - {{image: "feed-web:1", registry: reg-ali, at: 2026-11-26T12:05:00+08:00{more}}}\n'
BASE = [reg("reg-yf", "master"), reg("reg-ali", src="reg-yf", idc="ali")]


@pytest.mark.parametrize(
    "registries, extra, expected",
    [
        ([reg("reg-yf", "master"), reg("reg-ali", src="reg-nowhere", idc="ali")], "",
         "registries[1].replicates_from: no registry named 'reg-nowhere' (known: reg-ali, reg-yf)"),
        (BASE, "replication:\n  - {name: p, source: reg-nowhere, destinations: [reg-ali]}\n",
         "replication[0].source: no registry named 'reg-nowhere' (known: reg-ali, reg-yf)"),
        (BASE, POLICY.format(more=", destinations: [reg-ali, reg-nowhere]"),
         "replication[0].destinations[1]: no registry named 'reg-nowhere'"),
        (BASE, RELEASE.format(more="").replace("reg-ali,", "reg-nowhere,"),
         "releases[0].registry: no registry named 'reg-nowhere'"),
        ([reg("reg-yf", "master"), reg("reg-ali", src="reg-yf", idc="nowhere")], "",
         "registries[1].idc: no IDC named 'nowhere'"),
    ],
    ids=["replicates_from", "policy-source", "policy-destination", "release-registry", "idc"],
)
def test_an_unknown_registry_is_refused_wherever_it_is_named(registries, extra, expected):
    found = problems(registries, extra)
    assert len(found) == 1 and expected in found[0], found


def test_thousands_of_registries_are_refused_at_once_with_one_short_line():
    import time

    from cockpit.world_registry_checks import MAX_REGISTRIES

    many = [reg(f"r{i}", src="nowhere") for i in range(MAX_REGISTRIES * 20)]
    t = time.perf_counter()
    found = problems(many)
    assert time.perf_counter() - t < 5
    assert len(found) == 1 and found[0].endswith(f"registries: 20,000 registries; a world may have at most {MAX_REGISTRIES:,}")


def test_an_unknown_name_among_many_lists_only_some_of_the_known():
    regs = [reg("reg-m", "master")] + [reg(f"reg-{i:03}", src="reg-m") for i in range(100)] + [reg("reg-x", src="reg-y")]
    (p,) = problems(regs)
    assert "no registry named 'reg-y' (known: reg-000, reg-001," in p and p.endswith(", and 82 more)") and len(p) < 400


# --- replication policies ----------------------------------------------------------------------------


def test_without_replication_each_registry_replicated_from_gets_a_default_policy():
    w = load([reg("reg-m", "master"), reg("reg-i1", src="reg-m"), reg("reg-i2", src="reg-m"), reg("reg-sub", src="reg-i1")])
    assert [(p.name, p.source, p.destinations) for p in w.replication] == [
        ("reg-m", "reg-m", ("reg-i1", "reg-i2")), ("reg-i1", "reg-i1", ("reg-sub",))]
    p = w.replication[0]
    assert (p.trigger, p.schedule, p.override, p.deletions, p.concurrency, p.bandwidth_mbps) == (
        "event", None, False, False, 4, None)
    assert p.repositories == RepoFilter(("*",), ()) and p.tags == RepoFilter(("*",), ())


def test_a_dual_master_pair_gets_a_default_policy_each_way():
    w = load([reg("reg-a", "master", "reg-b"), reg("reg-b", "master", "reg-a"), reg("reg-s", src="reg-a")])
    assert {p.source: p.destinations for p in w.replication} == {"reg-a": ("reg-b", "reg-s"), "reg-b": ("reg-a",)}


def test_a_written_policy_keeps_every_setting_and_defaults_its_destinations_to_the_children():
    extra = """replication:
  - name: nightly
    source: reg-yf
    repositories: {include: ["feed-*", "user-*"], exclude: ["*-test"]}
    tags: {exclude: ["*-rc*"]}
    trigger: cron
    schedule: "*/10 * * * *"
    override: true
    deletions: true
    bandwidth_mbps: 100
    concurrency: 8
"""
    w = load(BASE, extra)
    (p,) = w.replication
    assert p.destinations == ("reg-ali",)
    assert p.repositories == RepoFilter(("feed-*", "user-*"), ("*-test",)) and p.tags == RepoFilter(("*",), ("*-rc*",))
    assert (p.trigger, p.schedule, p.override, p.deletions, p.bandwidth_mbps, p.concurrency) == (
        "cron", "*/10 * * * *", True, True, 100.0, 8)
    assert w.policy("nightly") is p


def test_filters_are_fnmatch_globs_include_then_exclude():
    f = RepoFilter(("feed-*", "user-web"), ("*-rc*",))
    assert f.allows("feed-web") and f.allows("user-web")
    assert not f.allows("card-web") and not f.allows("feed-rc1") and not f.allows("user-webx")


def test_an_empty_replication_section_means_no_policies():
    assert load(BASE, "replication: []\n").replication == ()


@pytest.mark.parametrize(
    "more, expected",
    [
        (", destinations: [reg-yf]", "replication[0].destinations[0]: a policy cannot replicate its source to itself"),
        (", destinations: [reg-ali, reg-ali]", "replication[0].destinations[1]: 'reg-ali' is listed twice"),
        (", destinations: []", "replication[0].destinations: expected at least 1 item"),
        (", trigger: cron", "replication[0].schedule: a cron policy needs a schedule: five cron fields like '*/10 * * * *'"),
        (", trigger: cron, schedule: '* * * * * *'", "replication[0].schedule: not a cron schedule (minute hour day month "
         "weekday): Wrong number of fields; got 6, expected 5"),
        (", trigger: cron, schedule: '61 * * * *'", "replication[0].schedule: not a cron schedule"),
        (", trigger: cron, schedule: ''", "replication[0].schedule: must not be empty"),
        (", trigger: event, schedule: '*/5 * * * *'", "replication[0].schedule: only a cron policy has a schedule; "
         "this one's trigger is event"),
        (", schedule: '*/5 * * * *'", "only a cron policy has a schedule; this one's trigger is event"),
        (", trigger: hourly", "replication[0].trigger: expected one of manual, event, cron; got 'hourly'"),
        (", repositories: {include: ['']}", "replication[0].repositories.include[0]: must not be empty"),
        (", tags: {exclude: ['']}", "replication[0].tags.exclude[0]: must not be empty"),
        (", tags: {include: []}", "replication[0].tags.include: expected at least 1 item"),
        (", tags: {include: ['a b']}", "replication[0].tags.include[0]: expected a glob like 'feed-*' (no spaces)"),
        (", colour: red", "replication[0].colour: unknown key"),
    ],
)
def test_a_bad_policy_is_one_line_naming_the_field(more, expected):
    found = problems(BASE, POLICY.format(more=more))
    assert len(found) == 1 and expected in found[0], found


def test_a_policy_from_a_registry_nobody_replicates_from_must_name_its_destinations():
    (p,) = problems(BASE, "replication:\n  - {name: p, source: reg-ali}\n")
    assert p.endswith("replication[0].destinations: no registry replicates from 'reg-ali': name the destinations")
    assert load(BASE, "replication:\n  - {name: p, source: reg-ali, destinations: [reg-yf]}\n").replication[0].destinations == ("reg-yf",)


def test_policy_names_are_unique():
    extra = "replication:\n  - {name: p, source: reg-yf}\n  - {name: p, source: reg-yf, trigger: manual}\n"
    (p,) = problems(BASE, extra)
    assert p.endswith("replication[1].name: name 'p' is already used at replication[0]")


@pytest.mark.parametrize(
    "registries, extra, expected",
    [
        (BASE, POLICY.format(more=", concurrency: 0"), "replication[0].concurrency: expected a number >= 1, got 0"),
        (BASE, POLICY.format(more=", concurrency: 65"), "replication[0].concurrency: expected a number <= 64, got 65"),
        (BASE, POLICY.format(more=", bandwidth_mbps: 0"), "replication[0].bandwidth_mbps: expected a number >= 0.1, got 0"),
        (BASE, POLICY.format(more=", bandwidth_mbps: 1.0e+12"), "replication[0].bandwidth_mbps: expected a number <= 100000"),
        (BASE, POLICY.format(more=", bandwidth_mbps: .inf"), "replication[0].bandwidth_mbps: expected a finite number"),
        ([reg("reg-yf", "master", more="link_mbps: 0")], "", "registries[0].link_mbps: expected a number >= 0.1, got 0"),
        ([reg("reg-yf", "master", more="link_mbps: 1.0e+9")], "", "registries[0].link_mbps: expected a number <= 100000"),
        ([reg("reg-yf", "master", more="instances: 0")], "", "registries[0].instances: expected a number >= 1, got 0"),
        ([reg("reg-yf", "master", more="instances: 65")], "", "registries[0].instances: expected a number <= 64, got 65"),
    ],
)
def test_every_registry_and_policy_number_is_bounded(registries, extra, expected):
    found = problems(registries, extra)
    assert len(found) == 1 and expected in found[0], found


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(st.sampled_from(["*", "*/", "-", ",", "/", "0", "59", "60", "mon", "last", "L", "?", "#"]),
                          st.integers(-1, 10**30).map(str), st.text(max_size=4)), max_size=12).map(" ".join))
def test_any_schedule_text_is_accepted_or_one_reason_never_a_traceback(text):
    why = cron_problem(text)
    assert why is None or (why.startswith("not a cron schedule") and "\n" not in why)


def test_a_valid_cron_schedule_with_weekday_names_is_accepted():
    w = load(BASE, POLICY.format(more=", trigger: cron, schedule: '30 2 * * mon-fri'"))
    assert w.replication[0].schedule == "30 2 * * mon-fri"


# --- releases ----------------------------------------------------------------------------------------


def test_a_release_is_built_with_its_time_and_variant():
    extra = RELEASE.format(more="") + '  - {image: "user-web:1", registry: reg-yf, at: 2026-11-26T12:10:00Z, variant: hotfix}\n'
    w = load(BASE, extra)
    first, second = w.releases
    assert (first.image, first.registry, first.variant, first.repo, first.tag) == ("feed-web:1", "reg-ali", "", "feed-web", "1")
    assert first.at == datetime(2026, 11, 26, 12, 5, tzinfo=timezone(timedelta(hours=8)))
    assert second.variant == "hotfix" and second.at == datetime(2026, 11, 26, 12, 10, tzinfo=timezone.utc)


@pytest.mark.parametrize(
    "old, new, expected",
    [
        ('"feed-web:1"', '"feed-web:2"', "releases[0].image: no image named 'feed-web:2' (known: feed-web:1, user-web:1)"),
        ('"feed-web:1"', '"feed-web"', "releases[0].image: expected an image reference NAME:TAG, got 'feed-web'"),
        ("2026-11-26T12:05:00+08:00", "2026-11-26T12:05:00", "releases[0].at: expected a timestamp with an offset"),
        ("2026-11-26T12:05:00+08:00", "2026-13-26T12:05:00+08:00", "releases[0].at: not a timestamp"),
        ("2026-11-26T12:05:00+08:00", "2101-11-26T12:05:00+08:00", "releases[0].at: the year 2101 is out of range"),
        ("2026-11-26T12:05:00+08:00", "2026-11-26T11:50:00+08:00",
         "releases[0].at: a release at or before the world's start (2026-11-26T11:50:00+08:00) never happens"),
        ("2026-11-26T12:05:00+08:00}", "2026-11-26T12:05:00+08:00, variant: 'hot fix'}", "releases[0].variant: expected a name"),
        ("2026-11-26T12:05:00+08:00}", "2026-11-26T12:05:00+08:00, colour: red}", "releases[0].colour: unknown key"),
    ],
)
def test_a_bad_release_is_one_line_naming_the_field(old, new, expected):
    extra = RELEASE.format(more="")
    assert old in extra
    found = problems(BASE, extra.replace(old, new, 1))
    assert len(found) == 1 and expected in found[0], found


# --- the demo world ------------------------------------------------------------------------------------


def test_the_demo_is_a_hierarchy_three_levels_deep_with_a_slow_link_to_the_cloud(demo_world):
    w = demo_world
    assert [tuple(r.name for r in root) for root in w.topology_roots()] == [("reg-yongfeng",)]
    assert max(w.depth(r.name) for r in w.registries) >= 2  # main IDC, IDC, sub-IDC
    assert w.registry("reg-aliyun").idc == "aliyun" and w.registry("reg-aliyun").link_mbps <= 100
    assert all(r.link_mbps > w.registry("reg-aliyun").link_mbps for r in w.registries if r.name != "reg-aliyun")
    # every registry is reached from the master by the policies
    reached, todo = {"reg-yongfeng"}, ["reg-yongfeng"]
    while todo:
        src = todo.pop()
        for p in w.replication:
            if p.source == src and p.trigger == "event":
                todo += [d for d in p.destinations if d not in reached]
                reached.update(p.destinations)
    assert reached == {r.name for r in w.registries}


def test_the_demo_releases_a_new_feed_version_soon_after_the_start_sharing_the_base_layers(demo_world):
    w = demo_world
    feed = next(r for r in w.releases if r.repo == "feed-web" and r.registry == "reg-yongfeng")
    assert timedelta(minutes=5) <= feed.at - w.start <= timedelta(minutes=20)
    running = next(s.image for s in w.services if s.name == "feed")
    assert feed.image != running  # a new version, not what runs
    new, old = (next(i for i in w.images if i.ref == ref) for ref in (feed.image, running))
    assert {"centos7-base", "jdk8", "tomcat8"} <= set(new.layers) & set(old.layers)
    assert any(r.repo == "card-web" and r.registry == "reg-yongfeng" and r.at > feed.at for r in w.releases)


def test_the_demo_pushes_other_content_to_a_slave_before_the_masters_copy_a_conflict(demo_world):
    w = demo_world
    masters = {r.image: r for r in w.releases if r.registry == "reg-yongfeng"}
    (local,) = [r for r in w.releases if r.variant and r.image in masters]
    assert w.registry(local.registry).role == "slave" and local.at < masters[local.image].at
    assert any(p.source == "reg-yongfeng" and local.registry in p.destinations and not p.override for p in w.replication)


def test_the_demo_keeps_its_hosts_and_containers():
    w = world.loads(DEMO_TEXT, "demo.yaml")
    assert w.host_count == 2060
    assert sum(sum(s.containers.values()) for s in w.services) == 6794


# --- the command line ---------------------------------------------------------------------------------


def test_check_refuses_a_bad_topology_with_one_line_each_and_exit_2(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    text = text_with([reg("reg-a", "slave", "reg-b"), reg("reg-b", "slave", "reg-a")],
                     "replication:\n  - {name: p, source: reg-x, destinations: [reg-a]}\n")
    bad.write_text(text)
    assert main(["check", str(bad)]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 2 and all(re.match(rf"{re.escape(str(bad))}:\d+: (registries|replication)\[", l) for l in lines)
    assert "replication cycle: reg-a -> reg-b -> reg-a" in lines[0] and "no registry named 'reg-x'" in lines[1]


# --- property: any registry graph loads as a forest, or is refused with lines --------------------------


@st.composite
def registry_graphs(draw):
    """A forest (roots, dual pairs, slaves at any depth), listed in any order, then perhaps broken
    by a few random edits of a role or a `replicates_from`."""
    n = draw(st.integers(1, 7))
    role, src = ["master"] * n, [None] * n
    for i in range(1, n):
        shape = draw(st.sampled_from(["root", "slave", "slave", "peer"]))
        if shape == "slave":
            role[i], src[i] = "slave", draw(st.integers(0, i - 1))
        elif shape == "peer" and role[i - 1] == "master" and src[i - 1] is None:
            src[i], src[i - 1] = i - 1, i
    for _ in range(draw(st.integers(0, 2))):
        i = draw(st.integers(0, n - 1))
        if draw(st.booleans()):
            role[i] = "slave" if role[i] == "master" else "master"
        else:
            src[i] = draw(st.one_of(st.none(), st.integers(0, n - 1)))
    order = draw(st.permutations(range(n)))
    return [reg(f"r{i}", role[i], f"r{src[i]}" if src[i] is not None else None) for i in order]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(registry_graphs())
def test_any_registry_graph_loads_as_a_forest_or_is_refused_with_a_line_per_problem(regs):
    try:
        w = load(regs)
    except WorldError as e:
        assert all(re.match(r"w\.yaml:\d+: registries\[\d\]\.replicates_from: ", str(p)) for p in e.problems), e
        return
    seen: list[str] = []
    for root in w.topology_roots():
        todo = list(root)
        while todo:
            r = todo.pop()
            seen.append(r.name)
            for child in w.children(r.name):
                assert w.depth(child.name) == w.depth(r.name) + 1
                todo.append(child)
    assert sorted(seen) == sorted(r.name for r in w.registries)  # each once: a forest
    sources = {p.source for p in w.replication}
    assert sources == {r.replicates_from for r in w.registries if r.replicates_from}


# --- the config's backends.registry section ------------------------------------------------------------


REGISTRY_CONFIG = """backends:
  registry:
    kind: oci
    registries:
      reg-yongfeng: {url: "https://reg-yf.internal:5000", credentials: {user_env: REG_USER, password_env: REG_PASS}}
      reg-tucheng: {url: "http://127.0.0.1:5001", credentials: {file: creds.txt}}
    webhook: {listen: "127.0.0.1:8787", token_env: COCKPIT_WEBHOOK_TOKEN}
"""


def config_problems(tmp_path, text: str) -> list[str]:
    from cockpit import config
    from cockpit.config import ConfigError

    path = tmp_path / "c.yaml"
    path.write_text(text)
    try:
        config.load(str(path))
    except ConfigError as e:
        return [str(p).replace(str(path), "c.yaml") for p in e.problems]
    return []


def test_the_config_says_where_each_registry_is_and_where_its_secrets_are(tmp_path):
    from cockpit import config

    assert config_problems(tmp_path, REGISTRY_CONFIG) == []
    (tmp_path / "c.yaml").write_text(REGISTRY_CONFIG)
    cfg = config.load(str(tmp_path / "c.yaml"))
    assert cfg.backends["registry"]["registries"]["reg-yongfeng"]["url"] == "https://reg-yf.internal:5000"


@pytest.mark.parametrize(
    "old, new, expected",
    [
        ("kind: oci", "kind: harbor", "backends.registry.kind: expected one of sim, oci; got 'harbor'"),
        ('"https://reg-yf.internal:5000"', '"https://admin:s3cret@reg-yf.internal:5000"',
         "backends.registry.registries.reg-yongfeng.url: expected a URL like https://reg.internal:5000"),
        ('"https://reg-yf.internal:5000"', '"ftp://reg-yf.internal"', "registries.reg-yongfeng.url: expected a URL"),
        ("user_env: REG_USER", "user: admin", "credentials.user: unknown key (expected one of: file, password_env, user_env)"),
        ("password_env: REG_PASS", "password_env: 'not a name'", "credentials.password_env: expected text matching"),
        ('{url: "http://127.0.0.1:5001", ', "{", "registries.reg-tucheng.url: is required"),
        ('"127.0.0.1:8787"', '"127.0.0.1:70000"', "backends.registry.webhook.listen: expected HOST:PORT like 127.0.0.1:8787"),
        ('"127.0.0.1:8787"', '"127.0.0.1"', "backends.registry.webhook.listen: expected HOST:PORT"),
        ("reg-tucheng:", "'reg tucheng':", "backends.registry.registries.reg tucheng: expected a registry name of the world"),
    ],
)
def test_a_bad_registry_config_is_one_line_naming_the_setting(tmp_path, old, new, expected):
    assert old in REGISTRY_CONFIG
    found = config_problems(tmp_path, REGISTRY_CONFIG.replace(old, new, 1))
    assert len(found) == 1 and expected in found[0], found


@pytest.mark.parametrize("bad", [False, True], ids=["good", "bad-url"])
def test_the_registry_config_check_agrees_with_jsonschema(bad):
    import jsonschema
    import yaml

    from cockpit import config, yamlcheck

    text = REGISTRY_CONFIG.replace("https://reg-yf", "https://u:p@reg-yf") if bad else REGISTRY_CONFIG
    doc, problems = yamlcheck.parse(text, "c.yaml")
    assert problems == []
    ours = yamlcheck.validate(doc, config.schema())
    theirs = list(jsonschema.Draft202012Validator(config.schema()).iter_errors(yaml.safe_load(text)))
    assert bool(ours) == bool(theirs) == bad
