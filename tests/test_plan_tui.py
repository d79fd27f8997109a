"""`:plan` driven as an SRE would: choose, preview, compare, export, apply; containers then appear."""

from __future__ import annotations

import json

from cockpit.screens.plan import PlanScreen
from cockpit.store.models import AuditRow, ContainerRow, TaskRow
from cockpit.widgets.heatmap import HeatMap
from cockpit.widgets.live_table import LiveTable
from tests.screen_text import notices, screen_text
from tests.test_tui import SIZE, open_app, table_keys, until


async def _open_plan(pilot, app):
    await until(pilot, lambda: table_keys(app))
    await pilot.press("colon", *"plan", "enter")
    await until(pilot, lambda: isinstance(app.screen, PlanScreen))
    await pilot.pause(0.1)


async def _preview(pilot, app, target="feed", count="200", idc="tucheng", strategy="binpack", filters=""):
    # the form starts on "What"; tab selects the next field's text, so typing replaces it
    await pilot.press(*target, "tab", *count, "tab", *idc, "tab", *strategy)
    if filters:
        await pilot.press("tab", *filters)
    await pilot.press("enter")
    await until(pilot, lambda: app.screen.preview is not None and "→ placed" in screen_text(app))


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
    s.close()


async def test_a_bad_request_is_explained_in_place(demo_db):
    s, app = open_app(demo_db)
    async with app.run_test(size=SIZE) as pilot:
        await _open_plan(pilot, app)
        await pilot.press(*"feed", "tab", *"20", "tab", *"mars", "enter")
        await until(pilot, lambda: "no IDC named 'mars'" in screen_text(app))
        assert app.screen.preview is None
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


async def test_export_writes_the_plan_as_json_and_yaml(demo_db, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    s, app = open_app(demo_db)
    async with app.run_test(size=SIZE) as pilot:
        await _open_plan(pilot, app)
        await _preview(pilot, app, count="30")
        await pilot.press("x", "y")
        await until(pilot, lambda: len(list(tmp_path.glob("plan-*"))) == 2)
    doc = json.loads(next(tmp_path.glob("plan-*.json")).read_text())
    assert sum(p["count"] for p in doc["placements"]) == 30 and doc["unplaced"] == 0
    assert any("plan written to" in n for n in notices(app))
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
        assert audit.outcome == "done" and audit.user == "sre"
        await pilot.press("colon", *"dashboard", "enter")
        await until(pilot, lambda: f"{before + planned:,} ctrs" in screen_text(app))
    s.close()


async def test_apply_is_not_offered_read_only(demo_db):
    s, app = open_app(demo_db, readonly=True)
    async with app.run_test(size=SIZE) as pilot:
        await _open_plan(pilot, app)
        await _preview(pilot, app, count="10")
        assert "Apply" not in screen_text(app) and "Compare" in screen_text(app)
        await pilot.press("a")
        await pilot.pause(0.2)
        assert isinstance(app.screen, PlanScreen) and TaskRow.select().count() == 0
    s.close()
