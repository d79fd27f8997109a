"""The tabs of a view (`]` and `[` switch them): Textual's TabbedContent, safe while it mounts.

A widget in a pane that takes the focus makes TabbedContent switch to that pane's tab. When the
view was opened by keys typed in one burst on a busy machine, the focus can land (the view's
auto-focus) before the tab bar has mounted its tabs; Textual then switched to a tab that was not
there yet and raised, ending the app. Here the switch waits until the tab is there."""

from __future__ import annotations

from textual.css.query import NoMatches
from textual.widgets import TabbedContent, TabPane


class ViewTabs(TabbedContent):
    def _on_tab_pane_focused(self, event: TabPane.Focused) -> None:
        event.stop()
        event.prevent_default()  # instead of TabbedContent's own switch, not as well as it
        if event.tab_pane.id is not None:
            self._switch_when_there(event.tab_pane.id)

    def _switch_when_there(self, pane: str, tries: int = 50) -> None:
        """Now if the pane's tab is there, else look again in 20 ms, for up to a second."""
        try:
            self.get_tab(pane)
        except NoMatches:
            if tries and self.is_attached:
                self.set_timer(0.02, lambda: self._switch_when_there(pane, tries - 1))
            return
        self.active = pane
