"""`:hosts`, `:ecs` and `:costs` driven as an SRE would."""

from __future__ import annotations

from cockpit.screens.costs import CostsScreen
from cockpit.screens.ecs import EcsScreen
from cockpit.screens.hosts import HostsScreen
from cockpit.store.models import AuditRow, EcsOrderRow, HostRow, PoolMoveRow, TaskRow
from cockpit.widgets.live_table import LiveTable
from tests.screen_text import screen_text
from tests.test_tui import SIZE, open_app, table_keys, until


async def test_giving_hosts_back_to_the_shared_pool_from_the_pools_tab(demo_db):
    s, app = open_app(demo_db, engine=True)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: "engine ● active" in screen_text(app))
        await pilot.press("colon", *"hosts", "enter")
        await until(pilot, lambda: isinstance(app.screen, HostsScreen) and len(table_keys(app)) == 2060)
        app.screen.query_one("TabbedContent").active = "tab-pools"
        pools = app.screen.query_one("#pools", LiveTable)
        await until(pilot, lambda: "card-web/tucheng" in pools.row_keys)
        pools.focus()
        pools.move_cursor(row=pools.row_keys.index("card-web/tucheng"))
        await pilot.press("g")
        await until(pilot, lambda: "Give hosts back to shared" in screen_text(app))
        await pilot.press("tab", "tab", *"5", "enter")  # pool and IDC come from the row; 5 hosts
        await until(pilot, lambda: "Move hosts between pools?" in screen_text(app))
        await pilot.press("y")
        await until(pilot, lambda: TaskRow.select().where(TaskRow.state == "done").count() == 1, timeout=15)
    assert PoolMoveRow.select().where(PoolMoveRow.to_pool == "shared").count() == 5
    assert HostRow.select().where((HostRow.pool == "card-web") & (HostRow.idc == "tucheng")).count() == 75
    s.close()


async def test_ordering_ecs_hosts_shows_the_cost_then_the_progress_and_fallback(demo_db):
    s, app = open_app(demo_db, engine=True, backends={"cloud": {"kind": "sim", "latency_ms": 20}})
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: "engine ● active" in screen_text(app))
        await pilot.press("colon", *"ecs", "enter")
        await until(pilot, lambda: isinstance(app.screen, EcsScreen))
        await pilot.press("o")
        await until(pilot, lambda: "Order ECS hosts" in screen_text(app))
        await pilot.press("tab", *"60", "enter")
        await until(pilot, lambda: "Cost: 228.00 an hour, 166,440 a month." in screen_text(app))
        await pilot.press("y")
        await until(pilot, lambda: EcsOrderRow.select().where(EcsOrderRow.state == "done").count() == 1, timeout=20)
        await until(pilot, lambda: "60/60" in screen_text(app))
        text = screen_text(app)
        assert "██████████" in text and "done" in text
        assert "fallback: cn-beijing-h" in text and "OperationDenied.NoStock" in text
    audit = AuditRow.get(AuditRow.action == "ecs.order")
    assert audit.details["cost_per_month"] == 166440.0
    s.close()


async def test_costs_list_expiring_hosts_and_renew_one(demo_db):
    s, app = open_app(demo_db, engine=True)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: "engine ● active" in screen_text(app))
        await pilot.press("colon", *"costs", "enter")
        await until(pilot, lambda: isinstance(app.screen, CostsScreen) and "expiring within 7 days: 40" in screen_text(app))
        assert "aliyun" in screen_text(app) and "yongfeng" in screen_text(app)
        expiring = app.screen.query_one("#expiring", LiveTable)
        expiring.focus()
        await pilot.press("n")
        await until(pilot, lambda: "Renew prepaid hosts?" in screen_text(app))
        await pilot.press("y")
        await until(pilot, lambda: TaskRow.select().where((TaskRow.kind == "renew") & (TaskRow.state == "done")).count() == 1,
                    timeout=15)
    renewed = TaskRow.get(TaskRow.kind == "renew").progress["renewed"]
    assert renewed == ["ali-shared-0001"]
    s.close()
