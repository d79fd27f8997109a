"""The TUI, driven with Pilot as a user would: open, `:` views, `/` filter, `?` keys, live updates."""

from __future__ import annotations

import time

import pytest

from cockpit.app import create_app
from cockpit.engine.lease import Lease
from cockpit.identity import os_user
from cockpit.screens.audit import AuditScreen
from cockpit.screens.dashboard import DashboardScreen
from cockpit.screens.events import EventsScreen
from cockpit.screens.hosts import HostsScreen
from cockpit.session import open_session
from cockpit.store.models import AuditRow, ClockRow, TaskRow
from cockpit.widgets.live_table import LiveTable
from tests.conftest import make_cfg
from tests.screen_text import notices, screen_text

SIZE = (80, 24)


async def until(pilot, predicate, timeout: float = 10.0) -> None:
    """Let the app run until `predicate()` holds: waiting on the app, not on a fixed sleep."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out; screen:\n{screen_text(pilot.app)}")
        await pilot.pause(0.05)


def table_keys(app) -> list[str]:
    return app.screen.query_one(LiveTable).row_keys


def open_app(db: str, *, engine: bool = False, **cfg_kw):
    cfg = make_cfg(db, **cfg_kw)
    s = open_session(cfg)
    return s, create_app(s.cockpit, cfg, s.make_engine if engine else None)


async def test_opens_on_the_dashboard_with_every_idc_and_pool(demo_db):
    s, app = open_app(demo_db)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: table_keys(app))
        keys = table_keys(app)
        assert keys[:3] == ["aliyun", "aliyun/feed-web", "aliyun/shared"]
        assert {"yongfeng", "tucheng", "yongfeng/feed-web", "tucheng/hadoop"} <= set(keys)
        text = screen_text(app)
        assert "Platform 2060/2060 hosts" in text
        assert "Thu 26 Nov 11:50" in text  # the platform clock, in the world's time zone
    s.close()


async def test_colon_goes_to_views_by_name_alias_and_esc_comes_back(demo_db):
    s, app = open_app(demo_db)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: table_keys(app))
        await pilot.press("colon", *"hosts", "enter")
        await until(pilot, lambda: isinstance(app.screen, HostsScreen) and len(table_keys(app)) == 2060)
        await pilot.press("colon", *"ev", "enter")
        await until(pilot, lambda: isinstance(app.screen, EventsScreen))
        await pilot.press("colon", *"nosuchview", "enter")
        await until(pilot, lambda: any("no view 'nosuchview'" in n for n in notices(app)))
        assert isinstance(app.screen, EventsScreen)
        await pilot.press("escape")
        await until(pilot, lambda: isinstance(app.screen, HostsScreen))
        await pilot.press("colon", *"audit", "enter")
        await until(pilot, lambda: isinstance(app.screen, AuditScreen))
        await pilot.press("colon", *"dash", "enter")  # back down the stack, not a second dashboard
        await until(pilot, lambda: isinstance(app.screen, DashboardScreen))
        assert len(app.screen_stack) == 1
        await pilot.press("escape")  # nothing below the dashboard: it stays
        assert isinstance(app.screen, DashboardScreen)
    s.close()


async def test_slash_filters_the_dashboard_and_esc_clears(demo_db):
    s, app = open_app(demo_db)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: table_keys(app))
        await pilot.press("slash", *"hadoop")
        await until(pilot, lambda: len(table_keys(app)) == 4)
        assert table_keys(app) == ["tucheng", "tucheng/hadoop", "yongfeng", "yongfeng/hadoop"]
        await pilot.press("escape")
        await until(pilot, lambda: len(table_keys(app)) == 17)
    s.close()


async def test_slash_filters_hosts_by_any_column_and_label(demo_db, demo_world):
    s, app = open_app(demo_db)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("colon", *"hosts", "enter")
        await until(pilot, lambda: isinstance(app.screen, HostsScreen) and len(table_keys(app)) == 2060)
        await pilot.press("slash", *"role=bigdata tucheng", "enter")
        await until(pilot, lambda: len(table_keys(app)) == 100)
        assert all(k.startswith("tc-hadoop-") for k in table_keys(app))
        assert "100 of 2060 hosts" in screen_text(app)
    s.close()


async def test_question_mark_lists_the_keys_with_their_ids(demo_db):
    s, app = open_app(demo_db)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: table_keys(app))
        await pilot.press("question_mark")
        await until(pilot, lambda: "dashboard.pause" in screen_text(app))
        text = screen_text(app)
        for line in ("Pause", "dashboard.pause", "goto"):
            assert line in text, line
        await pilot.press("G")  # the page scrolls: the views are below
        await until(pilot, lambda: ":hosts" in screen_text(app) and ":registry" in screen_text(app))
        await pilot.press("escape")
        await pilot.pause(0.1)
        assert isinstance(app.screen, DashboardScreen)
    s.close()


async def test_the_dashboard_changes_as_platform_time_passes(demo_db):
    s, app = open_app(demo_db, engine=True, speed=1800)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: "engine ● active" in screen_text(app))
        first_clock = ClockRow.get_by_id(1).t
        first = dict(app.screen.query_one(LiveTable)._cells)
        await until(pilot, lambda: ClockRow.get_by_id(1).t > first_clock + 3600, timeout=15)
        await until(pilot, lambda: app.screen.query_one(LiveTable)._cells != first)
        assert "Thu 26 Nov 11:50" not in screen_text(app)
    s.close()


async def test_readonly_leaves_actions_out_of_the_footer_and_says_why_when_one_is_pressed(demo_db):
    s, app = open_app(demo_db, readonly=True)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: table_keys(app))
        text = screen_text(app)
        assert "READ-ONLY" in text
        assert "Pause" not in text and "Hot event" not in text
        await pilot.press("space", "h")
        await until(pilot, lambda: len([n for n in notices(app) if "read-only mode: no changes" in n]) == 2)
        assert "Pause or resume the platform clock: read-only mode: no changes" in notices(app)
        assert isinstance(app.screen, DashboardScreen)  # no form opened for an action that is refused
        assert ClockRow.get_by_id(1).paused is False
        await until(pilot, lambda: AuditRow.select().where(AuditRow.outcome == "refused").count() == 2)
    outcome = s.cockpit.set_paused(True)
    assert not outcome.ok and "read-only" in outcome.message
    refused = [(a.action, a.outcome) for a in AuditRow.select().order_by(AuditRow.id)]
    assert refused == [("sim.pause", "refused"), ("sim.hot_event", "refused"), ("sim.pause", "refused")]
    s.close()


async def test_a_viewer_role_cannot_act(demo_db):
    s, app = open_app(demo_db, role="viewer")
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: table_keys(app))
        assert "Pause" not in screen_text(app)
    outcome = s.cockpit.inject_hot_event(["feed"], 2, 10)
    assert not outcome.ok and "needs role operator" in outcome.message
    s.close()


async def test_a_hot_event_asks_first_and_is_audited(demo_db):
    s, app = open_app(demo_db)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: table_keys(app))
        await pilot.press("h")
        await pilot.pause(0.2)
        await pilot.click("#submit")
        await pilot.pause(0.2)
        assert "Start a hot event" in screen_text(app)
        await pilot.press("n")  # backed out: nothing happens
        await pilot.pause(0.2)
        assert TaskRow.select().count() == 0
        await pilot.press("h")
        await pilot.pause(0.2)
        await pilot.click("#submit")
        await pilot.pause(0.2)
        await pilot.press("y")
        await until(pilot, lambda: TaskRow.select().count() == 1)
    task = TaskRow.get()
    assert task.kind == "hot_event" and task.spec["services"] == ["feed", "user", "card"]
    audit = AuditRow.get()
    assert (audit.user, audit.action, audit.outcome) == (os_user().name, "sim.hot_event", "done")
    s.close()


async def test_keys_are_remapped_from_the_config(demo_db):
    s, app = open_app(demo_db, keys={"goto": "ctrl+g", "dashboard.pause": "p"})
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: table_keys(app))
        await pilot.press("ctrl+g", *"hosts", "enter")
        await until(pilot, lambda: isinstance(app.screen, HostsScreen))
        await pilot.press("escape")
        await pilot.press("p")
        await until(pilot, lambda: ClockRow.get_by_id(1).paused)
    s.close()


async def test_a_second_cockpit_on_the_same_store_is_a_viewer_and_says_so(demo_db):
    s, app = open_app(demo_db, engine=True)
    other = Lease(s.db, ttl=3600)
    assert other.acquire()
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: "watching · engine on" in screen_text(app))
        assert f":{other.pid}" in screen_text(app)
    s.close()


async def test_no_color_is_honoured(demo_db, monkeypatch):
    monkeypatch.setenv("NO_COLOR", "1")
    s, app = open_app(demo_db)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: table_keys(app))
        assert app.no_color
    s.close()


def test_the_dashboard_at_80x24(demo_db, snap_compare):
    s, app = open_app(demo_db)

    async def loaded(pilot):
        await until(pilot, lambda: table_keys(app))
        await pilot.pause(0.1)

    assert snap_compare(app, terminal_size=SIZE, run_before=loaded)
    s.close()


@pytest.fixture(autouse=True)
def _fixed_user(monkeypatch):
    monkeypatch.setenv("USER", "sre")


async def test_the_command_palette_holds_the_views_actions_with_their_keys(demo_db):
    s, app = open_app(demo_db)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: table_keys(app))
        await pilot.press("ctrl+p", *"clock")
        await until(pilot, lambda: "Pause clock (dashboard)" in screen_text(app))
        text = screen_text(app)
        assert "Faster clock (dashboard)" in text and "key space" in text
        await pilot.press("escape")
    s.close()


async def test_the_palette_leaves_out_what_read_only_forbids(demo_db):
    s, app = open_app(demo_db, readonly=True)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: table_keys(app))
        await pilot.press("ctrl+p", *"go to")
        await until(pilot, lambda: "Go to hosts" in screen_text(app))
        assert "clock (dashboard)" not in screen_text(app)
    s.close()


async def test_a_read_only_cockpit_never_runs_the_engine(demo_db):
    cfg = make_cfg(demo_db, readonly=True)
    s = open_session(cfg)
    app = create_app(s.cockpit, cfg, s.make_engine)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: table_keys(app))
        await pilot.pause(1.0)
        assert s.engine is None and s.cockpit.engine is None
        assert "no engine" in screen_text(app)
        from cockpit.engine.lease import current_holder

        assert current_holder() is None  # it took no lease
    s.close()


async def test_the_filter_shows_what_is_typed(demo_db):
    s, app = open_app(demo_db)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: table_keys(app))
        await pilot.press("slash", *"tucheng")
        await until(pilot, lambda: "tucheng" in screen_text(app).splitlines()[-2])  # the line above the keys
        await until(pilot, lambda: all(k.startswith("tucheng") for k in table_keys(app)))
    s.close()


async def test_the_engine_runs_on_its_own_thread_so_the_screen_cannot_hold_up_a_tick(demo_db):
    s, app = open_app(demo_db, engine=True, speed=60)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: "engine ● active" in screen_text(app))
        engine = s.cockpit.engine
        assert engine._thread is not None and engine._thread.is_alive()
        tick = ClockRow.get_by_id(1).tick
        time.sleep(1.5)  # the event loop is blocked (a screen doing too much): the engine still ticks
        assert ClockRow.get_by_id(1).tick > tick
    s.close()


def test_a_remap_onto_a_key_in_use_is_refused_naming_the_other_binding(demo_db, tmp_path, capsys):
    from cockpit.cli import main

    cfg = tmp_path / "c.yaml"
    cfg.write_text('keys: {goto: "g", table.down: "ctrl+n"}\n')
    assert main(["--config", str(cfg), "--db", demo_db]) == 2
    err = capsys.readouterr().err
    assert "keys.goto: 'g' is also table.first" in err and "table.down" not in err


def test_every_binding_id_can_be_remapped_tables_and_forms_too():
    from cockpit.keymap import all_bindings, clashes

    ids = {b.id for b in all_bindings()}
    assert {"table.down", "table.copy", "form.next", "tab.next", "goto", "hosts.describe"} <= ids
    assert clashes({"table.down": "ctrl+n", "goto": "ctrl+g"}) == []


@pytest.mark.parametrize("width", [80, 60, 40])
def test_the_header_fits_and_keeps_read_only_and_the_engine_state(width):
    from cockpit.widgets.status_header import fit

    line = fit(width, "demo", ["Thu 26 Nov 11:50:00 ×1", "26 Nov 11:50 ×1", "11:50 ×1"],
               "watching · engine on jump-2:4242, stale 7s", "bold red", "alice", "viewer", True).plain
    assert len(line) <= width and "READ-ONLY" in line and "watching · engine on" in line
    if width >= 60:
        assert "stale 7s" in line
    if width >= 80:
        assert "alice" in line


async def test_the_palette_has_copy_filter_tabs_and_help_but_none_of_textuals_own(demo_db):
    s, app = open_app(demo_db)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: table_keys(app))
        await pilot.press("ctrl+p")
        await until(pilot, lambda: "Copy the selected row" in screen_text(app))
        text = screen_text(app)
        assert "Filter the table" in text and "Keys and help" in text
        assert "Screenshot" not in text and "Maximize" not in text
    s.close()


def test_a_read_only_engine_is_refused(demo_db, capsys):
    from cockpit.cli import main

    assert main(["--readonly", "engine", "--db", demo_db]) == 2
    assert "never runs the engine" in capsys.readouterr().err


async def test_every_view_is_ready_before_it_is_first_opened(demo_db):
    """A view opened for the first time costs no more than opened again: its code and styles
    were readied while the user read the dashboard, whose own styles are there from the first
    frame (Textual reads a screen's styles on its push, never the first screen's)."""
    from cockpit.screens import warm_up
    from cockpit.screens.plan import PlanScreen

    s, app = open_app(demo_db)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: table_keys(app))
        assert app.screen.query_one("#totals").styles.padding.left == 1
        assert any(p.name == "dashboard.tcss" for p in app.css_path)  # read before the first frame
        files = {str(p) for cls in warm_up.import_screens() for p in warm_up.style_files(cls)}
        assert len(files) >= 15
        await until(pilot, lambda: all(app.stylesheet.has_source(f) for f in files))
        sources = dict(app.stylesheet.source)
        await pilot.press("colon", *"plan", "enter")
        await until(pilot, lambda: isinstance(app.screen, PlanScreen) and app.focused is not None)
        assert not [k for k in app.stylesheet.source if k[0].endswith(".tcss") and k not in sources]
    s.close()
