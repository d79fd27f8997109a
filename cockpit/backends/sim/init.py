"""Simulated initialisation: each host runs the playbook's tasks in a second or two; a few fail."""

from __future__ import annotations

import random
import threading
import time
import zlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from cockpit.backends.base import InitEvent, InitTarget

TASKS = ["ntp servers", "sysctl settings", "docker daemon configuration", "docker installed", "docker running"]
FAILURES = {
    "docker installed": "E: Unable to locate package docker.io",
    "ntp servers": "Destination directory /etc/chrony does not exist",
    "docker running": "Job for docker.service failed because the control process exited with error code.",
}


class SimInit:
    def __init__(self, seed: int = 0, failure_rate: float = 0.03, task_s: tuple[float, float] = (0.1, 0.4), forks: int = 10):
        self.seed = seed
        self.failure_rate = failure_rate
        self.task_s = task_s
        self.forks = forks

    def run(self, hosts: list[InitTarget], emit: Callable[[InitEvent], None], timeout_s: float,
            stop: threading.Event | None = None) -> None:
        deadline = time.monotonic() + timeout_s
        stop = stop or threading.Event()

        def one(h: InitTarget) -> None:
            rng = random.Random(self.seed ^ zlib.crc32(h.name.encode()))
            fail_at = rng.choice(list(FAILURES)) if rng.random() < self.failure_rate else None
            for task in TASKS:
                if time.monotonic() > deadline or stop.is_set():
                    return  # the runner reports it timed out, or nobody listens any more
                emit(InitEvent(h.name, "initialising", task))
                time.sleep(rng.uniform(*self.task_s))
                if task == fail_at:
                    emit(InitEvent(h.name, "failed", task, FAILURES[task]))
                    return
            emit(InitEvent(h.name, "ready"))

        with ThreadPoolExecutor(self.forks, thread_name_prefix="sim-init") as pool:
            list(pool.map(one, hosts))
