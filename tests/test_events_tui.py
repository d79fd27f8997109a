"""`:events` driven as an SRE would: the filter, the ends of the table, the width of the text."""

from __future__ import annotations

import pytest

from cockpit.engine import journal
from cockpit.screens.events import EventsScreen
from cockpit.store.models import EventRow
from cockpit.widgets.live_table import LiveTable
from tests.screen_text import screen_text
from tests.test_tui import SIZE, open_app, until


@pytest.fixture(autouse=True)
def _fixed_user(monkeypatch):
    monkeypatch.setenv("USER", "sre")


def events_table(app) -> LiveTable:
    return app.screen.query_one("#events", LiveTable)


async def open_events(pilot, app, rows: int | None = None) -> EventsScreen:
    await pilot.press("colon", *"events", "enter")
    await until(pilot, lambda: isinstance(app.screen, EventsScreen) and events_table(app).row_count > 0
                and (rows is None or events_table(app).row_count == rows))
    return app.screen


def platform_events(world, n: int) -> None:
    """Events as the engine writes them, at fixed platform times."""
    start = world.start.timestamp()
    for k in range(n):
        host = f"tc-feed-new-{k % 300 + 1:04d}"
        if k % 3 == 0:
            journal.event(start + 60 * k, "warn", "host", host,
                          f"host {host} (tucheng/feed-web) down; repair in ~31 min")
        elif k % 3 == 1:
            journal.event(start + 60 * k, "info", "host", host, f"host {host} (tucheng/feed-web) back")
        else:
            journal.event(start + 60 * k, "info", "engine", "engine", f"engine active on jump-{k}:4242")


async def test_filter_engine_then_ctrl_end_shows_each_event_once_and_never_crashes(demo_db):
    """The crash the reviewer met: `:events`, filter `engine`, then ctrl+End (DuplicateKey)."""
    s, app = open_app(demo_db, engine=True, speed=3600)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: "engine ● active" in screen_text(app))
        screen = await open_events(pilot, app)
        await until(pilot, lambda: events_table(app).row_count >= 5, timeout=20)  # hosts fail and return at x3600
        table = events_table(app)
        await pilot.press("slash", *"engine", "ctrl+end")
        await until(pilot, lambda: screen.query_text == "engine")
        await pilot.press("enter", "ctrl+end")
        for _ in range(3):  # while the engine keeps writing events
            await pilot.press("ctrl+home", "ctrl+end", "G", "g", "end")
            await pilot.pause(0.3)
        keys = table.row_keys
        assert keys and len(keys) == len(set(keys))
        assert all("engine" in table.row_text(k) or screen._by_id[k].kind == "engine"
                   or "engine" in screen._by_id[k].scope for k in keys)
        assert table.cursor_row == table.row_count - 1
        await pilot.press("escape")  # the filter goes: every event, each once
        await until(pilot, lambda: table.row_count > len(keys))
        assert len(table.row_keys) == len(set(table.row_keys))
        assert isinstance(app.screen, EventsScreen) and app.is_running
    s.close()


async def test_reads_that_overlap_never_add_an_event_twice(demo_db, demo_world):
    s, app = open_app(demo_db)
    platform_events(demo_world, 30)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_events(pilot, app, rows=30)
        platform_events(demo_world, 5)
        for _ in range(3):  # reads of the same events, all at once, as slow reads overlap
            screen._load(30)
        await until(pilot, lambda: events_table(app).row_count == 35)
        await pilot.pause(0.3)
        keys = events_table(app).row_keys
        assert len(keys) == 35 == len(set(keys))
        assert keys == [str(r.id) for r in EventRow.select().order_by(EventRow.id)]
    s.close()


async def test_event_text_takes_the_width_left_and_the_line_below_shows_it_whole(demo_db, demo_world):
    s, app = open_app(demo_db)
    start = demo_world.start.timestamp()
    fits = "host yf-feed-old-0230 (yongfeng/feed-web) down; repair in ~35 m"  # 63 characters
    long = ("moved 40 hosts from feed-web to hadoop (feed-etl); 212 containers re-placed; "
            "stopped 12 etl")
    journal.event(start + 60, "warn", "host", "yf-feed-old-0230", fits)
    journal.event(start + 120, "info", "pool", "hadoop", long)
    async with app.run_test(size=SIZE) as pilot:
        await open_events(pilot, app, rows=2)
        text = screen_text(app)
        assert f"11:51:00 warn  {fits}" in text  # whole, at 80 columns
        assert "11:52:00 info  moved 40 hosts from feed-web to hadoop (feed-etl); 212 contain" in text
        detail = app.screen.query_one("#event-detail")
        assert "Thu 26 Nov 11:52:00" in screen_text(app)  # the newest is selected; its full text below
        assert "stopped 12 etl" in screen_text(app) and detail.region.y > events_table(app).region.y
        await pilot.press("k")
        await until(pilot, lambda: "Thu 26 Nov 11:51:00  host · yf-feed-old-0230" in screen_text(app))
    s.close()


async def test_events_are_shown_in_platform_time_in_the_worlds_zone(demo_db, demo_world):
    s, app = open_app(demo_db)
    journal.event(demo_world.start.timestamp() + 3 * 3600 + 5, "error", "init", "ecs-3-0001",
                  "host ecs-3-0001 initialisation failed at 'docker': timeout")
    async with app.run_test(size=SIZE) as pilot:
        await open_events(pilot, app, rows=1)
        text = screen_text(app)
        assert "14:50:05 error host ecs-3-0001 initialisation failed" in text  # 11:50 +08:00, 3 h later
        assert "Thu 26 Nov 14:50:05  init · ecs-3-0001" in text
    s.close()


def test_events_at_80x24(demo_db, demo_world, snap_compare):
    s, app = open_app(demo_db)
    platform_events(demo_world, 12)
    journal.event(demo_world.start.timestamp() + 900, "warn", "traffic", "celebrity-wedding",
                  "hot event celebrity-wedding: feed, user, card x2.5 for 120 min")

    async def opened(pilot):
        await until(pilot, lambda: app.screen.query(LiveTable))
        await open_events(pilot, app, rows=13)
        await pilot.pause(0.1)

    assert snap_compare(app, terminal_size=SIZE, run_before=opened)
    s.close()
