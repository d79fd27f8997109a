"""A steady HTTP load through the lab's front door, counting what was sent, what failed and which
container answered: how the lab shows (and the tests and the benchmark check) that scaling a
service out or in loses no request."""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass, field

import httpx


@dataclass
class LoadCounts:
    sent: int = 0
    failed: int = 0
    answered_by: Counter = field(default_factory=Counter)  # the body each container answers: its name
    failures: Counter = field(default_factory=Counter)  # why requests failed, in words


class SteadyLoad:
    """`threads` clients each sending GET `url` one after another (at most `rate_per_s` in all,
    when given) until stopped."""

    def __init__(self, url: str, threads: int = 4, rate_per_s: float | None = None, timeout_s: float = 5.0):
        if not 1 <= threads <= 64:
            raise ValueError(f"threads: 1 to 64, got {threads}")
        self.url = url
        self.threads = threads
        self.gap_s = threads / rate_per_s if rate_per_s else 0.0
        self.timeout_s = timeout_s
        self.counts = LoadCounts()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._workers: list[threading.Thread] = []

    def start(self) -> SteadyLoad:
        self._stop.clear()
        for i in range(self.threads):
            t = threading.Thread(target=self._run, name=f"load-{i}", daemon=True)
            t.start()
            self._workers.append(t)
        return self

    def stop(self) -> LoadCounts:
        self._stop.set()
        for t in self._workers:
            t.join(self.timeout_s + 1)
        self._workers = []
        return self.snapshot()

    def snapshot(self) -> LoadCounts:
        with self._lock:
            return LoadCounts(self.counts.sent, self.counts.failed, Counter(self.counts.answered_by),
                              Counter(self.counts.failures))

    def __enter__(self) -> SteadyLoad:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def _run(self) -> None:
        with httpx.Client(timeout=self.timeout_s, trust_env=False) as client:
            while not self._stop.is_set():
                began = time.monotonic()
                ok, said = self._one(client)
                with self._lock:
                    self.counts.sent += 1
                    if ok:
                        self.counts.answered_by[said] += 1
                    else:
                        self.counts.failed += 1
                        self.counts.failures[said] += 1
                if self.gap_s:
                    self._stop.wait(max(0.0, self.gap_s - (time.monotonic() - began)))

    def _one(self, client: httpx.Client) -> tuple[bool, str]:
        try:
            r = client.get(self.url)
        except httpx.HTTPError as e:
            return False, type(e).__name__
        if r.status_code != 200:
            return False, f"HTTP {r.status_code}"
        return True, r.text.strip()[:80]
