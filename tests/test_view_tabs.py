"""A view's tabs while they mount: focus that lands in a pane before its tab is there (a view
opened by keys typed in one burst, on a busy machine) switches to that tab once it is there,
rather than ending the app, as Textual's TabbedContent alone does."""

from __future__ import annotations

import pytest
from textual.app import App, ComposeResult
from textual.widgets import Label, TabbedContent, TabPane

from cockpit.widgets.view_tabs import ViewTabs


def _app(kind: type[TabbedContent]) -> App:
    class Tabs(App):
        def compose(self) -> ComposeResult:
            with kind(id="tabs"):
                with TabPane("A", id="a"):
                    yield Label("a")
                with TabPane("B", id="b"):
                    yield Label("b")

    return Tabs()


async def test_focus_in_a_pane_whose_tab_is_not_there_yet_switches_once_it_is():
    app = _app(ViewTabs)
    async with app.run_test() as pilot:
        tabs = app.query_one(ViewTabs)
        late = TabPane("C", Label("c"), id="c")
        tabs.post_message(TabPane.Focused(late))  # its tab is not there yet
        await pilot.pause(0.1)
        assert tabs.active == "a"
        await tabs.add_pane(late)
        await pilot.pause(0.1)
        assert tabs.active == "c"
        tabs.post_message(TabPane.Focused(tabs.get_pane("b")))  # a tab that is there: at once
        await pilot.pause(0.1)
        assert tabs.active == "b"


async def test_textuals_own_tabbed_content_ends_the_app_there():
    app = _app(TabbedContent)
    with pytest.raises(ValueError, match="No Tab with id"):
        async with app.run_test() as pilot:
            app.query_one(TabbedContent).post_message(TabPane.Focused(TabPane("C", id="c")))
            await pilot.pause(0.1)
