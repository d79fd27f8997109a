"""`:tasks` driven as an SRE would: a flow started from the form runs on the engine to the end with
every step marked; pausing holds it at its step and resuming takes it on; stopping asks first and
ends it cancelled; read-only mode and a viewer's role are refused in place; Enter goes from a flow
to its hosts and containers and from one of those to its whole log.

The engine runs in the app's own process (the simulated platform: a flow of a few containers
ends within a couple of seconds). Where a test needs a flow that no engine moves, it is queued
through the facade; where it needs a container's failed attempts, they are written into the
test's store as rows, as the engine writes them (test data, not a mock)."""

from __future__ import annotations

import time

from textual.widgets import Input, Static

from cockpit.core.flow import FlowSpec
from cockpit.engine.flow import queue_flow
from cockpit.identity import os_user
from cockpit.screens.confirm import ConfirmScreen
from cockpit.screens.form import FormScreen
from cockpit.screens.tasks import TasksScreen
from cockpit.session import open_session
from cockpit.store.models import AuditRow, ClockRow, FlowItemRow, TaskRow
from tests.conftest import make_cfg
from tests.screen_text import cell, keys, notices, screen_text, table
from tests.test_tui import SIZE, open_app, until

NARROW = (60, 20)
ENGINE_UP_S = 30  # the engine's first load of the demo platform, on a busy machine


async def open_tasks(pilot, app, rows: int = 0) -> TasksScreen:
    await until(pilot, lambda: app.last_snapshot is not None)
    await pilot.press("colon", *"tasks", "enter")
    await until(pilot, lambda: isinstance(app.screen, TasksScreen) and app.screen.shown is not None
                and len(keys(app, "flows")) >= rows)
    return app.screen


def flow_state(fid: int) -> str:
    return TaskRow.get_by_id(fid).state


def queue(db: str, kind: str, service: str, count: int, idc: str | None = None) -> int:
    """A flow queued through the facade, as another operator (or the CLI) would."""
    s = open_session(make_cfg(db))
    try:
        out = s.cockpit.start_flow(kind, service, count, idc)
        assert out.ok, out.message
        return out.task
    finally:
        s.close()


def words(app) -> str:
    """The words of the dialog on top (its title, note, labels, body), one space apart, however they wrap."""
    return " ".join(" ".join(getattr(w.content, "plain", str(w.content)) for w in app.screen.query(Static)).split())


def steps_marked(app) -> list[str]:
    return [cell(app, "steps", k, "state") for k in keys(app, "steps")]


# --- starting, and the engine carrying it out ------------------------------------------------------


async def test_a_flow_started_from_the_form_runs_to_done_with_every_step_marked(demo_db):
    s, app = open_app(demo_db, engine=True)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: "engine ● active" in screen_text(app), timeout=ENGINE_UP_S)
        await open_tasks(pilot, app)
        assert "No flows yet: n starts one" in screen_text(app)
        await pilot.press("n")
        await until(pilot, lambda: isinstance(app.screen, FormScreen))
        form = app.screen
        form.query_one("#service", Input).value = "feed"
        form.query_one("#count", Input).value = "2"
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        text = words(app)
        assert "Start an expansion flow (scale out or in)?" in text
        assert "feed +2 in yongfeng" in text  # where feed runs most, said before anything happens
        assert "dependencies get flows of their own: user +1, card +1 (template ratios)" in text
        await pilot.press("y")
        await until(pilot, lambda: isinstance(app.screen, TasksScreen) and "1" in keys(app, "flows"))
        await until(pilot, lambda: cell(app, "flows", "1", "state") == "done", timeout=20)
        assert cell(app, "flows", "1", "step") == "9/9 done"
        assert cell(app, "flows", "1", "bar") == "█" * 8
        assert cell(app, "flows", "1", "change") == "+2"
        assert table(app, "flows").current_key() == "1"  # the new flow is the one selected
        await until(pilot, lambda: steps_marked(app) == ["✓ done"] * 9)
        assert cell(app, "steps", "deploy", "note") == "2 running"
        assert cell(app, "steps", "discovery", "note") == "2 in the upstreams"
        text = screen_text(app)
        assert f"#1 expand feed +2 in yongfeng by {os_user().name}" in text and "2/2 items settled" in text
        # its dependencies: a flow each, queued by its dependencies step, run to the end too
        await until(pilot, lambda: {cell(app, "flows", k, "service") for k in keys(app, "flows")}
                    >= {"feed", "user", "card"}
                    and all(cell(app, "flows", k, "state") == "done" for k in keys(app, "flows")), timeout=20)
    audit = AuditRow.select().where(AuditRow.action == "flow.start").get()
    assert (audit.target, audit.outcome, audit.user) == ("feed +2 in yongfeng", "done", os_user().name)
    s.close()


async def test_pause_holds_a_flow_at_its_step_and_resume_takes_it_to_the_end(demo_db):
    s, app = open_app(demo_db, engine=True)
    # a shrink drains for a few seconds after taking its containers out of discovery: the time to pause it
    with s.db.atomic():
        fid = queue_flow("shrink", FlowSpec("feed", 2, "yongfeng", drain_s=3.0), "sre", ClockRow.get_by_id(1).t)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: "engine ● active" in screen_text(app), timeout=ENGINE_UP_S)
        await open_tasks(pilot, app, rows=1)
        await until(pilot, lambda: cell(app, "flows", str(fid), "step") == "2/4 drain", timeout=20)
        await pilot.press("p")
        await until(pilot, lambda: cell(app, "flows", str(fid), "state") == "paused")
        assert flow_state(fid) == "paused"
        await until(pilot, lambda: cell(app, "steps", "drain", "state") == "‖ paused")
        assert "(1 paused)" in screen_text(app)
        # the drain's time runs out while paused, and the engine works another flow meanwhile: this one stays
        other = s.cockpit.start_flow("expand", "relation", 1, "yongfeng").task
        deadline = TaskRow.get_by_id(fid).progress["deregistered_real"] + 3.0
        await until(pilot, lambda: cell(app, "flows", str(other), "state") == "done" and time.time() > deadline + 0.5,
                    timeout=20)
        assert flow_state(fid) == "paused" and cell(app, "flows", str(fid), "step") == "2/4 drain"
        table(app, "flows").move_to_key(str(fid))
        await pilot.press("p")  # pausing it again says why not, in place
        await until(pilot, lambda: f"flow {fid} is paused: r resumes it" in notices(app))
        await pilot.press("r")
        await until(pilot, lambda: cell(app, "flows", str(fid), "state") == "done", timeout=20)
        await until(pilot, lambda: steps_marked(app) == ["✓ done"] * 4)
        assert cell(app, "steps", "stop", "note") == "2 stopped"
    asked = AuditRow.select().where(AuditRow.action.startswith("flow.") & (AuditRow.role != "engine"))
    assert [a.action for a in asked.order_by(AuditRow.id)] == ["flow.pause", "flow.start", "flow.resume"]
    s.close()


async def test_stop_asks_first_and_the_flow_ends_cancelled(demo_db):
    fid = queue(demo_db, "expand", "feed", 3)
    s, app = open_app(demo_db)  # no engine: the flow waits in the queue
    async with app.run_test(size=SIZE) as pilot:
        await open_tasks(pilot, app, rows=1)
        assert cell(app, "flows", str(fid), "state") == "queued"
        assert cell(app, "flows", str(fid), "step") == "0/9 waiting to start"
        await pilot.press("x")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        text = words(app)
        assert "Stop a flow?" in text and f"Stop flow {fid}: feed +3 in yongfeng, queued" in text
        await pilot.press("n")  # backing out changes nothing
        await until(pilot, lambda: isinstance(app.screen, TasksScreen))
        assert flow_state(fid) == "queued"
        await pilot.press("x")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("y")
        await until(pilot, lambda: isinstance(app.screen, TasksScreen)
                    and cell(app, "flows", str(fid), "state") == "cancelled")
        assert flow_state(fid) == "cancelled"
        await until(pilot, lambda: f"stopped by {os_user().name}" in screen_text(app))  # why, on the flow's line
        await pilot.press("x")  # nothing left to stop: said in place, no question
        await until(pilot, lambda: f"flow {fid} is cancelled: there is nothing to stop" in notices(app))
        assert isinstance(app.screen, TasksScreen)
    audit = AuditRow.select().where(AuditRow.action == "flow.stop").get()
    assert (audit.target, audit.outcome) == (f"flow {fid}", "done")
    s.close()


# --- refusals ----------------------------------------------------------------------------------------


async def test_read_only_mode_refuses_start_pause_and_stop_in_place_and_audits(demo_db):
    fid = queue(demo_db, "expand", "feed", 3)
    s, app = open_app(demo_db, readonly=True)
    async with app.run_test(size=SIZE) as pilot:
        await open_tasks(pilot, app, rows=1)
        footer = screen_text(app).splitlines()[-1]
        assert "New flow" not in footer and "Pause" not in footer and "Stop" not in footer  # not offered
        for key, title in (("n", "Start an expansion flow (scale out or in)"), ("p", "Pause a flow"),
                           ("x", "Stop a flow")):
            await pilot.press(key)
            await until(pilot, lambda: f"{title}: read-only mode: no changes" in notices(app))
            assert isinstance(app.screen, TasksScreen)  # no form, no question for what is refused
        await until(pilot, lambda: AuditRow.select().where(AuditRow.outcome == "refused").count() == 3)
    assert flow_state(fid) == "queued"
    s.close()


async def test_a_viewer_may_watch_but_not_pause(demo_db):
    fid = queue(demo_db, "expand", "feed", 3)
    s, app = open_app(demo_db, role="viewer")
    async with app.run_test(size=SIZE) as pilot:
        await open_tasks(pilot, app, rows=1)
        await pilot.press("p")
        await until(pilot, lambda: any(n.startswith("Pause a flow: needs role operator; you are viewer (--role viewer")
                                       for n in notices(app)))
    assert flow_state(fid) == "queued"
    s.close()


# --- drilling down ------------------------------------------------------------------------------------


def write_items(fid: int) -> None:
    """What the engine leaves of a deploy under way: one container running, one that failed twice
    and waits to try again (its log says so), one still to start."""
    real = time.time()
    rows = [
        ("feed-1-1", "done", 1, None, [[real - 3, "schedule", "placed on yf-feed-new-0001"],
                                       [real - 2, "deploy", "attempt 1"],
                                       [real - 2, "deploy", "running on yf-feed-new-0001 at 10.3.0.1:31009"]]),
        ("feed-1-2", "pending", 2, "engine: no such image feed-web:2026.11.20 (pull timed out)",
         [[real - 3, "schedule", "placed on yf-feed-new-0002"], [real - 2, "deploy", "attempt 1"],
          [real - 2, "deploy", "engine: pull timed out; again in 0.5 s"], [real - 1, "deploy", "attempt 2"],
          [real - 1, "deploy", "engine: no such image feed-web:2026.11.20 (pull timed out); again in 1 s"]]),
        ("feed-1-3", "pending", 0, None, [[real - 3, "schedule", "placed on yf-feed-new-0003"]]),
    ]
    for k, (name, state, attempts, detail, log) in enumerate(rows):
        FlowItemRow.insert(task=fid, kind="container", name=name, host=f"yf-feed-new-000{k + 1}", step="deploy",
                           state=state, attempts=attempts, detail=detail, log=log, updated_real=real).execute()


async def test_enter_goes_to_a_flows_containers_and_on_to_one_containers_whole_log(demo_db):
    fid = queue(demo_db, "expand", "feed", 3)
    s, app = open_app(demo_db)
    write_items(fid)
    async with app.run_test(size=SIZE) as pilot:
        await open_tasks(pilot, app, rows=1)
        await pilot.press("enter")  # the flow: its hosts and containers
        await until(pilot, lambda: app.screen.query_one("#tabs").active == "tab-items" and len(keys(app, "items")) == 3)
        assert app.screen.focused is table(app, "items")
        by_name = {cell(app, "items", k, "name"): k for k in keys(app, "items")}
        failed = by_name["feed-1-2"]
        assert cell(app, "items", failed, "attempts") == "2" and cell(app, "items", failed, "state") == "pending"
        assert cell(app, "items", failed, "error").startswith("engine: no such image feed-web:2026.11.20")
        assert cell(app, "items", failed, "host") == "yf-feed-new-0002"
        table(app, "items").move_to_key(failed)
        await until(pilot, lambda: "container feed-1-2 · deploy pending, 2 attempts" in screen_text(app))
        await pilot.press("enter")  # its whole log
        await until(pilot, lambda: app.screen.has_class("-log") and len(keys(app, "log-lines")) == 5)
        text = screen_text(app)
        assert f"Log of container feed-1-2 on yf-feed-new-0002 · flow {fid}" in text
        assert [cell(app, "log-lines", k, "step") for k in keys(app, "log-lines")] == \
            ["schedule", "deploy", "deploy", "deploy", "deploy"]
        assert cell(app, "log-lines", "4", "text").endswith("(pull timed out); again in 1 s")
        assert table(app, "log-lines").current_key() == "4"  # at the end, where the news is
        await pilot.press("escape")  # back to the containers, then to the flows
        await until(pilot, lambda: not app.screen.has_class("-log") and app.screen.focused is table(app, "items"))
        await pilot.press("escape")
        await until(pilot, lambda: app.screen.focused is table(app, "flows"))
        assert isinstance(app.screen, TasksScreen)
    s.close()


async def test_at_60_columns_a_flow_still_shows_its_service_change_state_and_step(demo_db):
    fid = queue(demo_db, "shrink", "feed", 2, "aliyun")
    s, app = open_app(demo_db)
    async with app.run_test(size=NARROW) as pilot:
        await open_tasks(pilot, app, rows=1)
        lines = screen_text(app).splitlines()
        header = next(k for k, x in enumerate(lines) if x.startswith("#"))
        assert lines[header].split() == ["#", "Service", "Change", "State", "Step"]
        line = lines[header + 1]
        assert line.split()[:5] == [str(fid), "feed", "-2", "queued", "0/4"]
        assert len(line.rstrip()) <= 60
        await pilot.press("slash", *"nothing-like-it", "enter")
        await until(pilot, lambda: keys(app, "flows") == [])
        assert "No flow matches the filter." in screen_text(app)
    s.close()
