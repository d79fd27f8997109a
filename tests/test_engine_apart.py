"""The TUI's engine in a process of its own (engine_child.py): it takes the lease, the TUI says it
is its own engine, and it ends with the TUI however the TUI ends, handing the lease back."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cockpit import engine_child, world
from cockpit.app import create_app
from cockpit.engine.lease import current_holder
from cockpit.session import open_session
from tests.conftest import SMALL, make_cfg
from tests.screen_text import screen_text

ROOT = Path(__file__).resolve().parent.parent


def _wait(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def _holder_pid() -> int | None:
    h = current_holder()
    return h.pid if h else None


def test_auto_runs_the_engine_apart_only_for_a_big_world():
    cfg = make_cfg("x.db")
    assert not engine_child.runs_apart(cfg, world.load(SMALL))
    assert engine_child.runs_apart(cfg, world.load(ROOT / "data" / "world-20k.yaml"))
    cfg.engine = "apart"
    assert engine_child.runs_apart(cfg, world.load(SMALL))
    cfg.engine = "inside"
    assert not engine_child.runs_apart(cfg, world.load(ROOT / "data" / "world-20k.yaml"))


async def test_the_tui_watches_its_own_engine_process_and_says_so(tmp_path):
    db = str(tmp_path / "small.db")
    cfg = make_cfg(db, world=str(SMALL))
    s = open_session(cfg)
    child = engine_child.start(cfg, str(SMALL), db, tmp_path)
    try:
        s.cockpit.engine_expected, s.cockpit.engine_child = True, child.pid
        app = create_app(s.cockpit, cfg, None)
        async with app.run_test(size=(100, 30)) as pilot:
            deadline = time.monotonic() + 30
            while "engine ● active (own process)" not in screen_text(app):
                assert time.monotonic() < deadline, screen_text(app) + child.log.read_text()
                await pilot.pause(0.1)
        assert _holder_pid() == child.pid
        cmdline = Path(f"/proc/{child.pid}/cmdline").read_bytes().split(b"\0")
        assert b"--db" not in cmdline and db.encode() not in cmdline  # a store URL may hold a password
        # below the TUI's priority: the process, and its session's autogroup where there are those
        assert os.getpriority(os.PRIO_PROCESS, child.pid) == min(os.getpriority(os.PRIO_PROCESS, 0) + engine_child.NICE, 19)
        group = Path(f"/proc/{child.pid}/autogroup")
        if group.exists():
            assert group.read_text().split()[-1] == str(engine_child.NICE)
    finally:
        child.stop()
    assert not child.alive() and _holder_pid() is None  # it handed the lease back
    s.close()


def test_the_engine_process_ends_with_a_tui_that_is_killed_outright(tmp_path):
    db = str(tmp_path / "small.db")
    s = open_session(make_cfg(db, world=str(SMALL)))
    script = ("import sys, time\n"
              "from cockpit import engine_child\n"
              "from tests.conftest import make_cfg\n"
              f"c = engine_child.start(make_cfg({db!r}, world={str(SMALL)!r}), {str(SMALL)!r}, {db!r}, "
              f"__import__('pathlib').Path({str(tmp_path)!r}))\n"
              "print(c.pid, flush=True)\n"
              "time.sleep(60)\n")
    tui = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, cwd=ROOT,
                           env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        pid = int(tui.stdout.readline())
        _wait(lambda: _holder_pid() == pid, 30, "the engine process to take the lease")
        tui.send_signal(signal.SIGKILL)
        tui.wait(10)
        _wait(lambda: _holder_pid() is None, 15, "the engine to end and hand the lease back")
        with pytest.raises(ProcessLookupError):
            _wait_gone(pid)
    finally:
        if tui.poll() is None:
            tui.kill()
        s.close()


def _wait_gone(pid: int) -> None:
    """Raises ProcessLookupError once the process is gone (reaped, or a zombie nobody reaps yet)."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            raise ProcessLookupError(pid) from None
        if state == "Z":
            raise ProcessLookupError(pid)
        time.sleep(0.1)
