"""Start-up and idle cost of the TUI on the demo world. Prints one JSON object.

Runs `cockpit` in a pseudo-terminal of 80x24 as a user would over SSH, twice: first on a new
store (it seeds the demo platform: the cold start a new user sees), then again on that store
(warm). first_paint_s is from process start to the dashboard drawn with data: the moment the
platform totals line ("Platform … hosts") reaches the terminal. Then 10 s of live refresh at
the README demo speed: CPU of one core used by the process, and its resident memory.

Goals: first_paint_s <= 1.5, idle_cpu_pct <= 15, rss_mb <= 250.
"""

from __future__ import annotations

import json
import os
import pty
import re
import select
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
COCKPIT = ROOT / ".venv" / "bin" / "cockpit"
MARK = re.compile(rb"Platform(\x1b\[[0-9;]*m)*\s*(\x1b\[[0-9;]*m)*\s*\d+/\d+")
IDLE_S = 10.0


def _proc_cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def run_once(data_home: str, measure_idle: bool) -> dict:
    master, slave = pty.openpty()
    os.set_blocking(master, False)
    import fcntl
    import struct
    import termios

    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    env = {
        **os.environ,
        "TERM": "xterm-256color",
        "XDG_DATA_HOME": data_home,
        "XDG_CONFIG_HOME": data_home,
        "COLUMNS": "80",
        "LINES": "24",
    }
    env.pop("NO_COLOR", None)
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [str(COCKPIT), "--speed", "60"], stdin=slave, stdout=slave, stderr=slave, env=env,
        start_new_session=True, close_fds=True,
    )
    os.close(slave)
    buf = bytearray()
    painted: list[float] = []
    stop = threading.Event()

    def reader() -> None:
        while not stop.is_set():
            r, _, _ = select.select([master], [], [], 0.05)
            if not r:
                continue
            try:
                chunk = os.read(master, 65536)
            except OSError:
                return
            if not chunk:
                return
            if not painted:
                buf.extend(chunk)
                if MARK.search(buf):
                    painted.append(time.perf_counter())

    th = threading.Thread(target=reader, daemon=True)
    th.start()
    deadline = time.perf_counter() + 30
    while not painted and time.perf_counter() < deadline and proc.poll() is None:
        time.sleep(0.01)
    out: dict = {"first_paint_s": round(painted[0] - t0, 3) if painted else None}
    if painted and measure_idle:
        time.sleep(1.0)  # let the engine's first ticks and the hosts' first refresh settle
        c0, w0 = _proc_cpu_s(proc.pid), time.perf_counter()
        time.sleep(IDLE_S)
        c1, w1 = _proc_cpu_s(proc.pid), time.perf_counter()
        out["idle_cpu_pct"] = round(100 * (c1 - c0) / (w1 - w0), 1)
        out["rss_mb"] = round(_rss_mb(proc.pid), 1)
    proc.send_signal(signal.SIGHUP)  # as when the SSH connection drops
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    out["exit_code_on_hangup"] = proc.returncode
    stop.set()
    th.join(timeout=1)
    os.close(master)
    if not painted:
        sys.stderr.write(buf[-2000:].decode(errors="replace"))
    return out


def main() -> None:
    sys.path.insert(0, str(ROOT))
    from cockpit import world

    demo = world.load(world.DEMO_WORLD)
    with tempfile.TemporaryDirectory() as home:
        cold = run_once(home, measure_idle=False)
        warm = run_once(home, measure_idle=True)
    print(
        json.dumps(
            {
                "hosts": demo.host_count,
                "containers": sum(sum(s.containers.values()) for s in demo.services),
                "first_paint_s": cold["first_paint_s"],
                "first_paint_warm_s": warm["first_paint_s"],
                "rss_mb": warm.get("rss_mb"),
                "idle_cpu_pct": warm.get("idle_cpu_pct"),
                "speed": 60,
                "exit_code_on_hangup": warm["exit_code_on_hangup"],
            }
        )
    )


if __name__ == "__main__":
    main()
