"""The ECS order queue: 1,000 instances through the real Aliyun SDK backend against the simulated
cloud's HTTP face (a separate `cockpit serve cloud` process). Prints one JSON object.

Limits as the issue sets them: at most 20 instances per call, at most 20 calls in flight, 300 ms
a call, and the first-priority zone out of stock. theoretical_min_s = (ceil(50 calls / 20 in
flight) + 1) x 0.3 s: the least any client obeying the same limits can take, with one round lost
to discovering the stock-out. wall_s runs from the order placed to the last instance created.

Goals: ratio <= 1.2, created = 1000, duplicates = 0.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from cockpit import world  # noqa: E402
from cockpit.backends.aliyun import AliyunCloud, Credentials  # noqa: E402
from cockpit.engine.ecs import DrainSettings, EcsDrainer  # noqa: E402
from cockpit.engine.orders import place_order  # noqa: E402
from cockpit.engine.seed import ensure_seeded  # noqa: E402
from cockpit.store.db import open_store  # noqa: E402
from cockpit.store.models import EcsCallRow, EcsOrderRow, HostRow  # noqa: E402

INSTANCES = 1000
PER_CALL = 20
IN_FLIGHT = 20
LATENCY_S = 0.3


def main() -> None:
    w = world.load(world.DEMO_WORLD)
    tpl = w.template(101)
    first_zone = tpl.ecs.zones[0]
    env = {**os.environ, "ALIBABA_CLOUD_ACCESS_KEY_ID": "bench-key", "ALIBABA_CLOUD_ACCESS_KEY_SECRET": "bench-secret"}
    server = subprocess.Popen(
        [sys.executable, "-m", "cockpit", "serve", "cloud", "--latency-ms", str(LATENCY_S * 1000),
         "--max-in-flight", str(IN_FLIGHT), "--stock", f"{first_zone}:{tpl.ecs.instance_type}=0"],
        stdout=subprocess.PIPE, text=True, env=env,
    )
    try:
        endpoint = server.stdout.readline().split()[4]
        with tempfile.TemporaryDirectory() as d:
            db = open_store(os.path.join(d, "bench.db"))
            ensure_seeded(db, w)
            cloud = AliyunCloud("cn-beijing", Credentials("bench-key", "bench-secret"), endpoint=endpoint)
            before = len(cloud.describe_instances([h.instance_id for h in HostRow.select() if h.instance_id]))
            drainer = EcsDrainer(db, cloud, w, DrainSettings(batch=PER_CALL, max_in_flight=IN_FLIGHT))
            t0 = time.time()
            oid = place_order(w, tpl, INSTANCES, None, "bench", 0.0)
            drainer.drain(until=lambda: EcsOrderRow.get_by_id(oid).state not in ("queued", "running"))
            order = EcsOrderRow.get_by_id(oid)
            last = max(c.real_finished for c in EcsCallRow.select().where(EcsCallRow.state == "ok"))
            ids = [h.instance_id for h in HostRow.select().where(HostRow.order == oid)]
            # ask the cloud what it made, not the store: every instance in the account minus those before
            made = _count_all(cloud) - before
            if os.environ.get("BENCH_TRACE"):
                for c in EcsCallRow.select().order_by(EcsCallRow.real_started):
                    print(f"{c.real_started - t0:.3f} {c.real_finished - t0 if c.real_finished else -1:.3f} "
                          f"{c.state} {c.zone} {c.amount} {c.error_code}", file=sys.stderr)
    finally:
        server.terminate()
        server.wait(timeout=10)
    wall = last - t0
    theoretical = (math.ceil(INSTANCES / PER_CALL / IN_FLIGHT) + 1) * LATENCY_S
    print(json.dumps({
        "instances": INSTANCES,
        "wall_s": round(wall, 3),
        "theoretical_min_s": round(theoretical, 3),
        "ratio": round(wall / theoretical, 3),
        "created": len(set(ids)),
        "duplicates": made - len(set(ids)),
        "fallbacks": len(order.fallbacks),
        "calls": EcsCallRow.select().count(),
        "state": order.state,
    }))


def _count_all(cloud: AliyunCloud) -> int:
    """Instances in the account, through DescribeInstances' paging."""
    from aliyunsdkecs.request.v20140526.DescribeInstancesRequest import DescribeInstancesRequest

    r = DescribeInstancesRequest()
    r.set_PageSize(1)
    return int(cloud._do(r)["TotalCount"])


if __name__ == "__main__":
    main()
