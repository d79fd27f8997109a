"""Start-up, idle cost and key latency of the TUI, per world. Prints one JSON object.

    bench/startup.py                                  # the demo world, then data/world-20k.yaml
    bench/startup.py --world data/world-20k.yaml      # one world (--world again for more)
    bench/startup.py --world data/world-20k.yaml --engine inside  # the engine in the TUI's process

Runs `cockpit --world FILE --speed 60` in a pseudo-terminal of 80x24 as a user would over SSH,
twice per world, on a store of its own in a new temporary directory:

- cold: a new store. Cockpit seeds it (in a child process while the TUI loads) before it
  paints: `first_paint_cold_s` is what a new user waits for the first time.
- warm: again on that store, now seeded. `first_paint_s` is from process start to the dashboard
  drawn with data: the moment the platform totals line ("Platform 2060/2060 hosts") is on the
  terminal's screen; `first_paint_cpu_s` is the CPU the process had used by then (the machine
  is shared: the wall time moves with its load, this much less). `engine_active_s`: until the
  header says the engine is active (it loads the platform after the first paint). Then 1 s to
  settle and 10 s of live refresh at 60x on the dashboard: `idle_cpu_pct` is the CPU of one core
  the process used (the TUI and the engine it runs), `idle_ui_thread_cpu_pct` that of its main
  thread alone (the event loop that draws the screen); then the key walk below. `rss_mb` is the
  process's peak resident memory (VmHWM) at the end, so it includes the hosts view holding
  every host.

`--engine auto|inside|apart` is written as the config's `engine:` (default auto, what `cockpit`
does: the engine runs in a process of its own, which the TUI starts and watches, for a world of
more than 5,000 hosts). `engine` says where it ran; when apart, `idle_engine_cpu_pct` and
`engine_rss_mb` are that process's, and the goals are the TUI's.

Key latency (`key_p95_ms`: the 95th percentile, nearest rank, of 50 keys; `key_max_ms` the worst)
is measured in the terminal, as a user sees it: everything Cockpit writes goes into a terminal
emulator (pyte) as it arrives; a key's time runs from writing its bytes to the pty to the first
read of Cockpit's output after which the emulated screen shows the key's effect, checked by a
predicate on the screen's text and colours (not "any output": at 60x the clock and the
dashboard redraw every second, which says nothing about the key). A key is written only once the
previous one was answered and the screen had SETTLE_S to rest, so each is timed alone. A key whose
effect does not show within TIMEOUT_S counts as TIMEOUT_S. The walk (`walk`): `:hosts` typed into
the prompt and Enter (the hosts view drawn with every host), `s` eight times (the summary says the
next sort), `j` down the table (the cursor drawn on another row), `/` then a filter typed and
taken back a character at a time (the summary shows the filter and the hosts matching it: the
table and the summary are updated together), Enter to close the filter bar, `G` and `k`, `]`
twice and `[` twice (the Pools, Moves, Pools and Hosts tabs' tables), and `:plan` Enter (the
plan form). Esc is left out: a terminal program cannot tell a lone ESC from the start of an
escape sequence until the terminal's escape delay (Textual's ESCDELAY, 100 ms) has passed, which
is the terminal protocol's wait, not Cockpit's work. `BENCH_SAMPLES=1` prints every key's time.

Goals: on the demo world first_paint_s <= 0.8 and rss_mb <= 250; on any other world (made for
20,000 hosts and 200,000 containers) first_paint_s <= 1.5 and rss_mb <= 600; on both
idle_cpu_pct <= 15 and key_p95_ms <= 100. `goals_met` says so per world. `load_avg_1m` is the
machine's load before and after, for reading the figures.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import math
import os
import pty
import re
import signal
import struct
import subprocess
import sys
import tempfile
import termios
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pyte

ROOT = Path(__file__).resolve().parent.parent
COCKPIT = ROOT / ".venv" / "bin" / "cockpit"
DEMO = ROOT / "data" / "demo-world.yaml"
BIG = ROOT / "data" / "world-20k.yaml"
COLS, ROWS = 80, 24
SPEED = 60
IDLE_S = 10.0
SETTLE_S = 0.15  # between keys: each is timed from a screen at rest
TIMEOUT_S = 5.0
PAINT_TIMEOUT_S = 120.0  # a cold start seeds the store first: 200,000 containers take a while
GOALS_DEMO = {"first_paint_s": 0.8, "rss_mb": 250, "idle_cpu_pct": 15, "key_p95_ms": 100}
GOALS_BIG = {"first_paint_s": 1.5, "rss_mb": 600, "idle_cpu_pct": 15, "key_p95_ms": 100}
SORTS = ("name", "alloc", "containers", "down first")  # the cycle of `s` in :hosts
FILTER = "tc-h"


# --- the screen, as the terminal shows it ---------------------------------------------------


# The pty is read by a process of its own that only stamps what arrives and passes it on. Read
# by the emulator's thread, every chunk would wait for the chunks before it to be emulated (pure
# Python, about 1 ms per KB: 20 ms for a view's first frame), and so would Cockpit's writes (a
# pty holds 4 KB): the bench's own work would be counted as Cockpit's.
TAP = r"""
import os, struct, sys, time
fd = int(sys.argv[1])
while True:
    try:
        chunk = os.read(fd, 65536)
    except OSError:  # EIO: the other side of the pty is closed
        break
    if not chunk:
        break
    data = struct.pack("<qI", time.monotonic_ns(), len(chunk)) + chunk
    while data:
        data = data[os.write(1, data):]
"""
HEAD = struct.Struct("<qI")


class Terminal:
    """Cockpit in a pty, its output fed to a terminal emulator by a reader thread as the tap
    passes it on. A probe is a predicate on the screen: `wait` returns when a chunk made it true,
    with the time that chunk reached the terminal (times are time.monotonic())."""

    def __init__(self, world: Path, home: str):
        master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", ROWS, COLS, 0, 0))
        self.screen = pyte.Screen(COLS, ROWS)
        self._stream = pyte.ByteStream(self.screen)
        self._lock = threading.Condition()
        self._probe: Callable[[pyte.Screen], bool] | None = None
        self._hit: float | None = None
        self._since = 0.0  # a key's effect counts only in output stamped after the key was written
        self._closed = False
        self.master = master
        # Started first, and reading before Cockpit starts: its own start-up is not in the figures.
        self._tap = subprocess.Popen([sys.executable, "-S", "-c", TAP, str(master)], pass_fds=(master,),
                                     stdout=subprocess.PIPE, stdin=subprocess.DEVNULL)
        fcntl.fcntl(self._tap.stdout.fileno(), fcntl.F_SETPIPE_SZ, 1 << 20)  # frames of slack
        os.write(slave, b"tap\r\n")  # echoed back once the tap reads
        head = self._tap.stdout.read(HEAD.size)
        self._tap.stdout.read(HEAD.unpack(head)[1])
        self.t0 = time.monotonic()
        self.proc = subprocess.Popen(
            [str(COCKPIT), "--world", str(world), "--speed", str(SPEED)],
            stdin=slave, stdout=slave, stderr=slave,
            env=_env(home), start_new_session=True, close_fds=True,
        )
        os.close(slave)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        pipe = self._tap.stdout
        while True:
            head = pipe.read(HEAD.size)
            if len(head) < HEAD.size:
                break
            at_ns, n = HEAD.unpack(head)
            chunk = pipe.read(n)
            with self._lock:
                self._stream.feed(chunk)
                at = at_ns / 1e9
                if self._probe is not None and self._hit is None and at >= self._since and self._probe(self.screen):
                    self._hit = at
                    self._lock.notify_all()
        with self._lock:
            self._closed = True
            self._lock.notify_all()

    def wait(self, probe: Callable[[pyte.Screen], bool], timeout: float, keys: bytes = b"") -> float | None:
        """Write `keys` (if any), then wait until the screen satisfies `probe`: the seconds from
        the write to the read that did it, or None after `timeout`. Without keys: the moment
        (time.monotonic()) that chunk reached the terminal, or of now when the screen shows it already."""
        with self._lock:
            self._probe, self._hit = probe, None
            start = time.monotonic()
            self._since = start if keys else 0.0
            if keys:
                os.write(self.master, keys)
            elif probe(self.screen):
                self._probe = None
                return start
            end = start + timeout
            while self._hit is None and not self._closed and time.monotonic() < end:
                self._lock.wait(end - time.monotonic())
            hit, self._probe = self._hit, None
        if hit is None:
            return None
        return hit - start if keys else hit

    def text(self) -> str:
        with self._lock:
            return "\n".join(self.screen.display)

    def close(self) -> int:
        self.proc.send_signal(signal.SIGHUP)  # as when the SSH connection drops
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        try:
            self._tap.wait(timeout=5)  # its read of the pty fails once Cockpit has closed it
        except subprocess.TimeoutExpired:
            self._tap.kill()
            self._tap.wait()
        self._reader.join(timeout=2)
        os.close(self.master)
        return self.proc.returncode


# --- what each key should show ------------------------------------------------------------


def _lines(s: pyte.Screen) -> list[str]:
    return s.display


def _has(pattern: str) -> Callable[[pyte.Screen], bool]:
    rx = re.compile(pattern)
    return lambda s: any(rx.search(line) for line in _lines(s))


def painted(s: pyte.Screen) -> bool:
    """The dashboard with data: the platform totals line."""
    return any(re.match(r"\s*Platform \d+/\d+ hosts", line) for line in _lines(s))


def _prompt_typed(typed: str) -> Callable[[pyte.Screen], bool]:
    """The `:` prompt's field holds exactly `typed`: the characters in the typed colour (a
    suggestion that follows them is drawn in another)."""

    def check(s: pyte.Screen) -> bool:
        for y, line in enumerate(_lines(s)):
            if not line.startswith("▊") or line.strip("▊▎ ▔▁") == "":
                continue
            row = s.buffer[y]
            x = len(line) - len(line[1:].lstrip(" "))  # the first character of the field's text
            fg = row[x].fg
            run = ""
            while x < COLS and row[x].fg == fg and row[x].data != "▎":
                run += row[x].data
                x += 1
            if run.rstrip() == typed:
                return True
        return False

    return check


def cursor_line(s: pyte.Screen) -> tuple[int, str] | None:
    """The table row drawn in the cursor's colours: the one row under a table's header whose
    background is its own (the others share the table's)."""
    lines = _lines(s)
    head = next((y for y, line in enumerate(lines) if re.match(r"(Host|Pool|Scope) ", line)), None)
    if head is None:
        return None
    body = range(head + 1, ROWS - 1)
    bgs: dict[str, list[int]] = {}
    for y in body:
        bgs.setdefault(s.buffer[y][0].bg, []).append(y)
    lone = [ys[0] for ys in bgs.values() if len(ys) == 1]
    if len(lone) != 1 or len(bgs) < 2:
        return None
    return lone[0], lines[lone[0]]


def _cursor_moved(before: tuple[int, str] | None) -> Callable[[pyte.Screen], bool]:
    def check(s: pyte.Screen) -> bool:
        now = cursor_line(s)
        return now is not None and now != before and now[1] != (before[1] if before else None)

    return check


def _summary(hosts: int, sort: str, query: str) -> Callable[[pyte.Screen], bool]:
    """The hosts view's summary line as `show` writes it with the table: count, sort, filter."""
    count = rf"\d+ of {hosts} hosts" if query else rf"{hosts} of {hosts} hosts"
    tail = rf".*filter: {re.escape(query)}\s*$" if query else r"(?!.*filter:)"
    rx = re.compile(rf"^\s*{count}.*sorted by {re.escape(sort)}\b{tail}")
    return lambda s: any(rx.search(line) for line in _lines(s))


@dataclass
class Step:
    name: str
    keys: bytes
    done: Callable[[pyte.Screen], bool] | None  # None: judged against the screen before the key
    moves_cursor: bool = False


def walk(hosts: int) -> list[Step]:
    """The 50 keys, in order, each with what the screen must show once it is answered."""
    steps = [Step(":", b":", _has(r"view: dashboard hosts"))]
    steps += [Step(f":{'hosts'[:k]}", "hosts"[k - 1].encode(), _prompt_typed("hosts"[:k])) for k in range(1, 6)]
    steps.append(Step("hosts ⏎", b"\r", lambda s: _has(r"^Host ")(s) and _summary(hosts, "name", "")(s)))
    for k in range(1, 9):  # every sort, twice
        sort = SORTS[k % len(SORTS)]
        steps.append(Step(f"s → {sort}", b"s", _summary(hosts, sort, "")))
    steps += [Step("j", b"j", None, moves_cursor=True) for _ in range(9)]
    steps.append(Step("/", b"/", _has(r"filter: words that must all appear")))
    steps += [Step(f"/{FILTER[:k]}", FILTER[k - 1].encode(), _summary(hosts, "name", FILTER[:k]))
              for k in range(1, len(FILTER) + 1)]
    steps += [Step(f"/{FILTER[:k]} ⌫", b"\x7f", _summary(hosts, "name", FILTER[:k])) for k in range(len(FILTER) - 1, -1, -1)]
    steps.append(Step("/ ⏎", b"\r", lambda s: not _has(r"filter: words")(s) and _has(r"d Describe")(s)))
    steps.append(Step("G", b"G", None, moves_cursor=True))
    steps += [Step("k", b"k", None, moves_cursor=True) for _ in range(5)]
    steps.append(Step("] → Pools", b"]", _has(r"^Pool .*Up/all")))
    steps.append(Step("] → Moves", b"]", _has(r"^When .*From")))
    steps.append(Step("[ → Pools", b"[", _has(r"^Pool .*Up/all")))
    steps.append(Step("[ → Hosts", b"[", _has(r"^Host .*Labels")))
    steps.append(Step(":", b":", _has(r"view: dashboard hosts")))
    steps += [Step(f":{'plan'[:k]}", "plan"[k - 1].encode(), _prompt_typed("plan"[:k])) for k in range(1, 5)]
    steps.append(Step("plan ⏎", b"\r", _has(r"Fill in the request and press Enter to preview")))
    assert len(steps) == 50
    return steps


def p95(xs: list[float]) -> float:
    s = sorted(xs)
    return s[max(math.ceil(0.95 * len(s)) - 1, 0)]


def key_walk(term: Terminal, hosts: int) -> dict:
    """Each key of the walk, timed from its write to the screen that answers it."""
    times: dict[str, list[float]] = {}
    flat: list[float] = []
    late: list[str] = []
    for step in walk(hosts):
        time.sleep(SETTLE_S)
        check = step.done
        if step.moves_cursor:
            with term._lock:
                before = cursor_line(term.screen)
            check = _cursor_moved(before)
        took = term.wait(check, TIMEOUT_S, step.keys)
        ms = TIMEOUT_S * 1000 if took is None else took * 1000
        if took is None:
            late.append(step.name)
        flat.append(ms)
        times.setdefault(step.name, []).append(round(ms, 1))
    if os.environ.get("BENCH_SAMPLES"):  # every key's time, for looking into a figure
        print(json.dumps(times, ensure_ascii=False), file=sys.stderr)
    worst = sorted(times.items(), key=lambda kv: -max(kv[1]))[:3]
    return {"key_p95_ms": round(p95(flat), 1), "key_max_ms": round(max(flat), 1), "keys": len(flat),
            "slowest_keys": {k: max(v) for k, v in worst}, "keys_unanswered": late}


# --- one run ---------------------------------------------------------------------------


def _proc_cpu_s(pid: int, tid: int | None = None) -> float:
    """CPU seconds of the process, or of one of its threads (the main one's id is the pid's)."""
    stat = f"/proc/{pid}/task/{tid}/stat" if tid is not None else f"/proc/{pid}/stat"
    fields = Path(stat).read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _status_mb(pid: int, key: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    return 0.0


def _env(home: str) -> dict:
    env = {**os.environ, "TERM": "xterm-256color", "XDG_DATA_HOME": home, "XDG_CONFIG_HOME": home,
           "COLUMNS": str(COLS), "LINES": str(ROWS)}
    env.pop("NO_COLOR", None)
    return env


def engine_child(pid: int) -> int | None:
    """The `cockpit engine` process the TUI started for itself (engine: apart, or auto on a big
    world), if any."""
    try:
        kids = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return None
    for k in kids:
        try:
            if b"engine" in Path(f"/proc/{k}/cmdline").read_bytes().split(b"\0"):
                return int(k)
        except OSError:
            continue
    return None


def run_once(world: Path, home: str, hosts: int, measure: bool) -> dict:
    term = Terminal(world, home)
    at = term.wait(painted, PAINT_TIMEOUT_S)
    out: dict = {"first_paint_s": round(at - term.t0, 3) if at is not None else None}
    if at is not None:
        out["first_paint_cpu_s"] = round(_proc_cpu_s(term.proc.pid), 2)  # as the process saw it, whatever the load
    try:
        if at is not None and measure:
            ready = term.wait(_has(r"engine ● active|watching · engine on"), PAINT_TIMEOUT_S)
            out["engine_active_s"] = round(ready - term.t0, 3) if ready is not None else None
            time.sleep(1.0)  # the engine's first ticks settle
            child = engine_child(term.proc.pid)
            out["engine"] = "apart" if child else "inside"
            out.update(_idle(term.proc.pid, child))
            out["rss_idle_mb"] = round(_status_mb(term.proc.pid, "VmRSS"), 1)
            out.update(key_walk(term, hosts))
            out["rss_mb"] = round(_status_mb(term.proc.pid, "VmHWM"), 1)
            if child is not None:
                out["engine_rss_mb"] = round(_status_mb(child, "VmHWM"), 1)
    finally:
        screen = term.text()
        out["exit_code_on_hangup"] = term.close()
    if at is None:
        sys.stderr.write(f"{world}: no first paint within {PAINT_TIMEOUT_S:.0f} s; the screen:\n{screen}\n")
    return out


def _idle(pid: int, engine_pid: int | None) -> dict:
    """IDLE_S of live refresh: CPU of one core used by the cockpit (and by its main thread, the
    event loop that draws the screen; and by an engine apart)."""
    c0, u0, w0 = _proc_cpu_s(pid), _proc_cpu_s(pid, pid), time.perf_counter()
    e0 = _proc_cpu_s(engine_pid) if engine_pid else 0.0
    time.sleep(IDLE_S)
    c1, u1, w1 = _proc_cpu_s(pid), _proc_cpu_s(pid, pid), time.perf_counter()
    e1 = _proc_cpu_s(engine_pid) if engine_pid else 0.0
    out = {"idle_cpu_pct": round(100 * (c1 - c0) / (w1 - w0), 1),
           "idle_ui_thread_cpu_pct": round(100 * (u1 - u0) / (w1 - w0), 1)}
    if engine_pid:
        out["idle_engine_cpu_pct"] = round(100 * (e1 - e0) / (w1 - w0), 1)
    return out


def measure_world(world: Path, engine: str = "auto") -> dict:
    sys.path.insert(0, str(ROOT))
    from cockpit import world as world_mod

    w = world_mod.load(world)
    goals = GOALS_DEMO if world.resolve() == DEMO.resolve() else GOALS_BIG
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="cockpit-bench-startup-") as home:
        Path(home, "cockpit").mkdir()
        Path(home, "cockpit", "config.yaml").write_text(f"engine: {engine}\n")  # where the TUI runs its engine
        t0 = time.perf_counter()
        cold = run_once(world, home, w.host_count, measure=False)
        warm = run_once(world, home, w.host_count, measure=True)
    out = {
        "world": w.name,
        "hosts": w.host_count,
        "containers": sum(sum(s.containers.values()) for s in w.services),
        "idcs": len(w.idcs),
        "engine_setting": engine,
        "first_paint_cold_s": cold["first_paint_s"],
        **{k: v for k, v in warm.items() if k != "exit_code_on_hangup"},
        "speed": SPEED,
        "exit_code_on_hangup": warm["exit_code_on_hangup"],
        "load_avg_1m": [round(load, 2), round(os.getloadavg()[0], 2)],  # before and after: the machine is shared
        "wall_s": round(time.perf_counter() - t0, 1),
        "goals": goals,
    }
    out["goals_met"] = all(out.get(k) is not None and out[k] <= v for k, v in goals.items()) and not out.get(
        "keys_unanswered")
    return out


def _world_arg(text: str) -> Path:
    path = Path(text)
    if not path.is_file():
        raise argparse.ArgumentTypeError(f"no such world file: {text}")
    return path


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="startup.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--world", type=_world_arg, action="append", metavar="FILE",
                   help="a world file to measure (again for more; default: the demo world and data/world-20k.yaml)")
    p.add_argument("--engine", choices=("auto", "inside", "apart"), default="auto",
                   help="the config's `engine:`: auto (as `cockpit` runs by default: apart on a world of more "
                        "than 5,000 hosts), inside the TUI's process, or apart in a process of its own")
    args = p.parse_args(argv)
    worlds = args.world or [DEMO, BIG]
    out = {}
    for world in worlds:
        result = measure_world(world, engine=args.engine)
        out[result.pop("world")] = result
    print(json.dumps(out, ensure_ascii=False))


if __name__ == "__main__":
    main()
