"""`:scale` driven as an SRE would: every service with its pool live, the rules (paused and edited,
asked, audited, refused in read-only mode), the autoscaler's decisions with their explanations,
a day simulated under three policies, and scaling by hand with a preview and confirmation.

No engine runs: the decisions and the measurements are made by the engine's own autoscaler,
called once (or over past hours) on the test's store, as the engine would."""

from __future__ import annotations

from textual.widgets import Input

from cockpit.engine.autoscale import Autoscaler
from cockpit.identity import os_user
from cockpit.screens.confirm import ConfirmScreen
from cockpit.screens.form import FormScreen
from cockpit.screens.scale import ScaleScreen
from cockpit.store.models import AuditRow, ScaleDecisionRow, ScaleRuleRow, TaskRow
from cockpit.widgets.scale_rows import parse_rates, rates_text
from tests.screen_text import cell, keys, notices, screen_text, table
from tests.test_tui import SIZE, open_app, until

NARROW = (60, 20)
TABS = {"Services": "tab-services", "Rules": "tab-rules", "Decisions": "tab-decisions", "What-if": "tab-whatif"}


async def open_scale(pilot, app) -> ScaleScreen:
    await until(pilot, lambda: app.last_snapshot is not None)
    await pilot.press("colon", *"scale", "enter")
    await until(pilot, lambda: isinstance(app.screen, ScaleScreen) and keys(app, "services") and keys(app, "rules"))
    return app.screen


async def to_tab(pilot, app, name: str) -> None:
    for _ in range(len(TABS)):
        if app.screen.query_one("#tabs").active == TABS[name]:
            return
        await pilot.press("right_square_bracket")
        await pilot.pause(0.05)
    assert app.screen.query_one("#tabs").active == TABS[name]


def rule_spec(name: str) -> dict:
    return ScaleRuleRow.get(ScaleRuleRow.name == name).spec


def evaluate_once(session) -> list:
    """One evaluation by the engine's autoscaler at the platform's now (its decisions become tasks)."""
    c = session.cockpit
    t = c.clock().t
    a = Autoscaler(c.world, c.db.atomic)
    return a.step(t, a.observe(t, [])).decisions


def record_past_hours(session, hours: int = 6, every_s: int = 600) -> None:
    """The autoscaler evaluated (deciding, not acting) every `every_s` over the past hours: what
    the engine leaves in the store as it runs, QPS and CPU for the charts included."""
    c = session.cockpit
    now = c.clock().t
    a = Autoscaler(c.world, c.db.atomic, act=False)
    for k in range(hours * 3600 // every_s, -1, -1):
        t = now - k * every_s
        a.step(t, a.observe(t, []))


# --- reading -----------------------------------------------------------------------------------------


async def test_the_view_shows_every_service_with_its_pool_limits_and_rules(demo_db, demo_world):
    s, app = open_app(demo_db)
    async with app.run_test(size=SIZE) as pilot:
        await open_scale(pilot, app)
        assert keys(app, "services") == [x.name for x in demo_world.services]
        covered = {x for r in demo_world.autoscaling for x in r.services}
        for name in covered:
            assert cell(app, "services", name, "rules").startswith("cpu-over-50"), name
        assert cell(app, "services", "feed", "pool") == "feed-web"
        assert cell(app, "services", "feed", "running") == "4000"
        assert cell(app, "services", "feed", "limits") == "400..20000"
        assert cell(app, "services", "feed", "cpu") == "— / 40"  # nothing measured yet: no engine ran
        assert cell(app, "services", "etl", "rules") == "no rule"
        text = screen_text(app)
        assert "4 of 5 services under 5 rules" in text and "next: daily-peaks 12:15" in text
        assert "feed: no measurements yet" in text
    s.close()


async def test_measurements_fill_the_cpu_and_qps_and_the_selected_services_chart(demo_db):
    s, app = open_app(demo_db)
    record_past_hours(s)
    async with app.run_test(size=SIZE) as pilot:
        await open_scale(pilot, app)
        await until(pilot, lambda: app.screen.query_one("#history").spec is not None)
        assert cell(app, "services", "feed", "cpu") == "40% / 40"
        assert cell(app, "services", "feed", "qps") == "872k"
        chart = app.screen.query_one("#history")
        assert chart.spec.title == "feed (feed-web): traffic and CPU % since 06:00"
        assert "CPU %" in chart.chart_text() and "kqps" in chart.chart_text() and "target 40" in chart.chart_text()
        await pilot.press("down")  # the next service's chart
        await until(pilot, lambda: chart.spec is not None and chart.spec.title.startswith("user"))
        await pilot.press("right")
        await until(pilot, lambda: chart.spec.title.startswith("card") and table(app, "services").current_key() == "card")
    s.close()


async def test_a_decision_of_the_autoscaler_shows_with_its_explanation(demo_db):
    s, app = open_app(demo_db)
    made = [d for d in evaluate_once(s) if d.change]
    assert made, "the demo at 11:50 has a service to scale"
    async with app.run_test(size=SIZE) as pilot:
        await open_scale(pilot, app)
        await to_tab(pilot, app, "Decisions")
        await until(pilot, lambda: len(keys(app, "decisions")) == len(made))
        last = ScaleDecisionRow.select().order_by(ScaleDecisionRow.id.desc()).first()
        assert keys(app, "decisions")[0] == str(last.id)  # the newest first
        assert cell(app, "decisions", str(last.id), "t") == "Thu 11:50"  # platform time, in the world's zone
        assert cell(app, "decisions", str(last.id), "change") == f"{last.current}→{last.desired}↓"
        text = " ".join(screen_text(app).split())
        assert f"{last.service}: {last.current} → {last.desired} by {last.rule}" in text
        assert f"formula: {last.formula}"[:60] in text
        assert f"task: {last.task}" in text
        assert "Next: Thu 12:15–13:15 daily-peaks x1.1" in text  # the schedule's next window
    s.close()


async def test_the_what_if_compares_three_policies_and_charts_the_day(demo_db):
    s, app = open_app(demo_db)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_scale(pilot, app)
        await to_tab(pilot, app, "What-if")
        await until(pilot, lambda: keys(app, "policies") == ["rules", "hpa", "static-peak"], timeout=30)
        figures = {p: s.cockpit.simulate_day(p, 0).summary() for p in ("rules", "hpa", "static-peak")}
        for p, f in figures.items():
            assert cell(app, "policies", p, "violation_minutes") == str(f["violation_minutes"])
            assert cell(app, "policies", p, "container_hours") == f"{f['container_hours']:,.0f}"
            assert cell(app, "policies", p, "actions") == str(f["actions"])
        chart = screen.query_one("#day")
        await until(pilot, lambda: chart.spec is not None)
        assert chart.spec.title == "feed: traffic and serving containers, rules, seed 0"
        await pilot.press("down")  # the next policy's day
        await until(pilot, lambda: chart.spec.title == "feed: traffic and serving containers, hpa, seed 0")
        await pilot.press("right")  # the next service
        await until(pilot, lambda: chart.spec.title.startswith("user:"))
        await pilot.press("n")  # another seed: another minute for the hot event
        await until(pilot, lambda: screen.days is not None and chart.spec is not None and "seed 1" in chart.spec.title,
                    timeout=30)
    s.close()


# --- rules: pause, edit ----------------------------------------------------------------------------


async def test_pausing_a_rule_asks_then_shows_it_paused_and_audits(demo_db):
    s, app = open_app(demo_db)
    async with app.run_test(size=SIZE) as pilot:
        await open_scale(pilot, app)
        await to_tab(pilot, app, "Rules")
        table(app, "rules").move_to_key("hot-events")
        await pilot.press("p")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        assert "Pause rule hot-events" in screen_text(app)
        await pilot.press("y")
        await until(pilot, lambda: isinstance(app.screen, ScaleScreen)
                    and cell(app, "rules", "hot-events", "state") == "paused")
        assert "(1 paused)" in screen_text(app)
        assert ScaleRuleRow.get(ScaleRuleRow.name == "hot-events").paused is True
        audit = AuditRow.select().where(AuditRow.action == "scale.pause_rule").get()
        assert (audit.target, audit.outcome, audit.user) == ("hot-events", "done", os_user().name)
        await pilot.press("p", "y")  # and back
        await until(pilot, lambda: cell(app, "rules", "hot-events", "state") == "active")
    s.close()


async def test_pausing_is_refused_in_read_only_mode_in_place_and_audited(demo_db):
    s, app = open_app(demo_db, readonly=True)
    async with app.run_test(size=SIZE) as pilot:
        await open_scale(pilot, app)
        await to_tab(pilot, app, "Rules")
        assert "Pause/resume" not in screen_text(app).splitlines()[-1]  # not offered in the footer
        await pilot.press("p")
        await until(pilot, lambda: "Pause or resume an autoscaling rule: read-only mode: no changes" in notices(app))
        assert isinstance(app.screen, ScaleScreen)  # no confirmation for what is refused
        await pilot.press("e")
        await until(pilot, lambda: "Edit an autoscaling rule: read-only mode: no changes" in notices(app))
        await until(pilot, lambda: AuditRow.select().where(AuditRow.outcome == "refused").count() == 2)
    assert not any(r.paused for r in ScaleRuleRow.select())
    s.close()


async def edit(pilot, app, rule: str, **values: str) -> None:
    await to_tab(pilot, app, "Rules")
    table(app, "rules").move_to_key(rule)
    await pilot.press("e")
    await until(pilot, lambda: isinstance(app.screen, FormScreen))
    for field, value in values.items():
        app.screen.query_one(f"#{field}", Input).value = value
    await pilot.press("enter")


async def test_a_bad_value_in_the_rule_form_is_shown_in_the_form_and_changes_nothing(demo_db):
    s, app = open_app(demo_db)
    before = rule_spec("cpu-over-50")
    async with app.run_test(size=SIZE) as pilot:
        await open_scale(pilot, app)
        await edit(pilot, app, "cpu-over-50", threshold_pct="abc")
        await until(pilot, lambda: isinstance(app.screen, FormScreen) and "threshold_pct: expected a number" in
                    screen_text(app))
        assert app.screen.query_one("#threshold_pct", Input).value == "abc"  # as typed, to correct
        app.screen.query_one("#threshold_pct", Input).value = "250"
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, FormScreen) and "threshold_pct" in screen_text(app)
                    and "250" in screen_text(app) and "✗" in screen_text(app))
        app.screen.query_one("#services", Input).value = "feed, nosuch"
        app.screen.query_one("#threshold_pct", Input).value = "60"
        await pilot.press("enter")
        await until(pilot, lambda: "services: no service named 'nosuch'" in screen_text(app))
        await pilot.press("escape")
        await until(pilot, lambda: isinstance(app.screen, ScaleScreen))
    assert rule_spec("cpu-over-50") == before
    assert not AuditRow.select().where(AuditRow.action == "scale.edit_rule").exists()
    s.close()


async def test_a_good_value_asks_then_changes_the_stored_rule(demo_db):
    s, app = open_app(demo_db)
    async with app.run_test(size=SIZE) as pilot:
        await open_scale(pilot, app)
        await edit(pilot, app, "keep-cpu-at-42", target_pct="55", up="200% per 30s")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        assert "target_pct 55" in " ".join(screen_text(app).split())
        await pilot.press("y")
        await until(pilot, lambda: rule_spec("keep-cpu-at-42")["target_pct"] == 55)
        await until(pilot, lambda: "target_pct 55" in cell(app, "rules", "keep-cpu-at-42", "summary"))
    spec = rule_spec("keep-cpu-at-42")
    assert spec["up"] == [{"kind": "percent", "value": 200, "period_s": 30}]
    assert spec["down_window_s"] == 300 and spec["services"] == ["feed", "user", "card", "relation"]
    assert AuditRow.select().where((AuditRow.action == "scale.edit_rule") & (AuditRow.outcome == "done")).exists()
    s.close()


def test_rates_read_back_as_they_are_written():
    policies = [{"kind": "percent", "value": 100, "period_s": 15}, {"kind": "pods", "value": 4, "period_s": 15}]
    assert rates_text(policies) == "100% per 15s, 4 pods per 15s"
    assert parse_rates(rates_text(policies)) == policies
    assert parse_rates("50 % / 60s") == [{"kind": "percent", "value": 50, "period_s": 60}]


# --- scaling by hand, the hot event --------------------------------------------------------------------


async def test_scale_up_by_hand_previews_the_placement_then_queues_a_task(demo_db):
    s, app = open_app(demo_db)
    async with app.run_test(size=SIZE) as pilot:
        await open_scale(pilot, app)
        await pilot.press("plus")
        await until(pilot, lambda: isinstance(app.screen, FormScreen))
        assert app.screen.query_one("#service", Input).value == "feed"  # the selected service
        app.screen.query_one("#count", Input).value = "20"
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), timeout=20)
        text = " ".join(screen_text(app).split())
        assert "feed +20 on" in text and "hosts" in text and "with user +8" in text  # the template's ratio
        await pilot.press("y")
        await until(pilot, lambda: TaskRow.select().where(TaskRow.kind == "scale").exists())
    task = TaskRow.select().where(TaskRow.kind == "scale").get()
    assert {p["service"]: p["count"] for p in task.spec["parts"]}["feed"] == 20
    assert AuditRow.select().where((AuditRow.action == "plan.apply") & (AuditRow.outcome == "done")).exists()
    s.close()


async def test_scale_down_by_hand_confirms_then_queues_a_scale_in(demo_db):
    s, app = open_app(demo_db)
    async with app.run_test(size=SIZE) as pilot:
        await open_scale(pilot, app)
        table(app, "services").move_to_key("card")
        await pilot.press("minus")
        await until(pilot, lambda: isinstance(app.screen, FormScreen))
        app.screen.query_one("#count", Input).value = "5"
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        assert "Stop 5 containers of card (now 930 running, the pool's min" in screen_text(app)
        await pilot.press("y")
        await until(pilot, lambda: TaskRow.select().where(TaskRow.kind == "scale_in").exists())
    assert TaskRow.select().where(TaskRow.kind == "scale_in").get().spec == {"service": "card", "count": 5, "idc": None}
    s.close()


async def test_a_hot_event_is_asked_then_started(demo_db):
    s, app = open_app(demo_db)
    async with app.run_test(size=SIZE) as pilot:
        await open_scale(pilot, app)
        await pilot.press("h")
        await until(pilot, lambda: isinstance(app.screen, FormScreen))
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("y")
        await until(pilot, lambda: TaskRow.select().where(TaskRow.kind == "hot_event").exists())
        await until(pilot, lambda: isinstance(app.screen, ScaleScreen))
    s.close()


# --- sizes, snapshots ----------------------------------------------------------------------------------


async def test_every_tab_reads_at_60x20(demo_db):
    s, app = open_app(demo_db)
    record_past_hours(s, hours=1)
    async with app.run_test(size=NARROW) as pilot:
        await open_scale(pilot, app)
        header = screen_text(app).splitlines()[4]
        for column in ("Service", "Run", "Want", "CPU/target", "QPS"):  # what an SRE needs stays
            assert column in header, column
        await to_tab(pilot, app, "Rules")
        assert "cpu-over-50" in screen_text(app) and "active" in screen_text(app)
        await to_tab(pilot, app, "Decisions")
        await until(pilot, lambda: keys(app, "decisions"))
        assert "formula:" in screen_text(app)
        await to_tab(pilot, app, "What-if")
        await until(pilot, lambda: keys(app, "policies") and "static-peak" in screen_text(app), timeout=30)
        assert "SLO min" in screen_text(app)
    s.close()


def test_the_services_and_their_chart_at_80x24(demo_db, snap_compare):
    s, app = open_app(demo_db)
    record_past_hours(s)

    async def opened(pilot):
        await open_scale(pilot, app)
        await until(pilot, lambda: app.screen.query_one("#history").spec is not None)
        await pilot.pause(0.1)

    assert snap_compare(app, terminal_size=SIZE, run_before=opened)
    s.close()


def test_the_what_if_at_80x24(demo_db, snap_compare):
    s, app = open_app(demo_db)

    async def opened(pilot):
        await open_scale(pilot, app)
        await to_tab(pilot, app, "What-if")
        await until(pilot, lambda: app.screen.query_one("#day").spec is not None, timeout=30)
        await pilot.pause(0.1)

    assert snap_compare(app, terminal_size=SIZE, run_before=opened)
    s.close()
