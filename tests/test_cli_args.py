"""Every `cockpit` argument is checked before anything runs: a bad one gets one line naming the
argument (`cockpit plan: error: argument --seed: ...`) and exit code 2, never a traceback."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from cockpit.cli import main
from cockpit.store.models import TaskRow
from tests.conftest import DEMO, SMALL

BIG = "1234567890123456789012"  # 22 digits: more than SQLite's integers hold
TOO_BIG = str(2**63)


def run_main(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def one_error_line(err: str) -> str:
    lines = err.splitlines()
    assert len(lines) == 1 and err.endswith("\n"), err
    return lines[0]


@pytest.mark.parametrize(
    "args, line",
    [
        (["plan", "--service", "feed", "--count", "1", "--seed", "-5"],
         "cockpit plan: error: argument --seed: expected a seed from 0 to 9223372036854775807, got -5"),
        (["plan", "--service", "feed", "--count", "1", "--seed", TOO_BIG],
         f"cockpit plan: error: argument --seed: expected a seed from 0 to 9223372036854775807, got {TOO_BIG}"),
        (["ecs", "retry", BIG, "--yes"],
         f"cockpit ecs retry: error: argument ORDER: expected an id from 1 to 9223372036854775807, got {BIG}"),
        (["ecs", "cancel", "0", "--yes"],
         "cockpit ecs cancel: error: argument ORDER: expected an id from 1 to 9223372036854775807, got 0"),
        (["ecs", "order", "--template", "-1", "--count", "1"],
         "cockpit ecs order: error: argument --template: expected an id from 1 to 9223372036854775807, got -1"),
        (["ecs", "order", "--template", "101", "--count", "0"],
         "cockpit ecs order: error: argument --count: expected a count of hosts from 1 to 10000, got 0"),
        (["move", "--to", "shared", "--from", "feed-web", "--count", BIG],
         f"cockpit move: error: argument --count: expected a count from 1 to 10000000, got {BIG}"),
        (["plan", "--service", "feed", "--count", "١٢"],  # Arabic-Indic digits: int() would take them
         "cockpit plan: error: argument --count: expected a whole number, got '١٢'"),
        (["--speed", "nan", "hosts"], "cockpit: error: argument --speed: expected a number in (0, 100000], got 'nan'"),
        (["audit", "list", "--user", ""],
         "cockpit audit list: error: argument --user: expected a user name (1 to 64 printable characters), got ''"),
        (["hosts", "--db", ""],
         "cockpit hosts: error: argument --db: expected a path (1 to 4096 printable characters), got ''"),
        (["check", "a\nb"],
         "cockpit check: error: argument WORLD: expected a path (1 to 4096 printable characters), got 'a\\nb'"),
        (["plan", "--service", "feed\n", "--count", "1"],
         "cockpit plan: error: argument --service: expected a name of letters, digits, '-', '_' or '.' (at most 128), "
         "got 'feed\\n'"),
        (["move", "--to", "shared", "--host", "a", "--count", "2"],
         "cockpit move: error: argument --host: not allowed with --from, --idc or --count"),
        (["move", "--to", "shared"], "cockpit move: error: move needs --host NAME..., or --from POOL and --count N"),
        (["plan", "--service", "feed", "--count", "1", "--weights", "spread=1"],
         "cockpit plan: error: argument --weights: only with --strategy custom or --compare"),
    ],
)
def test_number_and_name_arguments_out_of_range_are_refused_in_one_line(demo_db, capsys, args, line):
    code, out, err = run_main(capsys, *args, *(["--db", demo_db] if args[0] in ("plan", "ecs", "move") else []))
    assert code == 2 and out == ""
    assert one_error_line(err) == line


def test_an_order_id_sqlite_cannot_hold_never_reaches_the_store(demo_db, capsys):
    code, _, err = run_main(capsys, "ecs", "retry", "--db", demo_db, "--yes", str(2**63 - 1))
    assert code == 2 and one_error_line(err) == f"cockpit: no ECS order {2**63 - 1}"


@pytest.mark.parametrize(
    "args, message",
    [
        (["--port", "70000"], "argument --port: expected a port from 0 to 65535, got 70000"),
        (["--port", "-1"], "argument --port: expected a port from 0 to 65535, got -1"),
        (["--latency-ms", "-1"], "argument --latency-ms: expected a number in [0, 60000], got '-1'"),
        (["--latency-ms", "inf"], "argument --latency-ms: expected a number in [0, 60000], got 'inf'"),
        (["--rate", "0"], "argument --rate: expected a number in (0, 100000], got '0'"),
        (["--rate", "-2"], "argument --rate: expected a number in (0, 100000], got '-2'"),
        (["--stock", "cn-beijing-h:ecs.c6.4xlarge=-3"], "argument --stock: expected a stock from 0 to 1000000, got '-3'"),
        (["--stock", "z:t=1000001"], "argument --stock: expected a stock from 0 to 1000000, got '1000001'"),
        (["--stock", "nonsense"], "argument --stock: expected ZONE:TYPE=N, got 'nonsense'"),
        (["--max-in-flight", "0"], "argument --max-in-flight: expected a number of calls from 1 to 100, got 0"),
        (["--max-in-flight", "-1"], "argument --max-in-flight: expected a number of calls from 1 to 100, got -1"),
        (["--fault", "RunInstances:Throttling:200"], "argument --fault: expected ACTION:CODE[:STATUS[:TIMES]]"),
        (["--fault", "RunInstances:Throttling:503:-1"], "argument --fault: expected ACTION:CODE[:STATUS[:TIMES]]"),
        (["--host", "a b"], "argument --host: expected a host name or IP address, got 'a b'"),
        (["--stock", "nozone:ecs.c6.4xlarge=3"], "no zone 'nozone' in the world's cloud IDC"),
    ],
)
def test_serve_refuses_bad_numbers_before_it_listens(args, message):
    # a subprocess with a timeout: were the argument let through, the server would run until killed
    r = subprocess.run([sys.executable, "-m", "cockpit", "serve", "cloud", *args], capture_output=True, text=True,
                       timeout=30, env={**os.environ, "ALIBABA_CLOUD_ACCESS_KEY_ID": "k",
                                        "ALIBABA_CLOUD_ACCESS_KEY_SECRET": "s"})
    assert r.returncode == 2 and r.stdout == ""
    assert message in one_error_line(r.stderr) and r.stderr.startswith("cockpit")


def test_the_engine_refuses_a_bad_speed_before_it_starts():
    r = subprocess.run([sys.executable, "-m", "cockpit", "engine", "--speed", "-3"], capture_output=True, text=True,
                       timeout=30)
    assert r.returncode == 2
    assert one_error_line(r.stderr) == \
        "cockpit engine: error: argument --speed: expected a number in (0, 100000], got '-3'"


SUBCOMMANDS = [["check"], ["hosts"], ["plan"], ["ecs"], ["ecs", "list"], ["ecs", "order"], ["ecs", "pause"],
               ["ecs", "resume"], ["ecs", "cancel"], ["ecs", "retry"], ["pools"], ["move"], ["costs"], ["serve"],
               ["engine"]]


@pytest.mark.parametrize("cmd", SUBCOMMANDS, ids=" ".join)
def test_every_subcommand_names_itself_in_a_one_line_usage_error(capsys, cmd):
    code, out, err = run_main(capsys, *cmd, "--bogus")
    assert code == 2 and out == ""
    line = one_error_line(err)
    assert line.startswith(f"cockpit {' '.join(cmd)}: error: ")
    assert "usage:" not in err


@pytest.mark.parametrize("cmd", [[]] + SUBCOMMANDS, ids=lambda c: " ".join(c) or "cockpit")
def test_help_still_prints_the_whole_help_and_exits_0(capsys, cmd):
    code, out, err = run_main(capsys, *cmd, "--help")
    assert code == 0 and err == ""
    assert out.startswith(f"usage: cockpit{' ' if cmd else ''}{' '.join(cmd)}") and "options:" in out


def test_an_unknown_option_after_a_subcommand_is_blamed_on_that_subcommand(capsys):
    code, _, err = run_main(capsys, "plan", "--service", "feed", "--count", "1", "--bogus")
    assert code == 2 and one_error_line(err) == "cockpit plan: error: unrecognized arguments: --bogus"


# --- filters ---------------------------------------------------------------------------------

@pytest.mark.parametrize(
    "text, message",
    [
        ("role ===", "argument --filter: 'role ===': the value '=' starts with '='"),
        ("", "argument --filter: an empty constraint: expected a constraint like"),
        ("  ", "argument --filter: an empty constraint"),
        ("role == web,,gen == new", "argument --filter: 'role == web,,gen == new': an empty constraint"),
        ("-role == web", "argument --filter: '-role == web': '-role' is not a key"),
        ("disk in ssd,2T", "mixes amounts and label values"),
    ],
)
def test_a_malformed_filter_is_refused_naming_the_argument(demo_db, capsys, text, message):
    code, _, err = run_main(capsys, "plan", "--db", demo_db, "--service", "feed", "--count", "1", "--filter", text)
    assert code == 2
    line = one_error_line(err)
    assert line.startswith("cockpit plan: error: ") and message in line


def _hosts(capsys, db: str) -> dict[str, dict]:
    assert main(["hosts", "--db", db, "--json"]) == 0
    return {h["name"]: h["labels"] for h in json.loads(capsys.readouterr().out)["hosts"]}


def _placed(capsys, db: str, *filters: str) -> set[str]:
    args = ["plan", "--db", db, "--service", "feed", "--count", "300", "--json"]
    for f in filters:
        args += ["--filter", f]
    assert main(args) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["unplaced"] == 0
    return {p["host"] for p in doc["placements"]}


def test_a_plan_filtered_on_disk_equals_ssd_places_only_on_ssd_labelled_hosts(demo_db, capsys):
    labels = _hosts(capsys, demo_db)
    ssd = _placed(capsys, demo_db, "disk == ssd")
    hdd = _placed(capsys, demo_db, "disk == hdd")
    assert ssd and all(labels[h]["disk"] == "ssd" for h in ssd)
    assert hdd and all(labels[h]["disk"] == "hdd" for h in hdd)
    assert _placed(capsys, demo_db, "label.disk == ssd") == ssd


def test_a_plan_filtered_on_label_gen_places_only_on_that_generation(demo_db, capsys):
    labels = _hosts(capsys, demo_db)
    new = _placed(capsys, demo_db, "label.gen == new", "disk >= 1T")
    assert new and all(labels[h]["gen"] == "new" for h in new)


def test_a_refused_host_reads_as_its_label(demo_db, capsys):
    code, out, _ = run_main(capsys, "plan", "--db", demo_db, "--service", "feed", "--count", "1", "--idc", "tucheng",
                            "--filter", "disk == nvme")
    assert code == 0
    assert "no host passes 'disk == nvme'" in out


# --- moves are checked against the store before they are queued -------------------------------

@pytest.mark.parametrize(
    "args, line",
    [
        (["--host", "nope"], "cockpit: no such host in service: 'nope'"),
        (["--host", "yf-feed-new-0001", "--host", "yf-feed-new-0001"], "cockpit: host 'yf-feed-new-0001' is named twice"),
        (["--from", "feed-web", "--idc", "mars", "--count", "2"],
         "cockpit: no IDC named 'mars' (IDCs: aliyun, tucheng, yongfeng)"),
        (["--from", "feed-web", "--idc", "tucheng", "--count", "301"],
         "cockpit: feed-web in tucheng has 300 live hosts; 301 asked for"),
        (["--from", "nowhere", "--count", "1"], "cockpit: no pool named 'nowhere'"),
        (["--from", "shared", "--count", "1"], "cockpit: the hosts are in pool shared already"),
    ],
)
def test_a_move_that_cannot_happen_is_refused_before_it_is_queued(demo_db, capsys, args, line):
    code, out, err = run_main(capsys, "move", "--db", demo_db, "--to", "shared", *args)  # no --yes: refused first
    assert code == 2 and out == ""
    assert one_error_line(err).startswith(line)
    code, _, _ = run_main(capsys, "pools", "--db", demo_db)
    assert code == 0


def test_the_facade_refuses_the_same_moves_for_the_tui(session):
    c = session.cockpit
    assert c.move_hosts(to_pool="shared", hosts=["nope"]).message == "no such host in service: 'nope'"
    assert c.move_hosts(to_pool="feed-web", hosts=["yf-feed-new-0001"]).message == \
        "that host is in pool feed-web already"
    assert "no IDC named 'mars'" in c.move_hosts(to_pool="shared", from_pool="feed-web", idc="mars", count=1).message
    assert c.move_hosts(to_pool="shared", from_pool="feed-web", count=10**30).message.startswith(
        "feed-web has 920 live hosts")
    assert TaskRow.select().count() == 0
    ok = c.move_hosts(to_pool="shared", from_pool="feed-web", idc="tucheng", count=300)
    assert ok.ok and TaskRow.select().count() == 1


# --- random command lines --------------------------------------------------------------------

JUNK = ["", "-", "--", "-x", "--bogus", "é", "日本", "\x00", "a\nb", "-1", "0", "1e309", "nan", "9" * 30, "-h",
        BIG, TOO_BIG, "--json", "=", "role ===", " "]
NUMBERS = st.one_of(st.integers(-(2**70), 2**70), st.sampled_from(["1", "5", "101"])).map(str)
VALUES = st.one_of(NUMBERS, st.sampled_from(JUNK), st.text(max_size=6))
OPTIONS = {
    "hosts": {"--json": None},
    "pools": {"--json": None},
    "costs": {"--json": None},
    "check": {"": [str(DEMO), str(SMALL), "/nope.yaml", ""]},
    "plan": {
        "--service": ["feed", "card", "nope", ""], "--template": ["101", "sid:101", "feed-expand", "0", BIG],
        "--count": ["1", "5", "0", "-5"], "--idc": ["tucheng", "mars", ""],
        "--strategy": ["spread", "binpack", "random", "custom", "best"],
        "--filter": ["role == web", "disk == ssd", "label.gen == new", "disk >= 1T", "role ===", "", "disk >> 2",
                     "gen in old,"],
        "--weights": ["spread=1", "x=1", "", "spread=nan"], "--seed": ["0", "7", "-5", TOO_BIG],
        "--compare": None, "--json": None, "--yaml": None,
    },
    "ecs list": {"--json": None},
    "ecs order": {"--template": ["101", "0", "-1", BIG, "x"], "--count": ["1", "3", "0"], "--pool": ["shared", "nope"],
                  "--yes": None},
    "ecs cancel": {"": ["1", "0", "-1", BIG, "x"], "--yes": None},
    "ecs retry": {"": ["1", "0", "-1", BIG, "x"], "--yes": None},
    "move": {"--to": ["shared", "feed-web", "nowhere", ""], "--from": ["feed-web", "shared", "nowhere"],
             "--idc": ["tucheng", "mars"], "--count": ["1", "2", "0", "100000"],
             "--host": ["yf-feed-new-0001", "tc-feed-old-0001", "nope", ""], "--yes": None},
    "headroom": {"--idc": ["tucheng", "mars"], "--pool": ["shared", "nope"], "--hardware": ["old", "gpu"],
                 "--at": ["now", "peak", "noon"], "--json": None},
    "audit verify": {"--json": None},
    "audit list": {"--user": ["root", "sre", "", "x" * 70], "--action": ["plan.apply", "flow.*", "", "a b"],
                   "--outcome": ["done", "refused", "Done", ""], "--since": ["30m", "7d", "2026-11-26T11:00", "0s",
                                                                            "yesterday", "99999999999d"],
                   "--limit": ["1", "10", "0", BIG], "--json": None},
}
BASE = {  # a command line that runs, to build on: later options override it, junk spoils it
    "plan": ["--service", "feed", "--count", "5"], "ecs order": ["--template", "101", "--count", "1"],
    "ecs cancel": ["1"], "ecs retry": ["1"], "move": ["--to", "shared", "--from", "feed-web", "--count", "1"],
    "check": [str(DEMO)], "headroom": ["--idc", "tucheng"],
}
GLOBAL = {"--speed": ["1", "2.5", "0", "nan"], "--role": ["viewer", "operator", "admin", "god"], "--readonly": None}


def _pair(options: dict) -> st.SearchStrategy[list[str]]:
    def words(opt: str) -> st.SearchStrategy[list[str]]:
        known = options[opt]
        if known is None:
            return st.just([opt])
        value = st.one_of(st.sampled_from(known), st.sampled_from(known), VALUES)  # known values twice as often
        return value.map(lambda v: [v]) if opt == "" else value.map(lambda v: [opt, v])

    return st.sampled_from(sorted(options)).flatmap(words)


@st.composite
def command_lines(draw) -> tuple[list[str], list[str], list[str]]:
    """(global options, subcommand, the rest). Global options always come with a value argparse
    takes, so the subcommand stays the subcommand: a command line without one starts the TUI."""
    head = [w for pair in draw(st.lists(_pair(GLOBAL), max_size=1)) for w in pair]
    cmd = draw(st.sampled_from(sorted(OPTIONS)))
    base = BASE.get(cmd, []) if draw(st.booleans()) else []
    pair = _pair(OPTIONS[cmd])
    tail = draw(st.lists(st.one_of(pair, pair, VALUES.map(lambda v: [v])), max_size=3))
    return head, cmd.split(), base + [w for words in tail for w in words]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(line=command_lines())
def test_random_command_lines_exit_0_or_2_with_one_line(demo_db, capsys, tmp_path, monkeypatch, line):
    monkeypatch.chdir(tmp_path)  # a relative path among the junk stays inside the test's directory
    head, cmd, tail = line
    store = [] if cmd == ["check"] else ["--db", demo_db]  # never the default store: no seeding
    argv = head + cmd + store + tail
    code = main(argv)
    err = capsys.readouterr().err
    assert code in (0, 2), (argv, err)
    event(f"exit {code}" + (": argument error" if ": error: " in err else ""))
    if code == 2:
        line = one_error_line(err)
        # check's problems start FILE: (or FILE:LINE:); a "--" before the file only ends the options
        files = [w for w in tail if w != "--"] if cmd == ["check"] else []
        world = files[0] if files else None
        assert line.startswith("cockpit") or (world is not None and line.startswith(f"{world}:")), (argv, err)
