"""The `:` prompt: type a view's name (or an alias), Enter to go, Esc to stay."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import ModalScreen
from textual.suggester import SuggestFromList
from textual.widgets import Input


class CommandPrompt(ModalScreen[str | None]):
    BINDINGS = [Binding("escape", "cancel", "Cancel", show=False)]
    DEFAULT_CSS = """
    CommandPrompt { align: left bottom; background: $background 30%; }
    CommandPrompt Input { width: 100%; margin: 0 0 1 0; border: tall $accent; }
    """

    def __init__(self, names: list[str]):
        super().__init__()
        self._names = names

    def compose(self) -> ComposeResult:
        yield Input(
            placeholder="view: " + " ".join(self._names),
            suggester=SuggestFromList(self._names, case_sensitive=False),
            id="command",
        )

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.dismiss(event.value.strip().lstrip(":") or None)

    def action_cancel(self) -> None:
        self.dismiss(None)
