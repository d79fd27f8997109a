"""`cockpit flow`: list, show, start (what will happen, then asked or --yes), pause, resume, stop;
--json for scripts; bad input in one line with exit 2; read-only refused and audited. One test
runs a real engine process beside the command, and the flow it queues runs to the end."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from cockpit.cli import main
from cockpit.identity import os_user
from cockpit.session import open_session
from cockpit.store.models import AuditRow, TaskRow
from tests.conftest import make_cfg


def flow(db: str, *args: str) -> list[str]:
    return ["flow", *args, "--db", db]


def out_json(capsys):
    return json.loads(capsys.readouterr().out)


def state(db: str, fid: int) -> str:
    s = open_session(make_cfg(db))
    try:
        return TaskRow.get_by_id(fid).state
    finally:
        s.close()


def test_nothing_listed_before_the_first_flow(demo_db, capsys):
    assert main(flow(demo_db, "list")) == 0
    assert "# no flows yet: cockpit flow start expand|shrink SERVICE COUNT starts one" in capsys.readouterr().out
    assert main(flow(demo_db, "list", "--json")) == 0
    assert out_json(capsys) == []


def test_start_says_what_will_happen_and_without_yes_changes_nothing(demo_db, capsys):
    assert main(flow(demo_db, "start", "expand", "feed", "3")) == 2  # pytest's stdin is no terminal
    captured = capsys.readouterr()
    assert captured.out.startswith("feed +3 in yongfeng (2200 running there now).\n")
    assert "Its dependencies get flows of their own: user +2, card +1 (template ratios)." in captured.out
    assert "No engine runs on this store: the flow waits until one starts" in captured.out
    assert captured.err.strip() == ("cockpit: Start an expansion flow (scale out or in): it changes the platform: "
                                    "confirm with --yes")
    assert main(flow(demo_db, "list", "--json")) == 0
    assert out_json(capsys) == []


def test_start_with_yes_queues_it_and_says_no_engine_moves_it_yet(demo_db, capsys):
    assert main(flow(demo_db, "start", "shrink", "feed", "2", "--idc", "aliyun", "--batch", "1", "--retries", "5",
                     "--yes")) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "flow 1 queued: feed -2 in aliyun"
    assert lines[1].startswith("note: no engine is running on this store: the flow waits in the queue until one starts")
    assert main(flow(demo_db, "list", "--json")) == 0
    (f,) = out_json(capsys)
    assert {k: f[k] for k in ("id", "kind", "service", "count", "idc", "state", "actor")} == \
        {"id": 1, "kind": "shrink", "service": "feed", "count": 2, "idc": "aliyun", "state": "queued", "actor": os_user().name}
    assert [x["name"] for x in f["steps"]] == ["deregister", "drain", "stop", "return_hosts"]
    assert f["created"].startswith("2026-11-26T11:50")  # the platform's clock, in the world's zone
    assert main(flow(demo_db, "show", "1", "--json")) == 0
    shown = out_json(capsys)
    assert shown["flow"]["state"] == "queued" and shown["items"] == []
    assert all(x["state"] == "waiting" for x in shown["flow"]["steps"])
    s = open_session(make_cfg(demo_db))
    try:
        spec = TaskRow.get_by_id(1).spec
        assert (spec["batch"], spec["retries"]) == (1, 5)
        assert AuditRow.get(AuditRow.action == "flow.start").target == "feed -2 in aliyun"
    finally:
        s.close()


def test_pause_resume_and_stop_each_change_the_flows_state(demo_db, capsys):
    assert main(flow(demo_db, "start", "expand", "user", "2", "--yes")) == 0
    capsys.readouterr()
    assert main(flow(demo_db, "pause", "1")) == 0
    assert capsys.readouterr().out.strip() == "flow 1 paused"
    assert state(demo_db, 1) == "paused"
    assert main(flow(demo_db, "show", "1")) == 0
    assert capsys.readouterr().out.splitlines()[0] == \
        f"flow 1: expand user +2 in tucheng, paused at 0/9 not started (by {os_user().name}, created Thu 26 Nov 11:50:00)"
    assert main(flow(demo_db, "resume", "1")) == 0
    assert capsys.readouterr().out.strip() == "flow 1 resumed"
    assert main(flow(demo_db, "stop", "1")) == 2  # it changes the platform: asked, and no terminal to ask
    assert "stop flow 1: user +2 in tucheng, running at 0/9 not started" in capsys.readouterr().out
    assert state(demo_db, 1) == "running"
    assert main(flow(demo_db, "stop", "1", "--yes")) == 0
    assert capsys.readouterr().out.strip() == "flow 1 stopped"
    assert main(flow(demo_db, "resume", "1")) == 2
    assert capsys.readouterr().err.strip() == "cockpit: Resume a flow failed: flow 1 is cancelled"
    assert state(demo_db, 1) == "cancelled"
    assert main(flow(demo_db, "show", "1")) == 0
    text = capsys.readouterr().out
    assert f"why: stopped by {os_user().name}" in text and "# no hosts or containers yet" in text


def test_read_only_refuses_start_and_stop_and_the_audit_has_it(demo_db, capsys):
    assert main(flow(demo_db, "start", "expand", "feed", "1", "--yes")) == 0
    capsys.readouterr()
    assert main(["--readonly", *flow(demo_db, "start", "expand", "feed", "1")]) == 2  # refused before any question
    err = capsys.readouterr().err
    assert err.strip() == "cockpit: Start an expansion flow (scale out or in): read-only mode: no changes"
    assert main(["--readonly", *flow(demo_db, "stop", "1", "--yes")]) == 2
    assert "read-only mode" in capsys.readouterr().err
    assert state(demo_db, 1) == "queued"
    s = open_session(make_cfg(demo_db))
    try:
        assert AuditRow.select().where(AuditRow.outcome == "refused").count() == 2
    finally:
        s.close()


@pytest.mark.parametrize("args, message", [
    (["start", "grow", "feed", "3"], "argument expand|shrink: invalid choice: 'grow'"),
    (["start", "expand", "feed", "0"], "argument COUNT: expected a count of containers from 1 to 10000, got 0"),
    (["start", "expand", "feed", "10001"], "argument COUNT: expected a count of containers from 1 to 10000"),
    (["start", "expand", "feed", "lots"], "argument COUNT: expected a whole number, got 'lots'"),
    (["start", "expand", "feed;rm", "3"], "argument SERVICE: expected a name of letters, digits"),
    (["start", "expand", "nope", "3", "--yes"], "no service named 'nope'"),
    (["start", "expand", "feed", "3", "--idc", "mars", "--yes"], "no IDC named 'mars' (yongfeng, tucheng, aliyun)"),
    (["start", "shrink", "feed", "241", "--idc", "aliyun", "--yes"],
     "feed runs 240 containers in aliyun; 241 cannot be stopped there"),
    (["start", "expand", "feed", "3", "--batch", "0"], "argument --batch: expected a number of hosts from 1 to 1000"),
    (["start", "expand", "feed", "3", "--retries", "21"], "argument --retries: expected a number of attempts from 1"),
    (["show", "99"], "no flow 99 (cockpit flow list shows them)"),
    (["pause", "7"], "no flow 7"),
    (["stop", "x1"], "argument ID: expected a whole number, got 'x1'"),
    (["start", "expand"], "the following arguments are required: SERVICE, COUNT"),
])
def test_bad_input_is_one_line_and_exit_2_and_nothing_is_queued(demo_db, capsys, args, message):
    assert main(flow(demo_db, *args)) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err
    s = open_session(make_cfg(demo_db))
    try:
        assert TaskRow.select().where(TaskRow.kind.in_(("expand", "shrink"))).count() == 0
    finally:
        s.close()


# --- with an engine running beside it ---------------------------------------------------------------


def _engine(db: str, home: Path) -> subprocess.Popen:
    cfg = home / "cockpit" / "config.yaml"
    cfg.parent.mkdir(parents=True, exist_ok=True)
    cfg.write_text("tick_s: 0.2\nautoscale: false\n")  # the autoscaler changes nothing on its own here
    env = {**os.environ, "XDG_DATA_HOME": str(home), "XDG_CONFIG_HOME": str(home), "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", "cockpit", "engine", "--db", db], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True, env=env)


def _first_line(p: subprocess.Popen, timeout: float = 30) -> str:
    out: list[str] = []
    reader = threading.Thread(target=lambda: out.append(p.stdout.readline()), daemon=True)
    reader.start()
    reader.join(timeout)
    assert out, f"no word from the engine within {timeout} s"
    return out[0].rstrip("\n")


def _shown(db: str, fid: int, capsys) -> dict:
    assert main(flow(db, "show", str(fid), "--json")) == 0
    return out_json(capsys)


def test_a_flow_started_from_the_command_line_runs_on_the_engine_to_the_end(demo_db, tmp_path, capsys):
    engine = _engine(demo_db, tmp_path / "home")
    try:
        assert _first_line(engine) == "engine active"
        assert main(flow(demo_db, "start", "expand", "relation", "2", "--yes")) == 0
        lines = capsys.readouterr().out.splitlines()
        assert lines[0] == "flow 1 queued: relation +2 in yongfeng"
        assert lines[1].startswith("the engine on ") and f":{engine.pid} carries it out" in lines[1]
        deadline = time.monotonic() + 30
        while (shown := _shown(demo_db, 1, capsys))["flow"]["state"] != "done":
            assert shown["flow"]["state"] in ("queued", "running") and time.monotonic() < deadline, shown["flow"]
            time.sleep(0.2)
        assert [x["state"] for x in shown["flow"]["steps"]] == ["done"] * 9
        assert [(i["kind"], i["state"]) for i in shown["items"]] == [("container", "done")] * 2
        assert all(i["log"][-1]["text"] == "registered in yongfeng" for i in shown["items"])
        assert main(flow(demo_db, "show", "1")) == 0
        text = capsys.readouterr().out
        assert text.startswith(f"flow 1: expand relation +2 in yongfeng, done, 9/9 steps (by {os_user().name}")
        assert "service discovery      done" in text and "# 2 hosts and containers: 2 done" in text
    finally:
        engine.send_signal(signal.SIGTERM)
        engine.wait(timeout=30)
