"""The `/` filter: an input under the table; every word must appear in a row for it to stay."""

from __future__ import annotations

from textual.message import Message
from textual.widgets import Input


def matches(query: str, haystack: str) -> bool:
    """Every whitespace-separated word of the query occurs in the row's text (case-insensitive)."""
    words = query.lower().split()
    text = haystack.lower()
    return all(w in text for w in words)


class FilterBar(Input):

    class Query(Message):
        def __init__(self, query: str):
            super().__init__()
            self.query = query

    def __init__(self) -> None:
        super().__init__(placeholder="filter: words that must all appear (esc clears)", id="filter")

    def open(self) -> None:
        """Show the bar and give it the focus now, not after a refresh: the keys typed right after
        `/` (in the same burst over a slow link) are handed on as the app reads them, and must
        come here rather than to the table."""
        self.add_class("-shown")
        self.screen.set_focus(self, scroll_visible=False)

    def close(self, clear: bool) -> None:
        if clear and self.value:
            self.value = ""
        if not self.value:
            self.remove_class("-shown")

    def on_input_changed(self, event: Input.Changed) -> None:
        event.stop()
        self.post_message(self.Query(event.value))

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.close(clear=False)
        getattr(self.screen, "refocus", self.screen.focus_next)()
