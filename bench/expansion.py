""""feed +10" on the lab, end to end, under a steady load through nginx. Prints one JSON object.

A lab of three hosts (two in the web pool, one in the shared pool; `cockpit lab up`), Cockpit's
engine in this process on its real systems. feed first runs 8 containers; then, while 4 clients
send requests to http://<nginx>/feed/ one after another:

scale_out_s: "feed +10" from the request to every new container running (on its dockerd, and
  answering on its port) and in nginx's upstreams. 8 + 10 is more than the web hosts hold, so the
  flow borrows the shared host and initialises it with the real playbook over SSH on the way.
scale_in_s: "feed -10" from the request to the stopped containers gone from the engines and
  from nginx (they leave discovery first, drain, then stop).
requests_sent, requests_failed: during both (a failure is a connection error or any status but 200).

Goals: requests_failed = 0, requests_sent >= 1000. Needs root (the lab makes network namespaces).
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from cockpit.lab.down import down  # noqa: E402
from cockpit.lab.drive import cockpit_on, run_flow, wait_until  # noqa: E402
from cockpit.lab.load import SteadyLoad  # noqa: E402
from cockpit.lab.up import up  # noqa: E402

IDC, START, DELTA = "lab-a", 8, 10


def _in_nginx(engine) -> bool:
    from cockpit.store.models import ContainerRow

    running = {f"{c.address}:{c.ports[0][1]}" for c in ContainerRow.select().where(
        (ContainerRow.service == "feed") & (ContainerRow.state == "running"))}
    return {m.key for m in engine.front.members("feed")} == running


def _timed(ck, engine, kind: str) -> tuple[float, object]:
    t0 = time.monotonic()
    flow = run_flow(ck, kind, "feed", DELTA, IDC, timeout_s=300)
    if flow.state != "done":
        raise SystemExit(f"bench: the {kind} flow ended {flow.state}: {flow.reason}")
    wait_until(lambda: _in_nginx(engine), 30, f"nginx follows the {kind} flow")
    return time.monotonic() - t0, flow


def main() -> dict:
    top = Path(tempfile.mkdtemp(prefix="ckb-", dir="/tmp"))
    d = top / "lab"
    try:
        up(d, 3, 1, say=lambda _line: None)
        with cockpit_on(d) as s:
            ck, e = s.cockpit, s.engine
            first = run_flow(ck, "expand", "feed", START, IDC)
            if first.state != "done":
                raise SystemExit(f"bench: the first flow ended {first.state}: {first.reason}")
            wait_until(lambda: _in_nginx(e), 30, "nginx has the first containers")
            load = SteadyLoad(f"{e.front.url}/feed/", threads=4).start()
            try:
                out_s, out = _timed(ck, e, "expand")
                in_s, _ = _timed(ck, e, "shrink")
            finally:
                counts = load.stop()
            steps = {st.name: round(st.seconds or 0.0, 3) for st in out.steps}
    finally:
        down(d, say=lambda _line: None)
        shutil.rmtree(top, ignore_errors=True)
    result = {
        "hosts": 3, "containers_before": START, "delta": DELTA,
        "scale_out_s": round(out_s, 3), "scale_in_s": round(in_s, 3),
        "scale_out_steps_s": steps,
        "requests_sent": counts.sent, "requests_failed": counts.failed,
        "failures": dict(counts.failures),
        "containers_answering": len(counts.answered_by),
    }
    result["goals_met"] = result["requests_failed"] == 0 and result["requests_sent"] >= 1000
    return result


if __name__ == "__main__":
    print(json.dumps(main()))
