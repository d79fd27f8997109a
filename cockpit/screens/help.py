"""`?`: the keys that work here, with their binding ids for remapping in the config."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from cockpit.screens.base import ViewScreen


def _key_label(key: str) -> str:
    names = {"colon": ":", "slash": "/", "question_mark": "?", "escape": "esc", "space": "space",
             "plus": "+", "minus": "-", "equals_sign": "="}
    return names.get(key, key)


class HelpScreen(ModalScreen[None]):
    BINDINGS = [
        Binding("escape,question_mark,q", "dismiss_help", "Close", show=False),
    ]
    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    HelpScreen VerticalScroll { width: 78; max-height: 22; border: round $accent; padding: 0 1; background: $surface; }
    """

    def __init__(self, view: ViewScreen | None, views: list[tuple[str, str]]):
        super().__init__()
        self._view = view
        self._views = views

    def compose(self) -> ComposeResult:
        text = Text()
        if self._view is not None:
            text.append(f"{self._view.VIEW}", "bold")
            text.append(f": {self._view.HELP}\n\n")
            rows: dict[str, tuple[list[str], str]] = {}
            for key, active in self._view.active_bindings.items():
                b = active.binding
                if not b.id:  # the widgets' own keys (arrows, paging) are not ours to list
                    continue
                ident = b.id or b.action
                keys, desc = rows.setdefault(ident, ([], b.description or b.action))
                keys.append(_key_label(key))
                if not active.enabled:
                    rows[ident] = (keys, desc + " (not allowed)")
            for ident, (keys, desc) in sorted(rows.items(), key=lambda kv: kv[0]):
                text.append(f"{','.join(keys):>12}  ", "bold cyan")
                text.append(f"{desc:<24}")
                text.append(f" {ident}\n", "dim")
        text.append(f"{'ctrl+p':>12}  ", "bold cyan")
        text.append("Command palette\n")
        text.append("\nViews (type : then a name)\n", "bold")
        for name, help_text in self._views:
            text.append(f"{':' + name:>12}  ", "bold cyan")
            text.append(f"{help_text}\n")
        text.append("\nRemap a key in the config: keys: {binding-id: \"keys\"}", "dim")
        with VerticalScroll():
            yield Static(text)

    def action_dismiss_help(self) -> None:
        self.dismiss(None)
