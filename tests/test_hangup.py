"""When the SSH connection drops, Cockpit exits (no orphan burning CPU) and hands its lease back."""

from __future__ import annotations

import os
import pty
import select
import sys
import time

from cockpit.engine.lease import current_holder
from cockpit.store.db import open_store


def _read_until(fd: int, needle: bytes, timeout: float) -> bytes:
    buf = b""
    deadline = time.time() + timeout
    while time.time() < deadline:
        r, _, _ = select.select([fd], [], [], 0.1)
        if r:
            try:
                buf += os.read(fd, 65536)
            except OSError:
                break
            if needle in buf:
                return buf
    raise AssertionError(f"{needle!r} not seen; last output: {buf[-500:]!r}")


def test_closing_the_terminal_stops_cockpit_and_releases_the_engine_lease(demo_db, tmp_path):
    pid, master = pty.fork()  # the child gets the pty as its controlling terminal, like sshd gives
    if pid == 0:
        os.environ.update({"TERM": "xterm-256color", "XDG_DATA_HOME": str(tmp_path), "XDG_CONFIG_HOME": str(tmp_path)})
        os.execv(sys.executable, [sys.executable, "-m", "cockpit", "--db", demo_db, "--speed", "60"])
    try:
        _read_until(master, b"active", timeout=30)  # the engine runs inside this cockpit
        db = open_store(demo_db)
        holder = current_holder()
        assert holder is not None and holder.pid == pid
        os.close(master)  # the connection drops: the kernel hangs up the session
        deadline = time.time() + 15
        status = None
        while time.time() < deadline:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            time.sleep(0.1)
        else:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
            raise AssertionError("cockpit kept running after its terminal went away")
        assert current_holder() is None  # handed back, not left to lapse
        db.close()
    finally:
        try:
            os.kill(pid, 9)
        except ProcessLookupError:
            pass


def _spawn(db: str, home, *args: str) -> tuple[int, int]:
    pid, master = pty.fork()
    if pid == 0:
        os.environ.update({"TERM": "xterm-256color", "XDG_DATA_HOME": str(home), "XDG_CONFIG_HOME": str(home)})
        os.execv(sys.executable, [sys.executable, "-m", "cockpit", "--db", db, "--speed", "60", *args])
    return pid, master


def _gone_within(pid: int, seconds: float) -> float | None:
    """How long the process took to end, or None (then it is killed)."""
    start = time.monotonic()
    while time.monotonic() - start < seconds:
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done:
            return time.monotonic() - start
        time.sleep(0.02)
    os.kill(pid, 9)
    os.waitpid(pid, 0)
    return None


def test_a_hang_up_always_ends_the_process_twenty_times_out_of_twenty(demo_db, tmp_path):
    """The terminal goes away at all sorts of moments (painting, loading a view, idle): never an orphan."""
    orphans = []
    for i in range(20):
        pid, master = _spawn(demo_db, tmp_path)
        try:
            _read_until(master, b"Platform", timeout=30)
            if i % 3 == 1:  # mid-way through opening a big view
                os.write(master, b":hosts\r")
            elif i % 3 == 2:
                os.write(master, b"/")
            time.sleep(0.05 * (i % 5))
        finally:
            os.close(master)  # the connection drops: the kernel hangs up the session
        if _gone_within(pid, 6.0) is None:
            orphans.append(i)
    assert orphans == []
    db = open_store(demo_db)
    assert current_holder() is None  # and each handed its lease back
    db.close()


def test_q_leaves_within_half_a_second(demo_db, tmp_path):
    pid, master = _spawn(demo_db, tmp_path)
    try:
        _read_until(master, b"active", timeout=30)  # the engine runs inside this cockpit
        os.write(master, b":hosts\r")
        _read_until(master, b"hosts", timeout=10)
        time.sleep(0.5)
        os.write(master, b"q")
        took = None
        start = time.monotonic()
        while time.monotonic() - start < 5:
            done, _ = os.waitpid(pid, os.WNOHANG)
            if done:
                took = time.monotonic() - start
                break
            try:  # keep reading, as a terminal does: a full pty would block the app's last writes
                if select.select([master], [], [], 0.02)[0]:
                    os.read(master, 65536)
            except OSError:
                pass
        assert took is not None and took <= 0.5, took
    finally:
        os.close(master)
        try:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass
