"""World and config files are bounded: size, file kind, aliases, nesting, and every number.

Hostile or mistaken input (an alias bomb, a FIFO, a 50 MB file, `.inf`, a year-1 start) gets
one clear line naming file, line and field, fast and in little memory, never a hang or a crash.
"""

from __future__ import annotations

import json
import math
import os
import re
import resource
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from cockpit import config, world, yamlcheck
from cockpit.config import ConfigError
from cockpit.world import WorldError
from tests.conftest import ROOT, SMALL

from tests.test_world import DEMO_TEXT, SMALL_TEXT, problems_of


def load_problems(path: Path) -> list[str]:
    try:
        world.load(path)
    except WorldError as e:
        return [str(p) for p in e.problems]
    return []


def edit(text: str, old: str, new: str) -> str:
    assert old in text, old
    return text.replace(old, new, 1)


def laughs(levels: int = 9, width: int = 10) -> str:
    """The billion-laughs file: each level lists the one below `width` times."""
    lines = [f"a0: &a0 [{', '.join(['lol'] * width)}]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * width)}]" for i in range(1, levels)]
    return "\n".join(lines) + "\n"


def merge_laughs(levels: int = 12, width: int = 10) -> str:
    """The same with `<<` merge keys, which PyYAML's own flattening copies at every level."""
    keys = ", ".join(f"k{i}: {i}" for i in range(width))
    lines = [f"m0: &m0 {{{keys}}}"]
    lines += [f"m{i}: &m{i} {{<<: [{', '.join([f'*m{i - 1}'] * width)}]}}" for i in range(1, levels)]
    return "\n".join(lines) + "\n"


def run_bounded(code: str, timeout: float = 30) -> dict:
    """Run Python in a child held to 1 GiB of address space and `timeout` seconds (so a regression
    fails this test instead of eating the machine); it prints a JSON report as its last line."""
    limit = 1 << 30
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout, cwd=ROOT,
        preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_AS, (limit, limit)),
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


MEASURE_PARSE = """
import json, resource, time
from cockpit import yamlcheck
text = open({path!r}).read()
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t = time.perf_counter()
doc, problems = yamlcheck.parse(text, "w.yaml")
seconds = time.perf_counter() - t
grew = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) * 1024
print(json.dumps({{"seconds": seconds, "grew": grew, "problems": [str(p) for p in problems]}}))
"""


# --- aliases and the number of values ----------------------------------------------------------


@pytest.mark.parametrize("bomb", [laughs(), merge_laughs()], ids=["aliases", "merge-keys"])
def test_an_alias_bomb_is_refused_at_once_in_little_memory(tmp_path, bomb):
    path = tmp_path / "bomb.yaml"
    path.write_text(bomb)
    report = run_bounded(MEASURE_PARSE.format(path=str(path)))
    assert report["seconds"] < 1.0 and report["grew"] < 20 * 2**20, report
    (problem,) = report["problems"]
    assert problem.startswith("w.yaml:") and "too many values" in problem, problem


def test_an_alias_bomb_inside_a_world_fails_check_with_one_line_fast(tmp_path):
    path = tmp_path / "w.yaml"
    path.write_text(edit(DEMO_TEXT, "services:\n", laughs() + "services:\n"))
    t = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "cockpit", "check", str(path)], capture_output=True, text=True, timeout=30, cwd=ROOT,
        preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30)),
    )
    assert time.perf_counter() - t < 5
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.count("\n") == 1 and "too many values" in proc.stderr, proc.stderr
    assert proc.stderr.startswith(f"{path}:")


def test_a_file_of_too_many_plain_values_is_refused_quickly(tmp_path):
    path = tmp_path / "flat.yaml"
    path.write_text("name: [" + ",".join(["0"] * (yamlcheck.MAX_VALUES + 10)) + "]\n")
    report = run_bounded(MEASURE_PARSE.format(path=str(path)))
    assert report["seconds"] < 3 and report["grew"] < 200 * 2**20, report
    (problem,) = report["problems"]
    assert problem.startswith("w.yaml:1: name[") and "too many values" in problem


def test_aliases_within_the_limit_load_and_problems_point_into_the_anchored_text():
    # The demo writes its ECS spec once (&web-ecs) and reuses it: a mistake inside it is
    # reported, for each template, at the anchored line.
    assert "ecs: *web-ecs" in DEMO_TEXT
    w = world.loads(DEMO_TEXT)
    assert w.templates[0].ecs == w.templates[1].ecs == w.templates[2].ecs
    text = edit(DEMO_TEXT, "security_groups: [sg-bj-h-dcp1, sg-bj-i-dcp1", "security_groups: [sg-nowhere, sg-bj-i-dcp1")
    found = [p for p in problems_of(text) if "sg-nowhere" in p]
    anchored = next(i for i, line in enumerate(text.splitlines(), 1) if "sg-nowhere" in line)
    assert len(found) >= 2 and all(p.startswith(f"w.yaml:{anchored}: ") for p in found), found


def test_merge_keys_merge_with_the_keys_written_winning():
    text = """
base: &base {type: owned, price: 600}
a: {<<: *base, price: 700}
b: {<<: [{x: 1}, {x: 2, y: 3}]}
"""
    doc, problems = yamlcheck.parse(text, "m.yaml")
    assert problems == []
    assert doc.data["a"] == {"type": "owned", "price": 700} and doc.data["b"] == {"x": 1, "y": 3}
    assert doc.data == yaml.safe_load(text)
    assert doc.line(("a", "type")) == 3


scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-10**20, 10**20), st.floats(allow_nan=False), st.text(max_size=8),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=5), inner, max_size=4)),
    max_leaves=20,
)


@settings(max_examples=150, deadline=None)
@given(st.lists(values, min_size=1, max_size=4), st.lists(st.integers(0, 3), max_size=6))
def test_the_reader_builds_what_yaml_builds(parts, reuse):
    # Values used twice are written once with an anchor and then as aliases by safe_dump.
    data = {f"k{i}": part for i, part in enumerate(parts)}
    data.update({f"again{i}": parts[j % len(parts)] for i, j in enumerate(reuse)})
    text = yaml.safe_dump(data, allow_unicode=True)
    doc, problems = yamlcheck.parse(text, "r.yaml")
    assert problems == []
    assert doc.data == yaml.safe_load(text)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("a: *nowhere\n", "m.yaml:1: YAML syntax: found undefined alias 'nowhere'"),
        ("a: &x 1\nb: &x 2\n", "m.yaml:2: YAML syntax: anchor &x is defined twice (first at line 1)"),
        ("a: &x [1, *x]\n", "m.yaml:1: a[1]: *x is inside the value it names"),
        ("a: {<<: 3}\n", "m.yaml:1: a: bad merge key: << takes a mapping or a list of mappings"),
    ],
)
def test_bad_aliases_get_one_clear_line(text, expected):
    _, problems = yamlcheck.parse(text, "m.yaml")
    assert [str(p) for p in problems] == [expected]


# --- nesting -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "name: " + "[" * 10_000 + "]" * 10_000 + "\n",
        "name: " + "{a: " * 10_000 + "1" + "}" * 10_000 + "\n",
        "".join(" " * i + f"k{i}:\n" for i in range(3_000)) + " " * 3_000 + "v: 1\n",
        "name: " + "[" * 200 + "]" * 200 + "\n",
    ],
    ids=["flow-lists-10000", "flow-maps-10000", "block-3000", "flow-200"],
)
def test_deep_nesting_fails_cleanly_without_recursion_error(text):
    found = problems_of(text)
    assert len(found) == 1 and found[0].startswith("w.yaml:"), found
    assert "nested too deeply" in found[0] or "maximum nesting depth" in found[0]


def test_nesting_past_the_limit_is_named_and_the_rest_still_checked():
    text = edit(SMALL_TEXT, "name: small\n", "name: small\nextra: " + "[" * 80 + "]" * 80 + "\n")
    found = problems_of(text)
    assert any("nested too deeply (more than 64 levels)" in p for p in found)


# --- the file itself ---------------------------------------------------------------------------


def test_a_file_over_the_size_limit_is_refused_before_it_is_read(tmp_path):
    path = tmp_path / "huge.yaml"
    with open(path, "wb") as f:  # sparse: takes no disk, but reading it would take a GiB
        f.truncate(1 << 30)
    t = time.perf_counter()
    found = load_problems(path)
    assert time.perf_counter() - t < 0.5
    assert found == [f"{path}: too big: 1,073,741,824 bytes, more than the 8 MiB a file may have"]


def test_a_file_at_the_size_limit_is_read(tmp_path):
    path = tmp_path / "padded.yaml"
    padding = "#" * 1000 + "\n"
    body = SMALL_TEXT + padding * ((yamlcheck.MAX_BYTES - len(SMALL_TEXT)) // len(padding))
    path.write_text(body)
    assert os.path.getsize(path) <= yamlcheck.MAX_BYTES
    assert world.load(path).name == "small"


def _loads_in_a_thread(path: Path) -> tuple[threading.Thread, list]:
    out: list = []
    thread = threading.Thread(target=lambda: out.append(load_problems(path)), daemon=True)
    thread.start()
    thread.join(timeout=5)
    return thread, out


def test_a_fifo_is_refused_at_once_not_waited_on(tmp_path):
    fifo = tmp_path / "world.yaml"
    os.mkfifo(fifo)
    link = tmp_path / "link.yaml"
    link.symlink_to(fifo)
    for path in (fifo, link):
        thread, out = _loads_in_a_thread(path)
        if thread.is_alive():  # it blocked on open: let it go, then fail
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
            thread.join(timeout=5)
            pytest.fail(f"reading {path} blocked")
        assert out == [[f"{path}: is a named pipe (FIFO), not a regular file"]]


def test_sockets_directories_and_devices_are_refused(tmp_path):
    sock_path = tmp_path / "s.yaml"
    sock = socket.socket(socket.AF_UNIX)
    try:
        sock.bind(str(sock_path))
        assert load_problems(sock_path) == [f"{sock_path}: is a socket, not a regular file"]
    finally:
        sock.close()
    assert load_problems(tmp_path) == [f"{tmp_path}: is a directory, not a file"]
    if os.path.exists("/dev/zero"):  # only stat()ed: a device is refused before it is opened
        assert load_problems(Path("/dev/zero")) == ["/dev/zero: is a device, not a regular file"]


def test_a_symlink_to_a_world_is_followed(tmp_path):
    link = tmp_path / "w.yaml"
    link.symlink_to(SMALL)
    assert world.load(link).name == "small"


def test_windows_line_endings_read_as_the_same_world(tmp_path):
    path = tmp_path / "crlf.yaml"
    path.write_bytes(SMALL_TEXT.replace("\n", "\r\n").encode())
    assert world.load(path).digest == world.load(SMALL).digest


# --- numbers -----------------------------------------------------------------------------------

BASE = yaml.safe_load(DEMO_TEXT)


def _number_paths(node, prefix=()):
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _number_paths(v, prefix + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _number_paths(v, prefix + (i,))
    elif isinstance(node, (int, float)) and not isinstance(node, bool):
        yield prefix


NUMBER_PATHS = list(_number_paths(BASE))


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(NUMBER_PATHS), st.sampled_from([math.inf, -math.inf, math.nan]))
def test_no_number_in_a_world_may_be_infinite_or_nan(path, bad):
    data = json.loads(json.dumps(BASE, default=str))
    data["start"] = str(BASE["start"])
    node = data
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = bad
    found = problems_of(yaml.safe_dump(data))
    pattern = rf"^w\.yaml:\d+: {re.escape(yamlcheck.field_name(path))}: expected (a finite number|an integer), got -?\.(inf|nan)$"
    assert any(re.search(pattern, p) for p in found), (path, found)


@pytest.mark.parametrize(
    "old, new, expected",
    [
        ("memory_gb: 4\n", "memory_gb: .inf\n", r"services\[0\]\.memory_gb: expected a finite number, got \.inf"),
        ("disk_gb: 20\n", "disk_gb: .inf\n", r"services\[0\]\.disk_gb: expected a finite number, got \.inf"),
        ("peak_qps: 1200000", "peak_qps: .inf", r"services\[0\]\.traffic\.peak_qps: expected a finite number, got \.inf"),
        ("factor: 2.5", "factor: .nan", r"traffic\.hot_events\[0\]\.factor: expected a finite number, got \.nan"),
        ("factor: 2.5", "factor: 1.0e+308", r"traffic\.hot_events\[0\]\.factor: expected a number <= 100, got 1e\+308"),
        ("threshold_pct: 50, factor: 2}", "threshold_pct: 50, factor: 1.0e+308}", r"autoscaling\[0\]\.factor: expected a number <= 100"),
        ("peak_qps: 1200000", "peak_qps: 1.0e+12", r"peak_qps: expected a number <= 1000000000, got 1000000000000\.0"),
        ("cores_per_kqps: 3.67", "cores_per_kqps: 1.0e+9", r"cores_per_kqps: expected a number <= 1000"),
        ("price: 1400}", "price: 1.0e+300}", r"host_groups\[0\]\.charge\.price: expected a number <= 10000000"),
        ("cpu: 2\n", "cpu: 0\n", r"services\[0\]\.cpu: expected a number >= 0\.001, got 0"),
        ("memory_gb: 4\n", "memory_gb: 1.0e+6\n", r"services\[0\]\.memory_gb: expected a number <= 65536"),
        ("ratio: 0.4", "ratio: 1.0e+300", r"dependencies\[0\]\.ratio: expected a number <= 100"),
        ("width_h: 0.9", "width_h: 1.0e-300", r"traffic\.peaks\[0\]\.width_h: expected a number >= 0\.05"),
        ("count: 300,", "count: .inf,", r"host_groups\[0\]\.count: expected an integer, got \.inf"),
    ],
)
def test_numbers_must_be_finite_and_within_their_range(old, new, expected):
    found = problems_of(edit(DEMO_TEXT, old, new))
    assert any(re.search(r"^w\.yaml:\d+: \S*" + expected, p) for p in found), found


@pytest.mark.parametrize("offset", ["+24:00", "+14:30", "-12:30", "+08:60", "-13:00", "+99:99"])
def test_utc_offsets_outside_minus_12_to_plus_14_are_refused(offset):
    found = problems_of(edit(DEMO_TEXT, 'utc_offset: "+08:00"', f'utc_offset: "{offset}"'))
    assert found == [f"w.yaml:10: traffic.utc_offset: expected an offset from -12:00 to +14:00, like +08:00, got '{offset}'"]


@pytest.mark.parametrize("offset, hours", [("+14:00", 14), ("-12:00", -12), ("-00:30", -0.5), ("+05:45", 5.75)])
def test_utc_offsets_at_the_edges_are_taken(offset, hours):
    w = world.loads(edit(DEMO_TEXT, 'utc_offset: "+08:00"', f'utc_offset: "{offset}"'))
    assert w.traffic.utc_offset.total_seconds() == hours * 3600


@pytest.mark.parametrize(
    "old, new, expected",
    [
        ("start: 2026-11-26T11:50:00+08:00", "start: 0001-01-01T00:00:00+08:00", "w.yaml:7: start: the year 1 is out of range: expected 2000 to 2100"),
        ("start: 2026-11-26T11:50:00+08:00", "start: 9999-12-31T23:59:00+08:00", "w.yaml:7: start: the year 9999 is out of range"),
        ("start: 2026-11-26T20:40:00+08:00", "start: 1999-12-31T20:40:00+08:00", "traffic.hot_events[0].start: the year 1999 is out of range"),
        ("expires: 2026-11-30", "expires: 2999-11-30", ".charge.expires: the year 2999 is out of range"),
    ],
)
def test_dates_outside_2000_to_2100_are_refused(old, new, expected):
    found = problems_of(edit(DEMO_TEXT, old, new))
    assert any(expected in p for p in found), found


def test_a_swap_cannot_take_more_hosts_than_its_pool_has_in_its_idc():
    found = problems_of(edit(DEMO_TEXT, "hosts: 40,", "hosts: 100000,"))
    line = next(i for i, l in enumerate(DEMO_TEXT.splitlines(), 1) if "hosts: 40," in l)
    assert found == [
        f"w.yaml:{line}: swaps[0].hosts: 100,000 hosts to swap, but the host groups put 560 in pool 'feed-web' in 'yongfeng'"
    ]
    assert problems_of(edit(DEMO_TEXT, "hosts: 40,", "hosts: 560,")) == []


def test_the_total_of_hosts_and_of_containers_is_bounded():
    hosts = SMALL_TEXT.replace("count: 6, hardware: new", f"count: {world.MAX_HOSTS - 8}, hardware: new")
    assert any(f"host_groups: {world.MAX_HOSTS + 1:,} hosts in all; a world may have at most" in p for p in problems_of(hosts))
    ctrs = SMALL_TEXT.replace("containers: {yf: 20, ali: 4}", f"containers: {{yf: {world.MAX_CONTAINERS}, ali: 4}}")
    assert any("services: 1,000,012 containers at the start in all" in p for p in problems_of(ctrs))


def test_long_text_is_refused_without_echoing_it():
    found = problems_of(edit(DEMO_TEXT, 'constraints: ["role == web"', 'constraints: ["role == ' + "a " * 100_000 + '"'))
    assert any(p.endswith("placement.constraints[0]: expected at most 256 characters, got 200,008") for p in found), found
    assert all(len(p) < 300 for p in found)


def test_every_problem_is_still_reported_together():
    text = edit(DEMO_TEXT, "memory_gb: 4\n", "memory_gb: .inf\n")
    text = edit(text, 'utc_offset: "+08:00"', 'utc_offset: "+24:00"')
    text = edit(text, "factor: 2.5", "factor: .nan")
    assert len(problems_of(text)) == 3


def _numeric_schemas(node, path=""):
    if isinstance(node, dict):
        types = node.get("type")
        types = [types] if isinstance(types, str) else (types or [])
        if {"number", "integer"} & set(types):
            yield path, node
        for k, v in node.items():
            yield from _numeric_schemas(v, f"{path}/{k}")
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _numeric_schemas(v, f"{path}/{i}")


@pytest.mark.parametrize("schema", [world.schema, config.schema], ids=["world", "config"])
def test_every_number_in_the_schemas_has_a_finite_minimum_and_maximum(schema):
    found = list(_numeric_schemas(schema()))
    assert found
    for path, node in found:
        low = node.get("minimum", node.get("exclusiveMinimum"))
        high = node.get("maximum", node.get("exclusiveMaximum"))
        assert low is not None and high is not None and math.isfinite(low) and math.isfinite(high), path


# --- the config file: read the same way, so bounded the same way --------------------------------


def config_problems(path: Path) -> list[str]:
    try:
        config.load(str(path))
    except ConfigError as e:
        return [str(p) for p in e.problems]
    return []


def test_a_config_alias_bomb_is_refused_at_once(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text(laughs())
    t = time.perf_counter()
    found = config_problems(path)
    assert time.perf_counter() - t < 1.0
    assert len(found) == 1 and found[0].startswith(f"{path}:") and "too many values" in found[0]


def test_a_config_fifo_or_huge_file_is_refused(tmp_path, monkeypatch):
    fifo = tmp_path / "config.yaml"
    os.mkfifo(fifo)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    default = config.default_path()
    default.parent.mkdir(parents=True)
    default.symlink_to(fifo)  # the default config, found without being named, is checked too
    done: list = []
    thread = threading.Thread(target=lambda: done.append(config_problems(default)), daemon=True)
    thread.start()
    thread.join(timeout=5)
    if thread.is_alive():
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        pytest.fail("reading the config blocked on a FIFO")
    assert done == [[f"{default}: is a named pipe (FIFO), not a regular file"]]
    huge = tmp_path / "huge.yaml"
    with open(huge, "wb") as f:
        f.truncate(yamlcheck.MAX_BYTES + 1)
    assert config_problems(huge) == [f"{huge}: too big: 8,388,609 bytes, more than the 8 MiB a file may have"]


CONFIGS = [
    {"speed": 2.5, "role": "viewer", "keys": {"quit": "ctrl+q"}},
    {"backends": {"init": {"kind": "ansible", "extravars": {"a": [1, "x", None, {"b": True}], "n": 1.5}}}},
    {"backends": {"init": {"kind": "ansible", "extravars": {"big": 10**16}}}},
    {"backends": {"init": {"kind": "ansible", "extravars": {"deep": {"deeper": [10**16]}}}}},
    {"roles_file": "r" * 4097},
    {"keys": {"k" * 300: "x"}},
    {"tick_s": 0.01},
]


@pytest.mark.parametrize("data", CONFIGS)
def test_the_config_check_agrees_with_jsonschema(data):
    import jsonschema

    jsonschema.Draft202012Validator.check_schema(config.schema())
    doc, problems = yamlcheck.parse(yaml.safe_dump(data), "c.yaml")
    assert problems == []
    ours = yamlcheck.validate(doc, config.schema())
    theirs = list(jsonschema.Draft202012Validator(config.schema()).iter_errors(data))
    assert bool(ours) == bool(theirs), (ours, [e.message for e in theirs])


@pytest.mark.parametrize(
    "text, expected",
    [
        ("backends: {init: {kind: ansible, extravars: {x: [1, .nan]}}}\n",
         "c.yaml:1: backends.init.extravars.x[1]: expected a finite number, got .nan"),
        ("speed: .inf\n", "c.yaml:1: speed: expected a finite number, got .inf"),
        ("tick_s: .nan\n", "c.yaml:1: tick_s: expected a finite number, got .nan"),
        ("expiry_warn_days: .inf\n", "c.yaml:1: expiry_warn_days: expected an integer, got .inf"),
        ("backends: {cloud: {kind: sim, latency_ms: -.inf}}\n", "c.yaml:1: backends.cloud.latency_ms: expected a finite number, got -.inf"),
        ("speed: 1.0e+308\n", "c.yaml:1: speed: expected a number <= 100000, got 1e+308"),
        ("theme: " + "[" * 100 + "]" * 100 + "\n", "nested too deeply (more than 64 levels)"),
    ],
)
def test_config_numbers_and_nesting_are_bounded(tmp_path, text, expected):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    found = [p.replace(str(path), "c.yaml") for p in config_problems(path)]
    assert len(found) == 1 and expected in found[0], found


def test_an_idc_cannot_hold_more_hosts_than_it_has_addresses():
    text = edit(SMALL_TEXT, "count: 6, hardware: new", "count: 65000, hardware: new")
    problems = problems_of(text)
    assert any("65,007 hosts in IDC 'yf'; an IDC may have at most 64,000" in p for p in problems), problems


def test_check_refuses_a_world_whose_first_containers_would_run_a_host_out_of_ports(tmp_path):
    from cockpit.cli import main

    text = edit(SMALL_TEXT, "{name: new, cores: 32, memory_gb: 32, disk_gb: 1200}",
                "{name: new, cores: 1024, memory_gb: 65536, disk_gb: 1048576}")
    text = edit(text, "cpu: 2, memory_gb: 4, ports: [8080],\n     containers: {yf: 20, ali: 4}",
                "cpu: 0.001, memory_gb: 0.001, ports: [8080, 8081],\n     containers: {yf: 200000, ali: 4}")
    path = tmp_path / "ports.yaml"
    path.write_text(text)
    assert main(["check", str(path)]) == 2


def test_a_number_with_thousands_of_digits_is_one_line():
    problems = problems_of(SMALL_TEXT.replace("seed: 7", "seed: " + "1" * 5000))
    assert problems == ["w.yaml:3: seed: bad value: a number with too many digits"]
