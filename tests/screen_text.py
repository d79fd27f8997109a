"""The screen as plain text, for asserting what a user sees."""

from __future__ import annotations

from textual.app import App


def screen_text(app: App) -> str:
    strips = app.screen._compositor.render_strips()
    return "\n".join(strip.text.rstrip() for strip in strips)


def notices(app: App) -> list[str]:
    """Messages the app has shown with notify() (toasts are not drawn under run_test)."""
    return [n.message for n in app._notifications]
