"""`:audit`: explicit filters by user, action and outcome (keys for the selected entry's, a small
form), asked of the store so they reach past the entries held; and the chain's state beside them,
walked off the event loop."""

from __future__ import annotations

from textual.widgets import Input

from cockpit.engine import journal
from cockpit.screens.audit import KEEP, AuditScreen
from cockpit.screens.form import FormScreen
from cockpit.store.models import AuditRow
from tests.screen_text import screen_text
from tests.test_tui import SIZE, open_app, until


def entry(user: str, action: str, outcome: str, target: str = "t") -> None:
    journal.audit(user=user, role="operator", action=action, target=target, details={}, outcome=outcome,
                  platform_t=None)


def rows(app) -> list[str]:
    return app.screen.query_one("#audit").row_keys


def summary(app) -> str:
    return str(app.screen.query_one("#summary").render())


async def open_audit(pilot, app, n: int) -> None:
    await pilot.press("colon", *"audit", "enter")
    await until(pilot, lambda: isinstance(app.screen, AuditScreen) and len(rows(app)) == n)


def some_entries() -> None:
    entry("alice", "pool.move", "done")  # 1
    entry("bob", "flow.start", "done")  # 2
    entry("bob", "flow.stop", "refused")  # 3
    entry("carol", "host.release", "failed")  # 4
    entry("alice", "flow.start", "refused")  # 5


async def test_keys_keep_to_the_selected_entry_s_user_action_or_outcome(demo_db):
    s, app = open_app(demo_db)
    some_entries()
    async with app.run_test(size=SIZE) as pilot:
        await open_audit(pilot, app, 5)
        assert "every entry" in summary(app)
        app.screen.query_one("#audit").move_to_key("3")  # bob, flow.stop, refused
        await pilot.press("u")
        await until(pilot, lambda: rows(app) == ["3", "2"])
        assert "only user=bob" in summary(app)
        await pilot.press("o")  # and its outcome
        await until(pilot, lambda: rows(app) == ["3"])
        assert "only user=bob, outcome=refused" in summary(app)
        await pilot.press("u")  # again: any user
        await until(pilot, lambda: rows(app) == ["5", "3"])
        await pilot.press("escape")  # esc clears the filters before it leaves the view
        await until(pilot, lambda: len(rows(app)) == 5)
        assert isinstance(app.screen, AuditScreen)
        entry("bob", "flow.pause", "done")  # new entries come in
        await until(pilot, lambda: rows(app)[:1] == ["6"])
        app.screen.query_one("#audit").move_to_key("6")
        await pilot.press("a")
        await until(pilot, lambda: rows(app) == ["6"])
    s.close()


async def test_the_filter_form_takes_a_user_an_action_prefix_and_an_outcome(demo_db):
    s, app = open_app(demo_db, role="viewer")  # filtering changes nothing: a viewer may
    some_entries()
    async with app.run_test(size=SIZE) as pilot:
        await open_audit(pilot, app, 5)
        await pilot.press("f")
        await until(pilot, lambda: isinstance(app.screen, FormScreen))
        assert "Filter the audit log" in screen_text(app)
        app.screen.query_one("#action", Input).value = "flow.*"
        app.screen.query_one("#outcome", Input).value = "ref"  # a choice's start: the choice
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, AuditScreen) and rows(app) == ["5", "3"])
        assert "only action=flow.*, outcome=refused" in summary(app)
        await pilot.press("f")
        await until(pilot, lambda: isinstance(app.screen, FormScreen))
        assert app.screen.query_one("#action", Input).value == "flow.*"  # the form holds the filters in force
        app.screen.query_one("#action", Input).value = ""
        app.screen.query_one("#outcome", Input).value = ""
        app.screen.query_one("#user", Input).value = "nobody-here"
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, AuditScreen) and rows(app) == [])
        assert "No entry matches the filter." in screen_text(app)
    s.close()


async def test_a_filter_reaches_entries_older_than_those_the_view_holds(demo_db):
    s, app = open_app(demo_db)
    entry("dave", "host.release", "done")  # the oldest
    db = AuditRow._meta.database
    with db.atomic():
        for i in range(KEEP + 5):
            entry("alice", "pool.move", "done", target=str(i))
    async with app.run_test(size=SIZE) as pilot:
        await open_audit(pilot, app, KEEP)
        assert "1" not in rows(app)
        app.screen.set_filter(type(app.screen.where)(user="dave"))
        await until(pilot, lambda: rows(app) == ["1"])
        await until(pilot, lambda: f"chain whole ({KEEP + 6:,} entries)" in summary(app))
    s.close()


async def test_the_summary_says_whether_the_chain_is_whole_and_where_it_breaks(demo_db):
    s, app = open_app(demo_db)
    some_entries()
    AuditRow.update(details={"count": 999}).where(AuditRow.id == 4).execute()
    async with app.run_test(size=SIZE) as pilot:
        await open_audit(pilot, app, 5)
        await until(pilot, lambda: "chain BROKEN at entry 4: its hash does not match its fields" in summary(app))
        assert "chain BROKEN at entry 4" in screen_text(app)
    s.close()
    s, app = open_app(demo_db)
    AuditRow.delete().where(AuditRow.id == 4).execute()
    async with app.run_test(size=SIZE) as pilot:
        await open_audit(pilot, app, 4)
        await until(pilot, lambda: "chain BROKEN at entry 5: its prev_hash is not entry 3's hash" in summary(app))
    s.close()


async def test_the_chain_is_followed_as_entries_come_in(demo_db):
    s, app = open_app(demo_db)
    some_entries()
    async with app.run_test(size=SIZE) as pilot:
        await open_audit(pilot, app, 5)
        await until(pilot, lambda: "chain whole (5 entries)" in summary(app))
        entry("erin", "sim.pause", "done")
        await until(pilot, lambda: "chain whole (6 entries)" in summary(app))
    s.close()


def test_every_key_of_the_view_is_described_and_changes_nothing():
    for b in AuditScreen.BINDINGS:
        assert b.description and b.id and b.id.startswith("audit."), b
    assert AuditScreen.ACTION_IDS == {}  # no key of :audit is a platform action: nothing to gate
