"""The table's movement keys for the panes that scroll (the describe pane, the heat map).

Every list moves with the same keys (arrows, j/k, pages, g/G, home/end): these are the table's
bindings, keys and ids alike, bound to scrolling. A remap of `table.down` in the config moves the
panes too, and the help lists them the same way.
"""

from __future__ import annotations

from textual.binding import Binding

from cockpit.widgets.live_table import LiveTable

# binding id -> (scroll action, description)
SCROLLS = {
    "table.up": ("scroll_up", "Scroll up"),
    "table.down": ("scroll_down", "Scroll down"),
    "table.page_up": ("page_up", "Page up"),
    "table.page_down": ("page_down", "Page down"),
    "table.first": ("scroll_home", "Top"),
    "table.last": ("scroll_end", "Bottom"),
}


def scroll_bindings() -> list[Binding]:
    """The table's movement bindings (its keys, its ids), scrolling instead of moving a cursor."""
    out = []
    for b in LiveTable.BINDINGS:
        if isinstance(b, Binding) and b.id in SCROLLS:
            action, description = SCROLLS[b.id]
            out.append(Binding(b.key, action, description, show=False, id=b.id))
    return out
