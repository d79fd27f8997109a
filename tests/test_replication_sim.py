"""Replication on the simulated platform, as `./run demo` shows it: a release spreads over the
IDCs down the hierarchy, the slow link to the cloud lags, and a hotfix pushed to a slave is a
conflict left alone. And the same from the command line."""

from __future__ import annotations

import json
import os
import time

from cockpit.cli import main
from cockpit.engine.engine import Engine
from cockpit.store.models import AuditRow, ClockRow, EventRow, ReplicationRow


def demo_engine(session, tmp_path, speed: float = 600) -> Engine:
    """The engine running on its own thread, the platform clock at `speed` (600: ten platform
    minutes a second)."""
    e = Engine(session.db, session.world, speed=speed, tick_s=0.2, spool_dir=str(tmp_path / "spool"))
    e.start()
    return e


def until(predicate, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def platform_minutes(session) -> float:
    return (ClockRow.get_by_id(1).t - session.world.start.timestamp()) / 60


def cells(session, image: str) -> dict[str, str]:
    row = dict(session.cockpit.registry_matrix().rows)[image]
    return {reg: c.state for reg, c in row.items()}


def test_a_release_spreads_down_the_hierarchy_and_the_hotfix_on_a_slave_is_a_conflict(session, tmp_path):
    assert cells(session, "feed-web:2026.11.20") == {
        "reg-yongfeng": "source", "reg-tucheng": "in_sync", "reg-tucheng-b": "in_sync", "reg-aliyun": "in_sync"}
    e = demo_engine(session, tmp_path)
    everywhere = {"reg-yongfeng": "source", "reg-tucheng": "in_sync", "reg-tucheng-b": "in_sync",
                  "reg-aliyun": "in_sync"}
    # 11:50 -> past 12:12: the releases at 12:05, 12:08 and 12:12 happen and spread
    until(lambda: "feed-web:2026.11.26" in dict(session.cockpit.registry_matrix().rows)
          and cells(session, "feed-web:2026.11.26") == everywhere)
    until(lambda: platform_minutes(session) > 25 and cells(session, "card-web:2026.11.26")["reg-tucheng-b"] == "in_sync")
    until(lambda: not [x for x in session.cockpit.replications() if x.state in ("pending", "running")])
    card = cells(session, "card-web:2026.11.26")
    assert card["reg-aliyun"] == "conflict"  # the hotfix pushed there first stays; nobody overwrote it
    assert card["reg-tucheng"] == "in_sync" and card["reg-tucheng-b"] == "in_sync"
    policies = {x.policy for x in session.cockpit.replications()}
    assert policies == {"release", "tucheng-sub"}  # the sub-IDC got it through its own policy
    assert EventRow.select().where(EventRow.message.contains("conflict")).exists()
    e.stop()


def test_the_slow_link_to_the_cloud_lags_behind_the_fast_one(session, tmp_path):
    e = demo_engine(session, tmp_path, speed=60)  # a platform minute a second: the copies take a while
    seen: set[str] = set()

    def aliyun_behind_while_tucheng_in_sync() -> bool:
        rows = dict(session.cockpit.registry_matrix().rows)
        row = rows.get("feed-web:2026.11.26")
        if row is None:
            return False
        seen.add(row["reg-aliyun"].state)
        return row["reg-tucheng"].state == "in_sync" and row["reg-aliyun"].state == "behind"

    until(aliyun_behind_while_tucheng_in_sync, timeout=60)
    row = dict(session.cockpit.registry_matrix().rows)["feed-web:2026.11.26"]
    assert row["reg-aliyun"].lag_s > 0
    until(lambda: cells(session, "feed-web:2026.11.26")["reg-aliyun"] == "in_sync", timeout=60)
    tree = {n.name: n for n in session.cockpit.registry_tree()}
    assert tree["reg-aliyun"].link_mbps < tree["reg-tucheng"].link_mbps
    assert tree["reg-tucheng-b"].depth == 2 and all(n.ok for n in tree.values())
    e.stop()


def test_the_layers_of_an_image_and_what_sharing_saves(session):
    v = session.cockpit.image_layers("feed-web:2026.11.20")
    assert v is not None and v.registry == "reg-yongfeng" and len(v.blobs) >= 3
    shared = [b for b in v.blobs if b[2]]
    assert shared, "the base layers are shared with the other images"
    assert v.sharing.saved_storage > 0 and v.sharing.stored < v.sharing.unshared


def test_registry_commands_status_replicate_and_executions(demo_db, capsys):
    assert main(["registry", "status", "--db", demo_db]) == 0
    out = capsys.readouterr().out
    assert "reg-yongfeng" in out and "  reg-tucheng" in out and "    reg-tucheng-b" in out
    assert main(["registry", "status", "--db", demo_db, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert {r["name"] for r in data["registries"]} == {"reg-yongfeng", "reg-tucheng", "reg-tucheng-b", "reg-aliyun"}
    assert data["matrix"]["feed-web:2026.11.20"]["reg-aliyun"]["state"] == "in_sync"
    assert main(["registry", "replicate", "release", "--db", demo_db]) == 2  # no terminal, no --yes: it asks
    capsys.readouterr()
    assert main(["registry", "replicate", "release", "--image", "feed-web:2026.11.20", "--db", demo_db, "--yes"]) == 0
    assert "replication 1 queued: release (feed-web:2026.11.20)" in capsys.readouterr().out
    assert main(["registry", "replicate", "nosuch", "--db", demo_db, "--yes"]) == 2
    assert "no replication policy named 'nosuch'" in capsys.readouterr().err
    assert main(["registry", "executions", "--db", demo_db, "--json"]) == 0
    (ex,) = json.loads(capsys.readouterr().out)
    assert ex["policy"] == "release" and ex["state"] == "pending" and ex["trigger"] == "manual"
    assert main(["registry", "stop", "1", "--db", demo_db, "--yes"]) == 0
    assert main(["--readonly", "registry", "replicate", "release", "--db", demo_db, "--yes"]) == 2
    assert "read-only" in capsys.readouterr().err
    outcomes = [(a.action, a.outcome) for a in AuditRow.select().order_by(AuditRow.id)]
    assert ("registry.replicate", "done") in outcomes and ("registry.stop", "done") in outcomes
    assert ("registry.replicate", "refused") in outcomes
    assert ReplicationRow.get_by_id(1).stop_requested


def test_the_spool_keeps_the_recent_blobs_under_its_cap_and_drops_stale_downloads(tmp_path):
    from cockpit.engine.transfer import PART_STALE_S, prune_spool
    spool = tmp_path / "blobs"
    spool.mkdir()
    now = 1_000_000.0
    for i, name in enumerate(["old", "mid", "new"]):  # 100 bytes each, used in this order
        (spool / name).write_bytes(b"x" * 100)
        os.utime(spool / name, (now - 300 + i * 100, now - 300 + i * 100))
    (spool / ".part-live").write_bytes(b"x" * 10)  # another execution is writing it now
    os.utime(spool / ".part-live", (now - 5, now - 5))
    (spool / ".part-dead").write_bytes(b"x" * 10)  # an engine died while writing it
    os.utime(spool / ".part-dead", (now - PART_STALE_S - 1, now - PART_STALE_S - 1))
    prune_spool(spool, 250, now=now)
    assert sorted(p.name for p in spool.iterdir()) == [".part-live", "mid", "new"]


def test_the_bandwidth_cap_is_charged_once_on_the_push_not_on_the_fetch_too(tmp_path):
    import threading

    from cockpit.backends.sim.registry import SimRegistry
    from cockpit.engine.registry_watch import queue
    from cockpit.engine.replication import Replicator
    from cockpit.engine.seed import ensure_seeded
    from cockpit.store.db import open_store
    from tests.test_replication import world_with

    t, lock = [0.0], threading.Lock()

    def sleep(s: float) -> None:
        with lock:
            t[0] += s

    w = world_with("""registries:
  - {name: reg-a, idc: yf, role: master}
  - {name: reg-b, idc: ali, role: slave, replicates_from: reg-a}""", """replication:
  - {name: capped, source: reg-a, destinations: [reg-b], bandwidth_mbps: 8, trigger: manual}""")
    a = SimRegistry("reg-a", link_mbps=10_000, sleep=sleep, clock=lambda: t[0])
    b = SimRegistry("reg-b", link_mbps=10_000, sleep=sleep, clock=lambda: t[0])
    a.push_image("feed-web", "1", [("sha256:" + "1" * 64, 10_000_000)], config_size=1)
    db = open_store(str(tmp_path / "s.db"))
    ensure_seeded(db, w)
    rep = Replicator(db, w, {"reg-a": a, "reg-b": b}, spool_dir=tmp_path / "spool", sleep=sleep,
                     clock=lambda: t[0], simulated=True)
    ex = queue("capped", "manual", "sre", 0, time.time())
    while rep.run_once():
        pass
    assert ReplicationRow.get_by_id(ex).state == "succeeded"
    assert 9.9 <= t[0] <= 10.5  # 10 MB at 8 Mbit/s: ten simulated seconds, not twenty


def test_a_cron_firing_is_skipped_while_that_policy_has_a_replication_open(session, tmp_path):
    e = demo_engine(session, tmp_path)
    try:
        until(lambda: e.active and e.replicator is not None)  # it starts just after the lease is taken
        e.replicator.stop()  # the replications stay queued: nothing carries them forward
        before = ReplicationRow.select().count()
        e.replicate_on_schedule("release")
        e.replicate_on_schedule("release")
        e.replicate_on_schedule("tucheng-sub")  # another policy is not held back
        queued = list(ReplicationRow.select().where(ReplicationRow.id > before).order_by(ReplicationRow.id))
        assert [(r.policy, r.trigger) for r in queued] == [("release", "cron"), ("tucheng-sub", "cron")]
        skipped = EventRow.get(EventRow.message.contains("scheduled replication was skipped"))
        assert f"replication {queued[0].id} of it is still open" in skipped.message
        assert skipped.message.startswith("release:")
    finally:
        e.stop()


def test_replicate_refuses_an_image_the_policy_does_not_cover_or_the_source_lacks(demo_db, capsys):
    for image, why in (("feed-web:2026.11.26-rc1", "policy release does not cover feed-web:2026.11.26-rc1 "
                                                    "(repositories: *; tags: * except *-rc*, *-snapshot)"),
                       ("feed-web:9.9", "reg-yongfeng does not hold feed-web:9.9 (as last seen)")):
        assert main(["registry", "replicate", "release", "--image", image, "--db", demo_db, "--yes"]) == 2
        err = capsys.readouterr().err
        assert why in err and err.count("\n") == 1, err
    assert main(["registry", "replicate", "release", "--image", "feed-web:9.9", "--db", demo_db]) == 2
    assert "does not hold" in capsys.readouterr().err  # refused before it asks
    assert ReplicationRow.select().count() == 0


def test_executions_json_shows_the_bytes_each_destination_lacked(session, tmp_path, capsys):
    e = demo_engine(session, tmp_path)
    try:
        until(lambda: any(x.policy == "release" and x.state == "succeeded" and x.bytes_moved > 0
                          for x in session.cockpit.replications()), timeout=60)
    finally:
        e.stop()
    assert main(["registry", "executions", "--db", session.cfg.db, "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    moved = [r for r in rows if r["state"] == "succeeded" and r["bytes_moved"] > 0]
    assert moved and all(r["bytes_needed"] == r["bytes_moved"] for r in moved)
