"""The screen as plain text, for asserting what a user sees."""

from __future__ import annotations

from textual.app import App


def screen_text(app: App) -> str:
    strips = app.screen._compositor.render_strips()
    return "\n".join(strip.text.rstrip() for strip in strips)


def notices(app: App) -> list[str]:
    """Messages the app has shown with notify() (toasts are not drawn under run_test)."""
    return [n.message for n in app._notifications]


def table(app: App, table_id: str):
    """The live table with this id on the screen on top."""
    from cockpit.widgets.live_table import LiveTable

    return app.screen.query_one(f"#{table_id}", LiveTable)


def keys(app: App, table_id: str) -> list[str]:
    return table(app, table_id).row_keys


def cell(app: App, table_id: str, key: str, column: str) -> str:
    """One cell of a row as plain text ("" when the row is not there)."""
    t = table(app, table_id)
    cells = t.cells(key)
    if cells is None:
        return ""
    value = cells[[c.key for c in t.columns].index(column)]
    return value.plain if hasattr(value, "plain") else str(value)
