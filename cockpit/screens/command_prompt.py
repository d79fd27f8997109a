"""The `:` prompt: type a view's name (or an alias), Enter to go, Esc to stay.

The grey suggestion is what Enter takes ("e" is the alias of events, so it suggests nothing;
"ec" suggests ecs). Keys typed before the prompt has drawn its field still go into it; keys typed
after Enter go to the view it opens (cockpit.screens.dialog).
"""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import Input

from cockpit.screens import view_class
from cockpit.screens.dialog import Dialog
from cockpit.widgets.form_fields import ChoiceInput


class CommandPrompt(Dialog[str | None]):
    CSS_PATH = "command_prompt.tcss"
    AUTO_FOCUS = "#command"
    BINDINGS = [Binding("escape", "cancel", "Cancel", show=False)]

    def __init__(self, names: list[str]):
        super().__init__()
        self._names = names
        # names first, so a prefix suggests a view; then the aliases, so one typed in full stays
        self._choices = list(names) + [a for n in names for a in view_class(n).ALIASES]

    def compose(self) -> ComposeResult:
        yield ChoiceInput(
            "",
            self._choices,
            placeholder="view: " + " ".join(self._names),
            id="command",
        )

    def submit_field(self, field: Input) -> None:
        self.answer(field.value.strip().lstrip(":") or None)

    def action_cancel(self) -> None:
        self.answer(None)
