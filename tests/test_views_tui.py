"""`:ecs`, `:costs` and `:audit` at 80x24 and 60x20, on one clock, with every action described and
gated. No engine runs here: the orders are placed through the facade (and, where a test needs
fallbacks and errors, drained by the real drainer against the simulated cloud)."""

from __future__ import annotations

import os
import socket
import time
from datetime import datetime

import pytest

from cockpit.app import create_app
from cockpit.backends.sim.cloud import SimCloud, SimCloudModel
from cockpit.engine.ecs import EcsDrainer
from cockpit.identity import os_user
from cockpit.screens.audit import AuditScreen
from cockpit.screens.costs import CostsScreen
from cockpit.screens.ecs import EcsScreen
from cockpit.store.db import chain_audit
from cockpit.store.models import AuditRow, EcsCallRow, EcsOrderRow
from cockpit.widgets.live_table import LiveTable
from tests.screen_text import notices, screen_text
from tests.test_tui import SIZE, open_app, until

NARROW = (60, 20)
ME = os_user().name  # who the tests run as: the audit and the orders name the OS user
FROZEN_REAL = 1_767_225_600.0  # 2026-01-01 00:00:00 UTC: the wall clock the snapshots show


@pytest.fixture
def utc():
    """This machine's zone is UTC while the test runs (the audit shows the wall clock in it)."""
    before = os.environ.get("TZ")
    os.environ["TZ"] = "UTC"
    time.tzset()
    yield
    if before is None:
        del os.environ["TZ"]
    else:
        os.environ["TZ"] = before
    time.tzset()


async def open_view(pilot, app, name: str, screen_type) -> None:
    await pilot.press("colon", *name, "enter")
    await until(pilot, lambda: isinstance(app.screen, screen_type))


def table(app, selector: str = "LiveTable") -> LiveTable:
    return app.screen.query_one(selector, LiveTable)


SCROLLBAR = " ▁▂▃▄▅▆▇█▏▎▍▌▋▊▉"


def header_line(app) -> str:
    return screen_text(app).splitlines()[1].rstrip(SCROLLBAR)


def line_starting(app, start: str) -> str:
    """The screen line that starts with `start`, without the scrollbar at its right edge."""
    return next(x for x in screen_text(app).splitlines() if x.startswith(start)).rstrip(SCROLLBAR)


def words(app) -> str:
    """The screen's words in order, one space apart: a dialog's text however it wraps."""
    return " ".join(screen_text(app).replace("█", " ").replace("▌", " ").replace("▐", " ").split())


def drain(s, oid: int) -> None:
    """The real drainer and the simulated cloud: the demo's first zone runs out of stock, so the
    order falls over to the next zone, with one error on the way."""
    cloud = SimCloud(SimCloudModel.from_world(s.world))
    deadline = time.time() + 30
    EcsDrainer(s.db, cloud, s.world).drain(
        until=lambda: EcsOrderRow.get_by_id(oid).state not in ("queued", "running") or time.time() > deadline)


def place_order(s, sid: int = 101, count: int = 20, pool: str | None = None) -> int:
    outcome = s.cockpit.order_hosts(sid, count, pool)
    assert outcome.ok, outcome.message
    return EcsOrderRow.select().order_by(EcsOrderRow.id.desc()).get().id


# --- :ecs -----------------------------------------------------------------------------------


async def test_ecs_errors_and_rate_columns_fit_80_columns_and_60_still_reads(demo_db):
    s, app = open_app(demo_db)
    oid = place_order(s, count=60)
    drain(s, oid)
    async with app.run_test(size=SIZE) as pilot:
        await open_view(pilot, app, "ecs", EcsScreen)
        await until(pilot, lambda: table(app).row_keys == [str(oid)])
        head = header_line(app)
        for label in ("#", "Service", "Pool", "Created", "State", "Zone", "Fb", "Err", "/s"):
            assert label in head.split(), (label, head)
        errors = EcsCallRow.select().where((EcsCallRow.order == oid) & EcsCallRow.error_code.is_null(False)).count()
        assert errors >= 1
        row = screen_text(app).splitlines()[2].split()
        # the zone it fell over to, one fallback, the errors met; then the drain rate while it lasts
        assert row[:3] == [str(oid), "feed", "feed-web"] and row[4:9] == ["60/60", "done", "cn-beijing-i", "1",
                                                                          str(errors)]
    app = create_app(s.cockpit, s.cfg)
    async with app.run_test(size=NARROW) as pilot:
        await open_view(pilot, app, "ecs", EcsScreen)
        await until(pilot, lambda: table(app).row_keys == [str(oid)])
        head = header_line(app).split()
        assert head[:5] == ["#", "Pool", "Created", "State", "Zone"] and "Err" in head
        assert screen_text(app).splitlines()[2].split()[:6] == [str(oid), "feed-web", "60/60", "done", "cn-beijing-i",
                                                                 str(errors)]
    s.close()


async def test_ecs_details_give_the_platform_time_of_the_order_with_the_real_time_beside(demo_db, utc):
    s, app = open_app(demo_db)
    oid = place_order(s)
    real = EcsOrderRow.get_by_id(oid).real_created
    async with app.run_test(size=SIZE) as pilot:
        await open_view(pilot, app, "ecs", EcsScreen)
        await until(pilot, lambda: f"order {oid}:" in screen_text(app))
        text = screen_text(app)
        wall = datetime.fromtimestamp(real).astimezone().strftime("%m-%d %H:%M:%S UTC")
        assert f"placed Thu 26 Nov 11:50:00 (real {wall})" in text  # the header's clock: Thu 26 Nov 11:50
        assert f"20 x ecs.c6.4xlarge for pool feed-web, 55,480 a month, by {ME}" in text
        assert "using cn-beijing-h/vsw-bj-h-1/sg-bj-h-dcp1" in text
    s.close()


async def test_ecs_details_follow_the_cursor(demo_db):
    s, app = open_app(demo_db)
    first = place_order(s, sid=101)
    second = place_order(s, sid=103, count=5)
    async with app.run_test(size=SIZE) as pilot:
        await open_view(pilot, app, "ecs", EcsScreen)
        await until(pilot, lambda: table(app).row_keys == [str(second), str(first)])
        await until(pilot, lambda: f"order {second}: 5 x" in screen_text(app))
        table(app).focus()
        await pilot.press("j")
        await until(pilot, lambda: f"order {first}: 20 x" in screen_text(app))
    s.close()


async def test_the_order_dialog_names_the_pool_and_the_cost_before_confirming(demo_db):
    s, app = open_app(demo_db)
    async with app.run_test(size=SIZE) as pilot:
        await open_view(pilot, app, "ecs", EcsScreen)
        await pilot.press("o")
        await until(pilot, lambda: "Order ECS hosts" in screen_text(app))
        await pilot.press("tab", *"60", "enter")  # the template's own pool
        await until(pilot, lambda: "Order ECS hosts?" in screen_text(app))
        text = words(app)
        assert "for pool feed-web." in text and "the template" not in text
        assert "Cost: 228.00 an hour, 166,440 a month." in text
        await pilot.press("y")
        await until(pilot, lambda: EcsOrderRow.select().count() == 1)
        await pilot.press("o")
        await until(pilot, lambda: "Order ECS hosts" in screen_text(app))
        await pilot.press("tab", *"2", "tab", *"shared", "enter")
        await until(pilot, lambda: "for pool shared." in words(app))
        assert "Cost: 7.60 an hour, 5,548 a month." in words(app)
        await pilot.press("n")
    assert [(o.pool, o.count) for o in EcsOrderRow.select()] == [("feed-web", 60)]
    s.close()


@pytest.mark.parametrize("count, pool, says", [
    ("0", "", "the count must be from 1 to 10,000, got 0"),
    ("twenty", "", "the template and the count must be whole numbers, got '101' and 'twenty'"),
    ("5", "nope", "no pool named 'nope' (pools: feed-web, user-web, user-rpc, card-web, hadoop, shared)"),
])
async def test_a_bad_order_is_named_in_one_line_and_nothing_is_ordered(demo_db, count, pool, says):
    s, app = open_app(demo_db)
    async with app.run_test(size=SIZE) as pilot:
        await open_view(pilot, app, "ecs", EcsScreen)
        await pilot.press("o")
        await until(pilot, lambda: "Order ECS hosts" in screen_text(app))
        await pilot.press("tab", *count, "tab", *pool, "enter")
        await until(pilot, lambda: says in notices(app))
        assert "Order ECS hosts?" not in screen_text(app)
    assert EcsOrderRow.select().count() == 0
    s.close()


# --- :costs ---------------------------------------------------------------------------------


async def test_costs_show_the_whole_expiry_in_platform_time_at_80_columns(demo_db):
    s, app = open_app(demo_db)
    async with app.run_test(size=SIZE) as pilot:
        await open_view(pilot, app, "costs", CostsScreen)
        await until(pilot, lambda: "ali-shared-0001" in table(app, "#expiring").row_keys)
        await until(pilot, lambda: all(t.show_vertical_scrollbar for t in app.screen.query(LiveTable)))
        text = screen_text(app)
        assert "Prepaid hosts expiring within 7 days: 40" in text
        line = line_starting(app, "ali-shared-0001")
        # expires 2026-11-30 in the world's zone, 4.5 platform days after Thu 26 Nov 11:50; 1,900 a month
        assert line.split()[:7] == ["ali-shared-0001", "shared", "monthly", "2026-11-30", "23:59", "4.5", "1,900"]
        for label in ("Scope", "Name", "Hosts", "A day", "A month", "This month", "Pay-as-you-go"):
            assert label in header_line(app), label
    s.close()


async def test_costs_at_60x20_keep_the_rates_and_the_expiry(demo_db):
    s, app = open_app(demo_db)
    async with app.run_test(size=NARROW) as pilot:
        await open_view(pilot, app, "costs", CostsScreen)
        await until(pilot, lambda: "ali-shared-0001" in table(app, "#expiring").row_keys)
        await until(pilot, lambda: all(t.show_vertical_scrollbar for t in app.screen.query(LiveTable)))
        # pay-as-you-go goes first; the pool of an expiring host next
        assert header_line(app).split() == ["Scope", "Name", "Hosts", "A", "day", "A", "month", "This", "month"]
        assert line_starting(app, "Host ").split() == ["Host", "Charge", "Expires", "Days", "A", "month"]
        line = line_starting(app, "ali-shared-0001")
        assert "2026-11-30 23:59" in line and "4.5" in line
        idc = line_starting(app, "idc     aliyun")
        assert idc.split()[2:5] == ["100", "7,971", "242,440"]
    s.close()


# --- :audit ---------------------------------------------------------------------------------


async def test_audit_shows_platform_time_with_the_real_time_beside_it(demo_db, utc):
    s, app = open_app(demo_db)
    place_order(s)
    entry = AuditRow.get(AuditRow.action == "ecs.order")
    async with app.run_test(size=SIZE) as pilot:
        await open_view(pilot, app, "audit", AuditScreen)
        await until(pilot, lambda: table(app).row_keys == [str(entry.id)])
        text = screen_text(app)
        head = header_line(app)
        assert head.startswith("Platform    Real UTC    User     Action        Target       Outcome Details")
        real = datetime.fromtimestamp(entry.real_t).astimezone()
        row = text.splitlines()[2]
        assert row.startswith(f"26 11:50:00 {real:%d %H:%M:%S} {ME:<8} ecs.order     template 101 done")
        assert f"platform Thu 26 Nov 2026 11:50:00 UTC+08:00, real {real:%Y-%m-%d %H:%M:%S} UTC" in text
    s.close()


async def test_audit_details_cut_in_the_table_are_whole_below_it(demo_db):
    s, app = open_app(demo_db)
    place_order(s)
    async with app.run_test(size=SIZE) as pilot:
        await open_view(pilot, app, "audit", AuditScreen)
        await until(pilot, lambda: table(app).row_count == 1)
        await until(pilot, lambda: "cost_per_month=55480.0 count=20 pool=feed-web sid=101" in screen_text(app))
        assert f"#1 ecs.order on template 101 by {ME} (operator) from {socket.gethostname()}: done" in screen_text(app)
    s.close()


async def test_new_audit_entries_come_in_on_top_and_the_filter_keeps_to_them(demo_db):
    s, app = open_app(demo_db)
    place_order(s)
    async with app.run_test(size=SIZE) as pilot:
        await open_view(pilot, app, "audit", AuditScreen)
        await until(pilot, lambda: table(app).row_count == 1)
        failed = s.cockpit.order_hosts(101, 5, "nope")  # audited as failed
        assert not failed.ok
        await until(pilot, lambda: table(app).row_count == 2)
        top = table(app).row_keys[0]
        assert AuditRow.get_by_id(int(top)).outcome == "failed"
        await pilot.press("slash", *"failed")
        await until(pilot, lambda: table(app).row_keys == [top])
        await pilot.press("escape")
        await until(pilot, lambda: table(app).row_count == 2)
    s.close()


async def test_audit_at_60x20_keeps_when_what_and_outcome(demo_db):
    s, app = open_app(demo_db)
    place_order(s)
    async with app.run_test(size=NARROW) as pilot:
        await open_view(pilot, app, "audit", AuditScreen)
        await until(pilot, lambda: table(app).row_count == 1)
        assert header_line(app).split() == ["Platform", "User", "Action", "Outcome", "Details"]
        assert screen_text(app).splitlines()[2].startswith(f"26 11:50:00 {ME:<8} ecs.order     done    cost_per")
    s.close()


# --- actions: described, gated, in the palette ------------------------------------------------


@pytest.mark.parametrize("screen", [EcsScreen, CostsScreen])  # :audit's keys only filter (tests/test_audit_view.py)
def test_every_action_key_has_a_description_and_is_gated(screen):
    for b in screen.__dict__.get("BINDINGS", []):
        assert b.description and b.id, b
        assert b.action in screen.ACTION_IDS, f"{screen.VIEW}: {b.action} is not gated"


async def test_the_palette_lists_the_ecs_actions_the_user_may_take(demo_db):
    s, app = open_app(demo_db)
    async with app.run_test(size=SIZE) as pilot:
        await open_view(pilot, app, "ecs", EcsScreen)
        titles = [title for title, _, _ in app.screen.palette_actions()]
        assert titles == ["Order hosts…", "Pause/resume", "Cancel the order", "Retry the order"]
    s.close()
    s, app = open_app(demo_db, readonly=True)
    async with app.run_test(size=SIZE) as pilot:
        await open_view(pilot, app, "ecs", EcsScreen)
        assert app.screen.palette_actions() == []
    s.close()


async def test_ecs_keys_in_read_only_mode_say_why_and_are_audited(demo_db):
    s, app = open_app(demo_db, readonly=True)
    async with app.run_test(size=SIZE) as pilot:
        await open_view(pilot, app, "ecs", EcsScreen)
        assert "Order hosts" not in screen_text(app)  # the key bar shows what may be used
        await pilot.press("o")
        await until(pilot, lambda: "Order ECS hosts: read-only mode: no changes" in notices(app))
        await until(pilot, lambda: AuditRow.select().where(AuditRow.outcome == "refused").count() == 1)
        assert "Order ECS hosts" not in screen_text(app)  # no form opened
    s.close()


async def test_costs_renew_refused_to_a_viewer_says_why(demo_db):
    s, app = open_app(demo_db, role="viewer")
    async with app.run_test(size=SIZE) as pilot:
        await open_view(pilot, app, "costs", CostsScreen)
        await until(pilot, lambda: table(app, "#expiring").row_count == 40)
        await pilot.press("n")
        await until(pilot, lambda: any("needs role operator" in n for n in notices(app)))
        assert "Renew prepaid hosts?" not in screen_text(app)
    s.close()


# --- snapshots at 80x24 -----------------------------------------------------------------------


def _freeze_real_time() -> None:
    """Entries written now carry the wall clock and this machine's name; the snapshots show fixed
    ones instead (and the audit log is chained again over them: the view says whether it is whole)."""
    AuditRow.update(real_t=FROZEN_REAL, host="jump-1").execute()
    chain_audit(AuditRow._meta.database)
    EcsOrderRow.update(real_created=FROZEN_REAL).execute()


def test_ecs_at_80x24(demo_db, snap_compare, utc):
    s, app = open_app(demo_db)
    place_order(s, count=60)
    place_order(s, sid=104, count=8, pool="shared")
    _freeze_real_time()

    async def loaded(pilot):
        await open_view(pilot, app, "ecs", EcsScreen)
        await until(pilot, lambda: table(app).row_count == 2 and "order 2:" in screen_text(app))

    assert snap_compare(app, terminal_size=SIZE, run_before=loaded)
    s.close()


def test_costs_at_80x24(demo_db, snap_compare):
    s, app = open_app(demo_db)

    async def loaded(pilot):
        await open_view(pilot, app, "costs", CostsScreen)
        await until(pilot, lambda: table(app, "#expiring").row_count == 40 and table(app, "#breakdown").row_count)

    assert snap_compare(app, terminal_size=SIZE, run_before=loaded)
    s.close()


def test_audit_at_80x24(demo_db, snap_compare, utc):
    s, app = open_app(demo_db)
    place_order(s, count=60)
    s.cockpit.order_hosts(101, 5, "nope")  # failed
    s.cockpit.pause_order(1)
    _freeze_real_time()

    async def loaded(pilot):
        await open_view(pilot, app, "audit", AuditScreen)
        await until(pilot, lambda: table(app).row_count == 3 and "#3 ecs.pause" in screen_text(app))

    assert snap_compare(app, terminal_size=SIZE, run_before=loaded)
    s.close()
