"""`:plan` driven as an SRE would: choose, preview, compare, export, apply; containers then appear.
Keys never surprise: typed quickly they land in the field they were typed in, a suggestion is
what Enter takes, every tab is reachable with `]` / `[`."""

from __future__ import annotations

import json
import threading
import unicodedata

import pytest
from textual import events
from textual.keys import _character_to_key, _get_unicode_name_from_key
from textual.widgets import Input, TabbedContent

from cockpit.identity import os_user
from cockpit.screens.confirm import ConfirmScreen
from cockpit.screens.plan import PlanScreen
from cockpit.store.models import AuditRow, ContainerRow, TaskRow
from cockpit.widgets.heatmap import HeatMap
from cockpit.widgets.live_table import LiveTable
from tests.screen_text import notices, screen_text
from tests.test_tui import SIZE, open_app, table_keys, until


@pytest.fixture(autouse=True)
def _fixed_user(monkeypatch):
    monkeypatch.setenv("USER", "sre")


def burst(app, keys) -> None:
    """Keys arriving all at once, as a fast typist's do over a slow SSH link: every key is handed
    to the app before it has handled the first (pilot.press waits for the app between keys)."""
    for key in keys:
        if len(key) == 1 and not key.isalnum():
            key = _character_to_key(key)
        try:
            char = unicodedata.lookup(_get_unicode_name_from_key(key))
        except KeyError:
            char = key if len(key) == 1 else None
        event = events.Key(key, char)
        event.set_sender(app)
        app._driver.send_message(event)


def fields(app) -> dict[str, str]:
    return {i.id: i.value for i in app.screen.query(Input) if i.id != "filter"}


def summary(app) -> str:
    return str(app.screen.query_one("#summary").render())


async def _open_plan(pilot, app):
    await until(pilot, lambda: table_keys(app))
    await pilot.press("colon", *"plan", "enter")
    await until(pilot, lambda: isinstance(app.screen, PlanScreen) and app.focused is not None)
    await pilot.pause(0.1)


async def _preview(pilot, app, target="feed", count="200", idc="tucheng", strategy="binpack", filters=""):
    # the form starts on "What"; tab selects the next field's text, so typing replaces it
    await pilot.press(*target, "tab", *count, "tab", *idc, "tab", *strategy)
    if filters:
        await pilot.press("tab", *filters)
    await pilot.press("enter")
    await until(pilot, lambda: app.screen.preview is not None and "→ placed" in screen_text(app))
    await until(pilot, lambda: app.screen.query_one("#placements", LiveTable).row_count > 0)


async def test_preview_shows_the_plan_heat_map_and_dependencies(demo_db):
    s, app = open_app(demo_db)
    async with app.run_test(size=SIZE) as pilot:
        await _open_plan(pilot, app)
        await _preview(pilot, app)
        text = screen_text(app)
        assert "feed +200 in tucheng (binpack) → placed 200 on" in text
        rows = app.screen.query_one("#placements", LiveTable).row_keys
        assert rows and all(k.startswith("tc-feed-") for k in rows)
        heat = app.screen.query_one(HeatMap)._cells
        assert len(heat) == 300 and any(after > before for _, before, after in heat)
        deps = app.screen.query_one("#deps", LiveTable).row_keys
        assert deps == ["0:feed", "1:user", "2:relation", "3:card"]
        assert isinstance(app.focused, LiveTable) and app.focused.id == "placements"  # Enter: to the results
    s.close()


async def test_slash_filters_the_placements(demo_db):
    s, app = open_app(demo_db)
    async with app.run_test(size=SIZE) as pilot:
        await _open_plan(pilot, app)
        await _preview(pilot, app, count="60", strategy="spread")
        table = app.screen.query_one("#placements", LiveTable)
        assert table.row_count == 60
        await pilot.press("slash", *"new-0061")
        await until(pilot, lambda: table.row_keys == ["tc-feed-new-0061"])
        await pilot.press("escape")
        await until(pilot, lambda: table.row_count == 60)
    s.close()


async def test_a_bad_request_is_explained_in_place(demo_db):
    s, app = open_app(demo_db)
    async with app.run_test(size=SIZE) as pilot:
        await _open_plan(pilot, app)
        await pilot.press(*"feed", "tab", *"20", "tab", *"mars", "enter")
        await until(pilot, lambda: "no IDC named 'mars'" in screen_text(app))
        assert app.screen.preview is None
        assert app.focused.id == "idc"  # the field stays, to be put right
    s.close()


async def test_the_strategy_suggestion_is_what_enter_submits(demo_db):
    s, app = open_app(demo_db)
    async with app.run_test(size=SIZE) as pilot:
        await _open_plan(pilot, app)
        await pilot.press("tab", *"30", "tab", *"tuc", "tab", "b")
        await until(pilot, lambda: "Strategy binpack" in screen_text(app))  # the suggestion shown
        assert fields(app)["idc"] == "tucheng"  # tab took the IDC's suggestion too
        await pilot.press("enter")
        await until(pilot, lambda: "feed +30 in tucheng (binpack) → placed" in screen_text(app))
        assert fields(app)["strategy"] == "binpack"
    s.close()


async def test_a_suggestion_never_replaces_a_value_typed_in_full(demo_db):
    s, app = open_app(demo_db)
    async with app.run_test(size=SIZE) as pilot:
        await _open_plan(pilot, app)
        await until(pilot, lambda: app.screen.query_one("#target").choices)
        await pilot.press(*"us")
        await until(pilot, lambda: "What user" in screen_text(app))
        await pilot.press("e", "r", "tab", *"5", "enter")
        await until(pilot, lambda: "user +5 (spread) → placed" in screen_text(app))
    s.close()


async def test_keys_typed_in_a_burst_land_in_the_field_they_were_typed_in(demo_db):
    s, app = open_app(demo_db)
    async with app.run_test(size=SIZE) as pilot:
        await _open_plan(pilot, app)
        burst(app, [*"user", "tab", *"20", "tab", *"tuc", "tab", *"r", "tab", *"gen == new", "tab",
                    "backspace", *"42", "enter"])
        await until(pilot, lambda: "→ placed" in screen_text(app))
        assert fields(app) == {"target": "user", "count": "20", "idc": "tucheng", "strategy": "random",
                               "filters": "gen == new", "seed": "42"}
        assert "user +20 in tucheng (random) where gen == new → placed 20" in screen_text(app)
    s.close()


async def test_keys_typed_after_enter_change_neither_the_preview_nor_the_focus(demo_db):
    s, app = open_app(demo_db)
    async with app.run_test(size=SIZE) as pilot:
        await _open_plan(pilot, app)
        burst(app, ["tab", *"30", "enter", *"5"])  # the user goes on typing while it plans
        await until(pilot, lambda: "→ placed" in screen_text(app))
        await pilot.pause(0.2)
        assert "feed +30 (spread) → placed 30" in screen_text(app)
        assert fields(app)["count"] == "305"
        assert app.focused.id == "count"  # the focus did not jump to the results under the keys
    s.close()


async def test_keys_after_e_go_to_the_form_not_to_the_results(demo_db):
    s, app = open_app(demo_db)
    async with app.run_test(size=SIZE) as pilot:
        await _open_plan(pilot, app)
        await _preview(pilot, app, count="20")
        assert app.focused.id == "placements"
        # "card" typed right after e: c (compare) and a (apply) must not act on the results
        burst(app, ["e", *"card", "enter"])
        await until(pilot, lambda: "card +20 in tucheng (binpack)" in screen_text(app))
        assert fields(app)["target"] == "card"
        assert not isinstance(app.screen, ConfirmScreen) and app.screen.previews == {}
        await until(pilot, lambda: app.focused.id == "placements")
        # each key acts where the key before it left the focus: esc to the results, e back to the form
        burst(app, ["e", *"user", "escape", "e", *"feed"])
        await until(pilot, lambda: fields(app)["target"] == "feed")
        assert app.focused.id == "target" and isinstance(app.screen, PlanScreen)
    s.close()


async def test_keys_typed_while_the_view_opens_go_to_the_form(demo_db):
    s, app = open_app(demo_db)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: table_keys(app))
        app.goto("plan")
        burst(app, [*"card", "tab", *"7"])  # before the view has drawn its form
        await until(pilot, lambda: isinstance(app.screen, PlanScreen) and fields(app).get("count") == "7")
        assert fields(app)["target"] == "card"
        assert not isinstance(app.screen, ConfirmScreen) and app.screen.previews == {}
    s.close()


async def test_the_form_is_read_on_the_event_loop_and_planned_in_a_thread(demo_db, monkeypatch):
    s, app = open_app(demo_db)
    seen: dict[str, set] = {"fields": set(), "preview": set()}
    read, plan = PlanScreen._fields, s.cockpit.preview

    def fields_spy(self, *a):
        seen["fields"].add(threading.current_thread() is threading.main_thread())
        return read(self, *a)

    def preview_spy(req):
        seen["preview"].add(threading.current_thread() is threading.main_thread())
        return plan(req)

    monkeypatch.setattr(PlanScreen, "_fields", fields_spy)
    monkeypatch.setattr(s.cockpit, "preview", preview_spy)
    async with app.run_test(size=SIZE) as pilot:
        await _open_plan(pilot, app)
        await _preview(pilot, app, count="10")
        await pilot.press("c")
        await until(pilot, lambda: app.screen.previews)
    assert seen == {"fields": {True}, "preview": {False}}
    s.close()


async def test_bracket_keys_reach_every_tab_and_its_content_takes_the_keys(demo_db):
    s, app = open_app(demo_db)
    async with app.run_test(size=SIZE) as pilot:
        await _open_plan(pilot, app)
        await _preview(pilot, app)
        tabs = app.screen.query_one(TabbedContent)
        await pilot.press("right_square_bracket")
        await until(pilot, lambda: tabs.active == "tab-heat" and app.focused.id == "heat-scroll")
        assert "top half: before" in screen_text(app)
        await pilot.press("right_square_bracket")
        await until(pilot, lambda: tabs.active == "tab-compare" and app.focused.id == "compare")
        await until(pilot, lambda: "hosts touched" in screen_text(app))  # compared on arrival
        await pilot.press("right_square_bracket")
        deps = app.screen.query_one("#deps", LiveTable)
        await until(pilot, lambda: tabs.active == "tab-deps" and app.focused is deps)
        await pilot.press("j", "j")
        assert deps.current_key() == "2:relation"
        await pilot.press("right_square_bracket")
        await until(pilot, lambda: tabs.active == "tab-plan" and app.focused.id == "placements")
        await pilot.press("left_square_bracket")
        await until(pilot, lambda: tabs.active == "tab-deps" and app.focused is deps)
    s.close()


async def test_compare_puts_the_strategies_side_by_side(demo_db):
    s, app = open_app(demo_db)
    async with app.run_test(size=SIZE) as pilot:
        await _open_plan(pilot, app)
        await _preview(pilot, app)
        await pilot.press("c")
        table = app.screen.query_one("#compare", LiveTable)
        await until(pilot, lambda: "hosts_touched" in table.row_keys)
        text = screen_text(app)
        for strategy in ("spread", "binpack", "random", "custom"):
            assert strategy in text
        cells = table._cells["hosts_touched"]
        spread, binpack = int(str(cells[1])), int(str(cells[2]))
        assert spread > binpack  # spread touches more hosts than binpack for the same containers
    s.close()


async def test_x_exports_json_Y_exports_yaml_and_y_copies_a_row(demo_db, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    s, app = open_app(demo_db)
    async with app.run_test(size=SIZE) as pilot:
        await _open_plan(pilot, app)
        await _preview(pilot, app, count="30")
        await pilot.press("y")  # the table's key: copies the selected row, writes nothing
        await until(pilot, lambda: any("row copied" in n for n in notices(app)))
        assert list(tmp_path.glob("plan-*")) == []
        await pilot.press("x", "Y")
        await until(pilot, lambda: len(list(tmp_path.glob("plan-*"))) == 2)
    doc = json.loads(next(tmp_path.glob("plan-*.json")).read_text())
    assert sum(p["count"] for p in doc["placements"]) == 30 and doc["unplaced"] == 0
    assert next(tmp_path.glob("plan-*.yaml")).read_text().startswith("request:")
    assert sum("plan written to" in n for n in notices(app)) == 2
    s.close()


async def test_apply_and_export_before_a_preview_say_what_to_do(demo_db, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    s, app = open_app(demo_db)
    async with app.run_test(size=SIZE) as pilot:
        await _open_plan(pilot, app)
        await pilot.press("escape", "a", "x")
        await until(pilot, lambda: sum("press Enter to preview" in n for n in notices(app)) == 2)
        assert isinstance(app.screen, PlanScreen) and list(tmp_path.glob("plan-*")) == []
    s.close()


async def test_every_action_key_has_a_description_for_the_palette(demo_db):
    s, app = open_app(demo_db)
    async with app.run_test(size=SIZE) as pilot:
        await _open_plan(pilot, app)
        entries = {action: title for title, action, _ in app.screen.palette_actions()}
        assert entries == {"compare": "Compare", "apply": "Apply…", "export('json')": "Export JSON",
                           "export('yaml')": "Export YAML", "edit": "Edit request"}
    s.close()


async def test_apply_asks_then_the_engine_starts_the_containers(demo_db):
    s, app = open_app(demo_db, engine=True)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: "engine ● active" in screen_text(app))
        before = ContainerRow.select().count()
        await _open_plan(pilot, app)
        await _preview(pilot, app, count="40")
        planned = sum(d.plan.placed for d in app.screen.preview.parts)
        await pilot.press("a")
        await until(pilot, lambda: "Scale: apply a plan?" in screen_text(app))
        await pilot.press("y")
        await until(pilot, lambda: "task 1 done" in screen_text(app), timeout=15)
        assert ContainerRow.select().count() == before + planned
        assert TaskRow.get_by_id(1).state == "done"
        audit = AuditRow.get(AuditRow.action == "plan.apply")
        assert audit.outcome == "done" and audit.user == os_user().name
        await pilot.press("colon", *"dashboard", "enter")
        await until(pilot, lambda: f"{before + planned:,} ctrs" in screen_text(app))
    s.close()


async def test_apply_read_only_is_refused_in_place_with_the_reason(demo_db):
    s, app = open_app(demo_db, readonly=True)
    async with app.run_test(size=SIZE) as pilot:
        await _open_plan(pilot, app)
        await _preview(pilot, app, count="10")
        assert "Apply" not in screen_text(app) and "Compare" in screen_text(app)
        await pilot.press("a")
        await until(pilot, lambda: any("read-only" in n for n in notices(app)))
        assert isinstance(app.screen, PlanScreen) and TaskRow.select().count() == 0
    s.close()


async def test_the_form_fits_60_columns(demo_db):
    s, app = open_app(demo_db)
    async with app.run_test(size=(60, 20)) as pilot:
        await _open_plan(pilot, app)
        for field in app.screen.query(Input):
            if field.id != "filter":
                assert field.region.right <= 60 and field.region.width >= 6, field.id
        await _preview(pilot, app, count="20")
        assert "feed +20 in tucheng (binpack)" in screen_text(app)
    s.close()


def _no_blink(app) -> None:
    """The cursor blinks on a timer: off, so the snapshot is the same every time."""
    for i in app.screen.query(Input):
        i.cursor_blink = False


def test_the_plan_form_at_80x24(demo_db, snap_compare):
    s, app = open_app(demo_db)

    async def opened(pilot):
        await _open_plan(pilot, app)
        await until(pilot, lambda: app.screen.query_one("#target").choices)
        _no_blink(app)

    assert snap_compare(app, terminal_size=SIZE, run_before=opened)
    s.close()


def test_the_plan_results_at_80x24(demo_db, snap_compare):
    s, app = open_app(demo_db)

    async def previewed(pilot):
        await _open_plan(pilot, app)
        await _preview(pilot, app, count="60", strategy="spread")
        _no_blink(app)

    assert snap_compare(app, terminal_size=SIZE, run_before=previewed)
    s.close()
