"""The engine's autoscaler: decisions explained and carried out as tasks, rules edited live, and
the same decisions as `cockpit simulate` for the same trace."""

from __future__ import annotations

import json
from pathlib import Path

from cockpit import world as world_mod
from cockpit.cli import main
from cockpit.core.autoscale.simulate import simulate
from cockpit.core.autoscale.trace import demo_trace
from cockpit.engine.autoscale import Autoscaler
from cockpit.engine.engine import Engine
from cockpit.engine.facade import Cockpit
from cockpit.engine.seed import ensure_seeded
from cockpit.store.db import open_store
from cockpit.store.models import ContainerRow, EventRow, ScaleDecisionRow, TaskRow
from tests.conftest import make_cfg

SMALL = Path(__file__).parent / "data" / "small-world.yaml"
RULES = """autoscaling:
  - {name: keep-feed, kind: target, services: [feed], target_pct: 5}
"""


class FakeClock:
    def __init__(self, t: float = 1000.0):
        self.t = t

    def __call__(self) -> float:
        return self.t


def small_world(rules: str = RULES, extra: str = ""):
    text = SMALL.read_text()
    return world_mod.loads(text[:text.index("autoscaling:")] + rules + extra, str(SMALL))


def store(tmp_path, w):
    db = open_store(str(tmp_path / "s.db"))
    ensure_seeded(db, w)
    return db


def feed_containers() -> int:
    return ContainerRow.select().where(ContainerRow.service == "feed").count()


def test_a_decision_is_explained_and_becomes_a_scale_task_that_brings_its_dependencies(tmp_path):
    w = small_world()
    db = store(tmp_path, w)
    e = Engine(db, w, speed=60, real_clock=FakeClock())
    assert e.step_lease()
    before = feed_containers()
    user_before = ContainerRow.select().where(ContainerRow.service == "user").count()
    assert e.autoscale() is True
    (d,) = ScaleDecisionRow.select()
    assert d.service == "feed" and d.rule == "keep-feed" and d.desired > d.current == before
    assert d.formula.startswith(f"ceil({before} x ") and "/ 5%" in d.formula
    task = TaskRow.get_by_id(d.task)
    assert task.kind == "scale" and task.actor == "autoscaler"
    parts = {p["service"]: p for p in task.spec["parts"]}
    grow = d.desired - d.current
    # the template feed-expand pulls user in at a ratio of 0.4
    assert parts["feed"]["count"] == grow and parts["user"]["count"] == -(-grow * 4 // 10)
    event = EventRow.select().where(EventRow.kind == "autoscale").get()
    assert f"feed: {d.current} -> {d.desired} by keep-feed" in event.message
    assert e.autoscale() is False  # not due again until an interval of platform time has passed
    while e.run_tasks():
        pass
    placed = TaskRow.get_by_id(d.task).progress
    assert TaskRow.get_by_id(d.task).state == "done", placed
    assert feed_containers() > before
    assert ContainerRow.select().where(ContainerRow.service == "user").count() > user_before


def test_a_rule_paused_or_edited_live_takes_effect_at_the_next_evaluation(tmp_path):
    w = small_world()
    db = store(tmp_path, w)
    c = Cockpit(make_cfg(str(tmp_path / "s.db")), w, db)
    assert c.set_rule_paused("keep-feed", True).ok
    e = Engine(db, w, speed=60, real_clock=FakeClock())
    e.step_lease()
    assert e.autoscale() and ScaleDecisionRow.select().count() == 0  # paused: no say
    bad = c.edit_rule("keep-feed", {"kind": "target", "services": ["feed"], "target_pct": 400})
    assert not bad.ok and "target_pct" in bad.message
    bad = c.edit_rule("keep-feed", {"kind": "target", "services": ["feed"]})
    assert not bad.ok and "a target rule needs target_pct" in bad.message
    assert c.edit_rule("keep-feed", {"kind": "cpu", "services": ["feed"], "threshold_pct": 1, "factor": 3}).ok
    assert c.set_rule_paused("keep-feed", False).ok
    e.real_clock.t += 2  # two platform minutes at x60
    e.tick()
    assert e.autoscale()
    (d,) = ScaleDecisionRow.select()
    assert d.rule == "keep-feed" and d.desired == d.current * 3 and "> 1%" in d.formula
    view = c.scale_view()
    assert [r.kind for r in view.rules] == ["cpu"] and view.decisions[0].desired == d.desired


def test_the_engine_decides_as_cockpit_simulate_does_for_the_same_trace(tmp_path, capsys):
    """`cockpit simulate` and the engine's autoscaler (rules and memory kept in the store, as the
    live engine keeps them) replay the same trace, fed the same observations by the capacity
    model: they make the same decisions, formula for formula."""
    rules = """autoscaling:
  - {name: over, kind: cpu, services: [feed, user], threshold_pct: 60, factor: 2}
  - {name: keep, kind: target, services: [feed, user], target_pct: 40}
  - {name: ahead, kind: predict, services: [feed], target_pct: 40, horizon_min: 15}
  - {name: noon, kind: schedule, services: [feed], at: ["12:30"], lead_min: 30, hold_min: 60, factor: 1.2}
  - {name: hot, kind: event, services: [feed, user], factor: 2, hold_min: 60}
"""
    scaling = "scaling:\n  pools: [{pool: web, min: 4, max: 400, cooldown_min: 3, target_cpu_pct: 40}]\n"
    text = SMALL.read_text()
    path = tmp_path / "w.yaml"
    path.write_text(text[:text.index("autoscaling:")] + rules + scaling)
    assert main(["simulate", "--world", str(path), "--seed", "3", "--policy", "rules", "--json", "--decisions"]) == 0
    cli = json.loads(capsys.readouterr().out)["policies"]["rules"]["decisions"]
    w = world_mod.load(path)
    db = store(tmp_path, w)
    scaler = Autoscaler(w, db.atomic, act=False)
    engine = simulate(w, demo_trace(w, 3), "rules", decider=lambda t, obs, hist: scaler.step(t, obs, hist).decisions)
    key = [(d["t"], d["service"], d["current"], d["desired"], d["rule"], d["formula"]) for d in cli]
    assert len(key) > 10
    assert [(d.t, d.service, d.current, d.desired, d.rule, d.formula) for d in engine.decisions] == key
    assert ScaleDecisionRow.select().count() == len(key)


def test_what_no_host_can_take_is_borrowed_and_ordered_once_and_every_decision_says_what_was_done(demo_db,
                                                                                                  demo_world):
    import time as _time

    db = open_store(demo_db)
    clock = FakeClock()
    e = Engine(db, demo_world, speed=600, real_clock=clock)
    assert e.step_lease()
    now = e.platform_now()
    TaskRow.insert(kind="hot_event", state="running", actor="sre", created_t=now, updated_t=now,
                   real_created=_time.time(),
                   spec={"name": "big", "services": ["feed", "user", "card"], "factor": 4.0, "duration_min": 120,
                         "start_t": now}).execute()
    for _ in range(4):  # four evaluations, a platform minute apart, tasks carried out between them
        clock.t += 0.1
        e.step_lease()
        e.tick()
        e.autoscale()
        while e.run_tasks():
            pass
    decisions = list(ScaleDecisionRow.select().order_by(ScaleDecisionRow.id))
    assert decisions and all(d.outcome for d in decisions)
    feed = [d for d in decisions if d.service == "feed"]
    assert "no host with room" in feed[0].outcome and "ordering" in feed[0].outcome
    assert any("on their way" in d.outcome for d in feed[1:])
    from cockpit.store.models import EcsOrderRow

    borrow = [t for t in TaskRow.select().where((TaskRow.kind == "pool_move") & (TaskRow.actor == "autoscaler"))]
    assert len([t for t in borrow if t.spec["to_pool"] == "feed-web"]) == 1
    # an order is topped up by what is still lacking, never placed again whole
    orders = [o.count for o in EcsOrderRow.select().where(EcsOrderRow.pool == "feed-web").order_by(EcsOrderRow.id)]
    assert orders and len(set(orders)) == len(orders)
    # dependents scaled by their own rules are not also pulled in by feed's template
    for t in TaskRow.select().where((TaskRow.kind == "scale") & (TaskRow.actor == "autoscaler")):
        services = [p["service"] for p in t.spec["parts"]]
        assert services == [t.spec["autoscale"]], services


def test_a_schedule_window_opening_before_the_next_evaluation_gets_a_job_at_that_moment(tmp_path):
    from datetime import datetime, timezone

    from apscheduler.schedulers.background import BackgroundScheduler

    rules = """autoscaling:
  - {name: noon, kind: schedule, services: [feed], at: ["12:30"], lead_min: 30, hold_min: 60, factor: 2}
"""
    w = small_world(rules)
    db = store(tmp_path, w)
    e = Engine(db, w, speed=60, real_clock=FakeClock())
    assert e.step_lease()
    sched = BackgroundScheduler(timezone=timezone.utc)
    sched.start(paused=True)  # a real scheduler, held so that the job stays to be looked at
    e._scheduler = sched
    try:
        opens = datetime(2026, 11, 26, 12, 0, tzinfo=w.traffic.tz).timestamp()
        e._arm_schedules(opens - 30)  # the window opens in 30 s of platform time: 0.5 s of real time at x60
        job = sched.get_job("schedule-window")
        assert job is not None
        lead = (job.next_run_time - datetime.now(timezone.utc)).total_seconds()
        assert 0.2 < lead <= 0.5
        sched.remove_job("schedule-window")
        e._arm_schedules(opens - 120)  # two minutes away: the next evaluation comes first
        assert sched.get_job("schedule-window") is None
    finally:
        sched.shutdown(wait=False)
