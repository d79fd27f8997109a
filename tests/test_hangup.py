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
