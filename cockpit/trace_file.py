"""Reading a traffic trace for `cockpit simulate --trace FILE` (YAML or JSON), bounded like a world
file, every problem reported as FILE:LINE: field: why.

    start: 2026-11-26T00:00:00+08:00   # the day's first instant, with its offset
    step_s: 60                         # 60 to 3600; the day holds 86400 / step_s values
    qps: {feed: [...], user: [...]}    # every service of the world, QPS per step
    past: {feed: [...]}                # optional: the steps before `start`, oldest first (up to a week)
    hot_events:                        # optional: what the `event` rules see
      - {name: wedding, start: 2026-11-26T20:40:00+08:00, duration_min: 90, factor: 3, services: [feed]}
"""

from __future__ import annotations

import math
from datetime import datetime

import numpy as np

from cockpit.core.autoscale.trace import DAY_S, PAST_DAYS, Trace
from cockpit.domain import HotEvent, World
from cockpit.yamlcheck import Document, Problem, ProblemsError, field_name, read

MAX_QPS = 1e10
KEYS = {"start", "step_s", "qps", "past", "hot_events"}


def load_trace(path: str, world: World) -> Trace:
    doc, problems = read(path)
    if problems:
        raise ProblemsError(problems)
    return TraceReader(doc, world).trace()


class TraceReader:
    def __init__(self, doc: Document, world: World):
        self.doc, self.world, self.problems = doc, world, []

    def bad(self, path: tuple, why: str) -> None:
        self.problems.append(Problem(self.doc.file, self.doc.line(path), field_name(path), why))

    def trace(self) -> Trace:
        d = self.doc.data
        if not isinstance(d, dict):
            self.bad((), "expected a mapping with start, step_s and qps")
            raise ProblemsError(self.problems)
        for k in sorted(set(d) - KEYS):
            self.bad((k,), f"unknown key (expected one of: {', '.join(sorted(KEYS))})")
        start = self.instant(d.get("start"), ("start",))
        step = d.get("step_s", 60)
        if not isinstance(step, int) or isinstance(step, bool) or not 60 <= step <= 3600 or DAY_S % step:
            self.bad(("step_s",), f"expected a whole number of seconds from 60 to 3600 dividing a day, got {step!r}")
            step = 60
        names = [s.name for s in self.world.services]
        steps = DAY_S // step
        qps = self.series(d.get("qps"), ("qps",), names, steps, required=True)
        past = self.series(d.get("past", {}), ("past",), names, None, required=False, most=PAST_DAYS * steps)
        hot = self.hot_events(d.get("hot_events", []))
        if self.problems or start is None:
            raise ProblemsError(self.problems)
        n_past = PAST_DAYS * steps
        past_arr = np.full((len(names), n_past), np.nan)
        for i, name in enumerate(names):
            if name in past:
                v = past[name]
                past_arr[i, n_past - len(v):] = v
        return Trace(start, step, tuple(names), np.array([qps[n] for n in names]), past_arr, hot)

    def instant(self, v, path) -> float | None:
        if isinstance(v, datetime) and v.tzinfo is not None:
            return v.timestamp()
        if isinstance(v, str):
            try:
                t = datetime.fromisoformat(v)
                if t.tzinfo is not None:
                    return t.timestamp()
            except ValueError:
                pass
        self.bad(path, f"expected a timestamp with its offset, like 2026-11-26T00:00:00+08:00, got {v!r}")
        return None

    def series(self, v, path, names, steps, required: bool, most: int | None = None) -> dict[str, np.ndarray]:
        if not isinstance(v, dict):
            self.bad(path, "expected a mapping: service -> list of QPS, one per step")
            return {}
        out = {}
        for name in v:
            if name not in names:
                self.bad(path + (name,), f"no service named {name!r} (known: {', '.join(names)})")
        for name in names:
            if name not in v:
                if required:
                    self.bad(path, f"service {name!r} has no traffic (every service of the world needs one)")
                continue
            vals = v[name]
            if not isinstance(vals, list) or not vals:
                self.bad(path + (name,), "expected a list of QPS, one per step")
                continue
            if steps is not None and len(vals) != steps:
                self.bad(path + (name,), f"expected {steps} values (a day of steps), got {len(vals)}")
                continue
            if most is not None and len(vals) > most:
                self.bad(path + (name,), f"expected at most {most} values (a week of steps), got {len(vals)}")
                continue
            bad = next((i for i, x in enumerate(vals) if isinstance(x, bool) or not isinstance(x, (int, float))
                        or not math.isfinite(x) or not 0 <= x <= MAX_QPS), None)
            if bad is not None:
                self.bad(path + (name, bad), f"expected a QPS from 0 to {MAX_QPS:g}, got {vals[bad]!r}")
                continue
            out[name] = np.asarray(vals, dtype=float)
        return out

    def hot_events(self, v) -> tuple[HotEvent, ...]:
        if not isinstance(v, list):
            self.bad(("hot_events",), "expected a list of hot events")
            return ()
        names = {s.name for s in self.world.services}
        out = []
        for i, e in enumerate(v):
            p = ("hot_events", i)
            need = {"name", "start", "duration_min", "factor", "services"}
            if not isinstance(e, dict) or set(e) != need:
                self.bad(p, f"expected exactly: {', '.join(sorted(need))}")
                continue
            start = self.instant(e["start"], p + ("start",))
            dur, factor, svcs = e["duration_min"], e["factor"], e["services"]
            ok = start is not None
            if not isinstance(dur, int) or isinstance(dur, bool) or not 1 <= dur <= 10080:
                self.bad(p + ("duration_min",), f"expected minutes from 1 to 10080, got {dur!r}")
                ok = False
            if isinstance(factor, bool) or not isinstance(factor, (int, float)) or not 1 < factor <= 100:
                self.bad(p + ("factor",), f"expected a factor above 1, at most 100, got {factor!r}")
                ok = False
            if not isinstance(svcs, list) or not svcs or any(s not in names for s in svcs):
                self.bad(p + ("services",), f"expected services of the world ({', '.join(sorted(names))})")
                ok = False
            if ok:
                out.append(HotEvent(str(e["name"]), datetime.fromtimestamp(start, self.world.traffic.tz), dur,
                                    float(factor), tuple(svcs)))
        return tuple(out)
