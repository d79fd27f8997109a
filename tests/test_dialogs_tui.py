"""The dialogs (a form, a confirmation, the `:` prompt) and the help page, at 80x24 and 60x20:
they fit, scroll when they cannot, keep their buttons in reach, wrap long text, and take keys
typed quickly where they were typed."""

from __future__ import annotations

import pytest
from rich.console import Console
from textual.widgets import Button, Input

from cockpit.screens.confirm import ConfirmScreen
from cockpit.screens.dashboard import DashboardScreen
from cockpit.screens.ecs import EcsScreen
from cockpit.screens.events import EventsScreen
from cockpit.screens.form import Field, FormScreen
from cockpit.screens.help import HelpScreen
from cockpit.screens.hosts import HostsScreen
from cockpit.screens.plan import PlanScreen
from tests.screen_text import screen_text
from tests.test_plan_tui import burst
from tests.test_tui import SIZE, open_app, table_keys, until

SMALL = (60, 20)
MANY = [Field(f"f{i}", f"Field number {i}, with a label long enough to need wrapping at sixty columns", str(i))
        for i in range(10)] + [Field("pool", "Pool", "", ("feed-web", "user-web", "shared"))]
LONG_NOTE = "This note is long: " + " ".join(f"word{i}" for i in range(60)) + " THE-END"


@pytest.fixture(autouse=True)
def _fixed_user(monkeypatch):
    monkeypatch.setenv("USER", "sre")


def inside(widget, size: tuple[int, int]) -> bool:
    r = widget.region
    return r.width > 0 and r.height > 0 and r.x >= 0 and r.y >= 0 and r.right <= size[0] and r.bottom <= size[1]


async def _form(pilot, app, fields=MANY, note=LONG_NOTE) -> list:
    answers = []
    await until(pilot, lambda: table_keys(app))
    app.push_screen(FormScreen("Move hosts between pools, a title long enough to wrap", fields,
                               submit="Move…", note=note), callback=answers.append)
    await until(pilot, lambda: isinstance(app.screen, FormScreen) and app.focused is not None)
    await pilot.pause(0.1)
    return answers


@pytest.mark.parametrize("size", [SIZE, SMALL])
async def test_a_form_too_tall_for_the_screen_scrolls_with_its_buttons_in_view(demo_db, size):
    s, app = open_app(demo_db)
    async with app.run_test(size=size) as pilot:
        answers = await _form(pilot, app)
        dialog = app.screen.query_one("#dialog")
        assert inside(dialog, size) and dialog.max_scroll_y > 0
        for _ in MANY:  # tab through every field: each comes into view, the buttons stay
            assert inside(app.focused, size) and dialog.region.contains_region(app.focused.region)
            assert all(inside(b, size) for b in app.screen.query(Button))
            await pilot.press("tab")
        await pilot.pause(0.1)
        text = screen_text(app)
        assert "Cancel (esc)" in text and "Move…" in text
        await pilot.click("#submit")
        await until(pilot, lambda: answers)
    assert answers[0]["f9"] == "9" and answers[0]["pool"] == ""
    s.close()


async def test_a_forms_long_note_and_labels_wrap_instead_of_being_cut(demo_db):
    s, app = open_app(demo_db)
    async with app.run_test(size=SMALL) as pilot:
        await _form(pilot, app, fields=MANY[:1])
        text = screen_text(app)
        assert "This note is long" in text and "THE-END" in text  # the note, wrapped, end to end
        assert "Field number 0, with a label" in text and "sixty columns" in text  # the label too
    s.close()


async def test_the_ecs_order_dialog_fits_80x24(demo_db):
    s, app = open_app(demo_db)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: table_keys(app))
        await pilot.press("colon", *"ecs", "enter")
        await until(pilot, lambda: isinstance(app.screen, EcsScreen))
        await app.screen.run_action("order")
        await until(pilot, lambda: isinstance(app.screen, FormScreen))
        await pilot.pause(0.1)
        for button in app.screen.query(Button):
            assert inside(button, SIZE), button.id
        assert "Order…" in screen_text(app) and "Cancel" in screen_text(app)
    s.close()


async def test_enter_in_a_form_takes_the_suggestion_shown(demo_db):
    s, app = open_app(demo_db)
    async with app.run_test(size=SIZE) as pilot:
        answers = await _form(pilot, app, fields=[Field("pool", "Pool", "", ("feed-web", "user-web", "shared"))],
                              note="")
        await pilot.press(*"us")
        await until(pilot, lambda: "user-web" in screen_text(app))
        await pilot.press("enter")
        await until(pilot, lambda: answers)
    assert answers == [{"pool": "user-web"}]
    s.close()


async def test_keys_typed_quickly_in_a_form_land_in_their_fields(demo_db):
    s, app = open_app(demo_db)
    async with app.run_test(size=SIZE) as pilot:
        answers = await _form(pilot, app, fields=MANY[:3], note="")
        burst(app, [*"alpha", "tab", "backspace", *"beta", "tab", *"gamma", "enter", *"late"])
        await until(pilot, lambda: answers)
    assert answers == [{"f0": "alpha", "f1": "beta", "f2": "gamma"}]
    s.close()


async def test_esc_cancels_a_form(demo_db):
    s, app = open_app(demo_db)
    async with app.run_test(size=SIZE) as pilot:
        answers = await _form(pilot, app, fields=MANY[:2], note="")
        await pilot.press("escape")
        await until(pilot, lambda: answers)
        assert answers == [None] and isinstance(app.screen, DashboardScreen)
    s.close()


@pytest.mark.parametrize("size", [SIZE, SMALL])
async def test_a_long_confirmation_wraps_and_scrolls_with_the_answers_in_view(demo_db, size):
    s, app = open_app(demo_db)
    async with app.run_test(size=size) as pilot:
        await until(pilot, lambda: table_keys(app))
        answers = []
        body = "\n".join(f"line {i}: start this and that on host {i}, which takes a long sentence to say" for i in range(30))
        app.push_screen(ConfirmScreen("Scale: apply a plan?", body + "\nTHE-END"), callback=answers.append)
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.pause(0.1)
        assert all(inside(b, size) for b in app.screen.query(Button))
        assert "Scale: apply a plan?" in screen_text(app) and "No (n)" in screen_text(app)
        app.screen.query_one("#dialog").scroll_end(animate=False)
        await until(pilot, lambda: "THE-END" in screen_text(app))
        assert "Yes, do it (y)" in screen_text(app)
        await pilot.press("y")
        await until(pilot, lambda: answers == [True])
    s.close()


def prompt_line(app) -> str:
    """What the `:` prompt shows in its field (what was typed and the suggestion after it)."""
    line = [line for line in screen_text(app).splitlines() if "▊" in line][1]  # between its borders
    return line.split("▊", 1)[1].split("▎", 1)[0].strip()


async def test_the_colon_prompt_goes_where_its_suggestion_says(demo_db):
    s, app = open_app(demo_db)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: table_keys(app))
        await pilot.press("colon", "e")  # "e" is the alias of events: no suggestion of ecs
        await pilot.pause(0.2)
        assert prompt_line(app) == "e"
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, EventsScreen))
        await pilot.press("colon", *"ec")
        await until(pilot, lambda: prompt_line(app) == "ecs")  # the suggestion, shown
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, EcsScreen))
    s.close()


async def test_keys_typed_as_the_prompt_opens_land_in_it(demo_db):
    s, app = open_app(demo_db)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: table_keys(app))
        app.action_goto()
        burst(app, [*"hosts", "enter"])  # before the prompt has drawn its field
        await until(pilot, lambda: isinstance(app.screen, HostsScreen))
    s.close()


def _help_text(app) -> str:
    """The whole help page as text, as wide as the screen shows it (it scrolls on screen)."""
    content = app.screen.query_one("#content")
    console = Console(width=content.size.width, record=True, file=open("/dev/null", "w"))
    console.print(content.content)
    return console.export_text()


async def _help(pilot, app, view: str | None = None):
    await until(pilot, lambda: table_keys(app))
    if view:
        await pilot.press("colon", *view, "enter")
        await until(pilot, lambda: app.screen.VIEW == view)
        await pilot.pause(0.2)
        await pilot.press("escape")  # from the plan's form: to its results, where ? is a key
    await pilot.press("question_mark")
    await until(pilot, lambda: isinstance(app.screen, HelpScreen))
    await pilot.pause(0.1)


@pytest.mark.parametrize("size", [SIZE, SMALL])
async def test_the_help_fits_and_scrolls_to_every_view(demo_db, size):
    s, app = open_app(demo_db)
    async with app.run_test(size=size) as pilot:
        await _help(pilot, app)
        frame = app.screen.query_one("#help")
        assert inside(frame, size)
        lines = screen_text(app).splitlines()
        assert "╭" in lines[0] and "╰" in lines[-1]  # the whole frame, top and bottom
        assert "esc ? q: close" in screen_text(app)
        await pilot.press("G")
        await until(pilot, lambda: ":audit" in screen_text(app) and "Remap a key" in screen_text(app))
        assert "esc ? q: close" in screen_text(app)  # the hint stays on top
        await pilot.press("g")
        await until(pilot, lambda: "dashboard: Per IDC" in screen_text(app))
        await pilot.press("j", "j", "k")
        assert frame.scroll_y == 1
        await pilot.press("escape")
        await until(pilot, lambda: isinstance(app.screen, DashboardScreen))
    s.close()


async def test_the_help_lists_every_key_with_its_binding_id(demo_db):
    s, app = open_app(demo_db)
    async with app.run_test(size=SIZE) as pilot:
        await _help(pilot, app, "plan")
        text = _help_text(app)
        for key, ident in [("c", "plan.compare"), ("a", "plan.apply"), ("x", "plan.export_json"),
                           ("Y", "plan.export_yaml"), ("e", "plan.edit"), ("↑, k", "table.up"),
                           ("↓, j", "table.down"), ("home, g", "table.first"), ("end, G", "table.last"),
                           ("y", "table.copy"), ("tab", "form.next"), ("shift+tab", "form.previous"),
                           (":", "goto"), ("/", "filter"), ("?", "help"), ("esc", "back"), ("]", "tab.next"),
                           ("[", "tab.previous"), ("q", "quit"), ("ctrl+p", "(fixed)")]:
            assert any(line.strip().startswith(key) and line.rstrip().endswith(ident) for line in text.splitlines()), \
                (key, ident)
        for name in ("dashboard", "hosts", "plan", "ecs", "costs", "events", "audit"):
            assert f":{name}" in text
        assert "not allowed" not in text
    s.close()


async def test_the_help_shows_remapped_keys(demo_db):
    s, app = open_app(demo_db, keys={"table.down": "n", "plan.export_yaml": "ctrl+y"})
    async with app.run_test(size=SIZE) as pilot:
        await _help(pilot, app, "plan")
        lines = _help_text(app).splitlines()
        assert any(line.strip().startswith("n ") and line.rstrip().endswith("table.down") for line in lines)
        assert any(line.strip().startswith("ctrl+y") and line.rstrip().endswith("plan.export_yaml") for line in lines)
    s.close()


@pytest.mark.parametrize(("cfg", "why"), [({"readonly": True}, "read-only mode"),
                                          ({"role": "viewer"}, "needs role operator; you are viewer")])
async def test_the_help_says_which_actions_are_refused_now_and_why(demo_db, cfg, why):
    s, app = open_app(demo_db, **cfg)
    async with app.run_test(size=SIZE) as pilot:
        await _help(pilot, app)
        text = " ".join(_help_text(app).split())
        for action in ("Faster clock", "Slower clock", "Pause clock", "Hot event…"):
            assert f"{action} ✗" in text
        assert "✗ not allowed now (" in text and why in text
    s.close()


def _blink_off(app) -> None:
    for i in app.screen.query(Input):
        i.cursor_blink = False


def test_the_help_on_the_dashboard_at_80x24(demo_db, snap_compare):
    s, app = open_app(demo_db)

    async def opened(pilot):
        await _help(pilot, app)

    assert snap_compare(app, terminal_size=SIZE, run_before=opened)
    s.close()


def test_the_help_on_the_dashboard_at_60x20(demo_db, snap_compare):
    s, app = open_app(demo_db)

    async def opened(pilot):
        await _help(pilot, app)

    assert snap_compare(app, terminal_size=SMALL, run_before=opened)
    s.close()


def test_a_form_with_many_fields_at_80x24(demo_db, snap_compare):
    s, app = open_app(demo_db)

    async def opened(pilot):
        await _form(pilot, app)
        _blink_off(app)

    assert snap_compare(app, terminal_size=SIZE, run_before=opened)
    s.close()


def test_a_confirmation_at_80x24(demo_db, snap_compare):
    s, app = open_app(demo_db)

    async def opened(pilot):
        await until(pilot, lambda: table_keys(app))
        await pilot.press("colon", *"plan", "enter")
        await until(pilot, lambda: isinstance(app.screen, PlanScreen) and app.focused is not None)
        await pilot.press("tab", *"3000", "tab", *"tucheng", "enter")
        await until(pilot, lambda: "→ placed" in screen_text(app))
        await pilot.press("a")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen))

    assert snap_compare(app, terminal_size=SIZE, run_before=opened)
    s.close()
