"""Cockpit opened on a lab, with its engine running in this process, and flows run to their end:
what the lab's integration tests and bench/expansion.py drive it with."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from cockpit.lab.procs import LabError


@contextmanager
def cockpit_on(d: Path, *, autoscale: bool = False, timeout_s: float = 30.0) -> Iterator:
    """A session on the lab in `d` (its cockpit.yaml), its engine active."""
    from cockpit import config
    from cockpit.session import open_session

    cfg = config.load(str(d / "cockpit.yaml"))
    cfg.autoscale = autoscale
    s = open_session(cfg, engine=True)
    try:
        s.engine.start()
        deadline = time.monotonic() + timeout_s
        while s.engine.flows is None:
            if time.monotonic() > deadline:
                raise LabError(f"the engine on the lab in {d} did not become active within {timeout_s:g} s")
            time.sleep(0.05)
        yield s
    finally:
        s.close()


def run_flow(cockpit, kind: str, service: str, count: int, idc: str, *, timeout_s: float = 120.0, **kw):
    """Start a flow and wait for its end; the flow as it ended (LabError if it did not)."""
    out = cockpit.start_flow(kind, service, count, idc, **kw)
    if not out.ok:
        raise LabError(out.message)
    return wait_flow(cockpit, out.task, timeout_s)


def wait_flow(cockpit, flow: int, timeout_s: float = 120.0):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        f = cockpit.flow(flow)
        if f.state in ("done", "failed", "cancelled"):
            return f
        time.sleep(0.1)
    raise LabError(f"flow {flow} did not end within {timeout_s:g} s")


def wait_until(predicate, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise LabError(f"{what}: not within {timeout_s:g} s")
