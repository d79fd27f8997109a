"""World files: good ones load, bad ones get one precise line per problem, never a traceback."""

from __future__ import annotations

import copy
import json
import re

import jsonschema
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cockpit import world, yamlcheck
from cockpit.world import WorldError
from tests.conftest import DEMO, SMALL

DEMO_TEXT = DEMO.read_text()
SMALL_TEXT = SMALL.read_text()


def problems_of(text: str) -> list[str]:
    try:
        world.loads(text, "w.yaml")
    except WorldError as e:
        return [str(p) for p in e.problems]
    return []


def edit(text: str, old: str, new: str) -> str:
    assert old in text, old
    return text.replace(old, new, 1)


def test_demo_world_matches_the_seed(demo_world):
    w = demo_world
    assert {i.name: i.kind for i in w.idcs} == {"yongfeng": "private", "tucheng": "private", "aliyun": "cloud"}
    assert len(w.idc("aliyun").zones) >= 3
    assert w.host_count >= 2000
    classes = {(h.cores, h.memory_gb) for h in w.hardware}
    assert {(12, 16), (32, 32)} <= classes and any(h.disk_gb >= 10000 for h in w.hardware)
    assert {s.name for s in w.services} >= {"feed", "user", "card"}
    assert any(s.kind == "rpc" for s in w.services)
    feed = next(t for t in w.templates if t.service == "feed")
    ratios = {w.template(d.sid).service: d.ratio for d in feed.dependencies}
    assert ratios == {"user": 0.4, "card": 0.3}
    assert {r.idc for r in w.registries} == {i.name for i in w.idcs}
    assert w.shared_pool.name == "shared"
    layers = [set(im.layers) for im in w.images if im.name in ("feed-web", "user-web", "card-web")]
    assert set.intersection(*layers) >= {"centos7-base", "jdk8", "tomcat8"}
    cpu_rule = next(r for r in w.autoscaling if r.kind == "cpu")
    assert cpu_rule.threshold_pct == 50 and cpu_rule.factor == 2
    sched = next(r for r in w.autoscaling if r.kind == "schedule")
    assert set(sched.at) == {"12:30", "22:30"}


def test_the_schema_is_valid_json_schema_and_accepts_the_demo():
    schema = world.schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    doc, problems = yamlcheck.parse(DEMO_TEXT, "demo")
    assert problems == []
    assert list(jsonschema.Draft202012Validator(schema).iter_errors(doc.data)) == []


@pytest.mark.parametrize(
    "old, new, expected",
    [
        ("cores: 12, memory_gb: 16", 'cores: "12", memory_gb: 16', r"w\.yaml:\d+: hardware\[0\]\.cores: expected an integer, got '12'"),
        ("{name: old, cores: 12", "{name: old, colour: red, cores: 12", r"hardware\[0\]\.colour: unknown key \(expected one of: cores, disk_gb, memory_gb, name\)"),
        ("kind: private}\n  - {name: tucheng", "kind: privat}\n  - {name: tucheng", r"idcs\[0\]\.kind: expected one of private, cloud; got 'privat'"),
        ("pool: feed-web, count: 300", "pool: feed-wbe, count: 300", r"host_groups\[0\]\.pool: no pool named 'feed-wbe' \(known: "),
        ("idc: yongfeng, pool: feed-web, count: 300", "idc: yongfeg, pool: feed-web, count: 300", r"host_groups\[0\]\.idc: no IDC named 'yongfeg'"),
        ("{sid: 102, ratio: 0.4", "{sid: 999, ratio: 0.4", r"templates\[0\]\.dependencies\[0\]\.sid: no template with sid named 999"),
        ("{name: shared, kind: shared}", "{name: shared, kind: online}", r"clusters: expected exactly one pool with kind: shared, found none"),
        ("zone: cn-beijing-h,", "zone: cn-beijing-x,", r"host_groups\[13\]\.zone: no zone in aliyun named 'cn-beijing-x'"),
        ("start: 2026-11-26T11:50:00+08:00", "start: 2026-11-26", r"^w\.yaml:7: start: expected a timestamp with an offset"),
        ("- {at: \"12:30\"", "- {at: \"25:30\"", r"traffic\.peaks\[0\]\.at: expected a local time HH:MM, got '25:30'"),
        ("expires: 2026-11-30", "expires: 2026-02-30", r"host_groups\[14\]\.charge\.expires: not a date"),
        ("threshold_pct: 50, factor: 2}", "factor: 2}", r"autoscaling\[0\]\.threshold_pct: a cpu rule needs threshold_pct"),
        ("image: feed-web:2026.11.20\n", "image: feed-web:2026.11.21\n", r"services\[0\]\.image: no image named 'feed-web:2026.11.21'"),
        ("never_with: [feed]", "never_with: [feeed]", r"services\[4\]\.placement\.never_with\[0\]: no service named 'feeed'"),
        ("security_groups: [sg-bj-h-dcp1, sg-bj-i-dcp1", "security_groups: [sg-nowhere, sg-bj-i-dcp1", r"templates\[0\]\.ecs\.security_groups\[0\]: no security group in aliyun named 'sg-nowhere'"),
    ],
)
def test_each_problem_names_file_line_field_and_expectation(old, new, expected):
    found = problems_of(edit(DEMO_TEXT, old, new))
    assert any(re.search(expected, p) for p in found), found


def test_host_addresses_are_one_valid_address_per_host_each_given_once():
    small = yaml.safe_load(SMALL_TEXT)
    g = small["host_groups"][0]
    g["addresses"] = [f"10.77.0.{i}" for i in range(g["count"] - 1)] + ["10.77.0.300"]
    found = problems_of(yaml.safe_dump(small))
    assert any(re.search(r"host_groups\[0\]\.addresses\[\d+\]: '10\.77\.0\.300' is not an IPv4 address", p) for p in found), found
    g["addresses"] = [f"10.77.0.{i}" for i in range(g["count"] + 1)]
    found = problems_of(yaml.safe_dump(small))
    assert any(f"host_groups[0].addresses: {g['count'] + 1} addresses for {g['count']} hosts" in p for p in found), found
    g2 = small["host_groups"][1]
    g2["addresses"] = [f"10.77.1.{i}" for i in range(g2["count"])]
    g["addresses"] = [f"10.77.0.{i}" for i in range(g["count"])]
    g2["addresses"][0] = "10.77.0.0"
    found = problems_of(yaml.safe_dump(small))
    assert any("host_groups[1].addresses[0]: 10.77.0.0 is given to another host too" in p for p in found), found
    g2["addresses"][0] = "10.77.1.250"
    w = world.loads(yaml.safe_dump(small), "w.yaml")
    assert w.host_groups[0].addresses[0] == "10.77.0.0"


def test_line_numbers_point_at_the_offending_line():
    text = edit(SMALL_TEXT, "cores: 12, memory_gb: 16", "cores: -1, memory_gb: 16")
    line = next(i for i, l in enumerate(text.splitlines(), 1) if "cores: -1" in l)
    assert problems_of(text) == [f"w.yaml:{line}: hardware[0].cores: expected a number >= 1, got -1"]


def test_every_problem_is_reported_not_just_the_first():
    text = edit(SMALL_TEXT, "cores: 12", "cores: zero")
    text = edit(text, "kind: private}", "kind: privat}")
    text = edit(text, "name: small\n", "name: small\nextra: 1\n")
    found = problems_of(text)
    assert len(found) == 3
    assert any("extra: unknown key" in p for p in found)


def test_duplicate_keys_are_errors_not_silently_overwritten():
    text = edit(SMALL_TEXT, "seed: 7\n", "seed: 7\nseed: 8\n")
    assert problems_of(text) == ["w.yaml:4: seed: duplicate key"]


def test_dependency_cycles_are_rejected_with_the_cycle_named():
    text = edit(SMALL_TEXT, "{sid: 2, name: user-expand, service: user}", "{sid: 2, name: user-expand, service: user, dependencies: [{sid: 1, ratio: 2}]}")
    (p,) = problems_of(text)
    assert "dependency cycle: sid 1 -> sid 2 -> sid 1" in p


@pytest.mark.parametrize(
    "text, expected",
    [
        ("", "w.yaml:1: the file is empty"),
        ("name: [", "YAML syntax"),
        ("- a\n- b\n", "expected a mapping, got a list"),
        ("a: 1\n---\nb: 2\n", "expected one YAML document, found 2"),
        ("\x00", "not YAML"),
    ],
)
def test_unreadable_worlds_get_one_clear_line(text, expected):
    found = problems_of(text)
    assert found and expected in found[0]


def test_a_missing_file_is_named():
    with pytest.raises(WorldError) as e:
        world.load("/nonexistent/world.yaml")
    assert str(e.value) == "/nonexistent/world.yaml: no such file"


def test_integral_floats_count_as_integers():
    w = world.loads(edit(SMALL_TEXT, "count: 6,", "count: 6.0,"))
    assert w.host_groups[0].count == 6 and isinstance(w.host_groups[0].count, int)


# --- property tests ----------------------------------------------------------------------

BASE = yaml.safe_load(SMALL_TEXT)
BASE["start"] = "2026-11-26T11:50:00+08:00"
# replication and releases too, so the mutations reach their checks
BASE["replication"] = [{"name": "p", "source": "reg-yf", "destinations": ["reg-ali"], "tags": {"exclude": ["*-rc*"]},
                        "trigger": "cron", "schedule": "*/10 * * * *", "bandwidth_mbps": 100, "concurrency": 4}]
BASE["releases"] = [{"image": "feed-web:1", "registry": "reg-yf", "at": "2026-11-26T12:05:00+08:00", "variant": "hotfix"}]

junk = st.one_of(
    st.none(), st.booleans(), st.integers(-10**20, 10**20), st.floats(allow_nan=True),
    st.text(max_size=12), st.lists(st.integers(), max_size=3), st.dictionaries(st.text(max_size=5), st.integers(), max_size=2),
)


def _paths(node, prefix=()):
    yield prefix
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _paths(v, prefix + (i,))


ALL_PATHS = [p for p in _paths(BASE) if p]


@st.composite
def mutated_worlds(draw):
    data = copy.deepcopy(BASE)
    for _ in range(draw(st.integers(1, 4))):
        path = draw(st.sampled_from(ALL_PATHS))
        parent = data
        try:
            for part in path[:-1]:
                parent = parent[part]
            action = draw(st.sampled_from(["replace", "delete", "add"]))
            if action == "replace":
                parent[path[-1]] = draw(junk)
            elif action == "delete":
                del parent[path[-1]]
            elif isinstance(parent, dict):
                parent[draw(st.text(min_size=1, max_size=8))] = draw(junk)
        except (KeyError, IndexError, TypeError):
            continue
    return data


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_worlds())
def test_mutated_worlds_load_or_fail_with_problems_never_a_traceback(data):
    text = yaml.safe_dump(data, allow_unicode=True)
    try:
        world.loads(text, "m.yaml")
    except WorldError as e:
        assert e.problems
        for p in e.problems:
            assert str(p).startswith("m.yaml")


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_worlds())
def test_the_shape_check_agrees_with_jsonschema(data):
    doc, problems = yamlcheck.parse(yaml.safe_dump(data), "m.yaml")
    if problems:  # e.g. a key YAML cannot round-trip; not a schema question
        return
    ours = yamlcheck.validate(doc, world.schema())
    try:
        plain = json.loads(json.dumps(doc.data, allow_nan=False))
    except ValueError:  # .inf or .nan: not JSON numbers, so JSON Schema has no say; we refuse them
        assert ours
        return
    theirs = list(jsonschema.Draft202012Validator(world.schema()).iter_errors(plain))
    assert bool(ours) == bool(theirs), (ours, [e.message for e in theirs])


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=300))
def test_arbitrary_text_never_raises_anything_but_world_error(text):
    try:
        world.loads(text, "t.yaml")
    except WorldError as e:
        assert all(str(p).startswith("t.yaml") for p in e.problems)
