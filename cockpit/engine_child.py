"""The TUI's engine in a process of its own, for a big platform.

At 20,000 hosts the engine's work (a tick over 200,000 containers, tasks of thousands of calls)
holds the interpreter long enough to delay keys; in its own process it runs on the other core
and the TUI only watches it, as any second Cockpit would (the lease decides who is active).
The child is `cockpit engine` with the same config, store, world and speed; it dies with the TUI
(PR_SET_PDEATHSIG, so a TUI killed outright still takes it along, and it hands the lease back on
the SIGTERM), and its log goes to a file beside the store, never to the TUI's terminal.
It runs a little below the TUI's priority (NICE): on a machine whose cores are busy, the keys
the SRE types come before the engine's next tick, which can wait a few milliseconds.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from cockpit.config import Config
from cockpit.domain import World

DB_ENV = "COCKPIT_ENGINE_DB"  # the store the child engine opens (never on its command line: ps shows that)
APART_HOSTS = 5000  # `engine: auto` runs the engine apart for a world bigger than this
STOP_S = 10.0
NICE = 5  # a quarter of a contended core for the engine at worst (CFS weights): its lease renews with ease


def runs_apart(cfg: Config, world: World) -> bool:
    if cfg.engine == "auto":
        return sum(g.count for g in world.host_groups) > APART_HOSTS
    return cfg.engine == "apart"


@dataclass
class EngineChild:
    proc: subprocess.Popen
    log: Path

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> None:
        """SIGTERM (it hands the lease back), then SIGKILL if it has not gone within STOP_S."""
        if self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(STOP_S)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)


_LIBC = ctypes.CDLL(None, use_errno=True)  # loaded here: no dlopen between fork and exec


def _die_with(parent: int):
    def arm() -> None:
        """In the child, before exec: SIGTERM when the TUI's process ends, however it ends."""
        _LIBC.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
        if os.getppid() != parent:  # the TUI died before the line above ran (adopted by init or a subreaper)
            os._exit(0)
        os.nice(NICE)
        try:  # a new session gets an autogroup of its own (sched_autogroup): the group's weight counts
            with open("/proc/self/autogroup", "w") as f:
                f.write(str(NICE))
        except OSError:  # no autogroups on this kernel: the process's nice is all there is
            pass

    return arm


def start(cfg: Config, world_file: str, db_url: str, log_dir: Path) -> EngineChild:
    """`cockpit engine` on the same store, world, config and speed; OSError when it cannot start."""
    argv = [sys.executable, "-m", "cockpit"]
    if cfg.source:
        argv += ["--config", cfg.source]
    argv += ["engine", "--world", world_file]  # the store's URL in the environment: it may hold a password
    if cfg.speed is not None:
        argv += ["--speed", f"{cfg.speed:g}"]
    log_dir.mkdir(parents=True, exist_ok=True)
    log = log_dir / "engine.log"
    with open(log, "ab") as out:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                env={**os.environ, DB_ENV: db_url},
                                start_new_session=True,  # the terminal's ^C and hang-up are the TUI's to pass on
                                preexec_fn=_die_with(os.getpid()), close_fds=True)
    return EngineChild(proc, log)
