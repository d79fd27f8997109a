"""The `:` prompt: type a view's name (or an alias), Enter to go, Esc to stay.

The grey suggestion is what Enter takes ("e" is the alias of events, so it suggests nothing;
"ec" suggests ecs). Keys typed before the prompt has drawn its field still go into it.
"""

from __future__ import annotations

from textual import events
from textual.app import ComposeResult
from textual.binding import Binding
from textual.css.query import NoMatches
from textual.screen import ModalScreen

from cockpit.screens import view_class
from cockpit.widgets.form_fields import ChoiceInput


class CommandPrompt(ModalScreen[str | None]):
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

    def on_key(self, event: events.Key) -> None:
        """A key that reached the prompt before its field had the focus: into the field."""
        if self.focused is not None or not (event.is_printable or event.key == "enter"):
            return
        try:
            field = self.query_one("#command", ChoiceInput)
        except NoMatches:
            return
        event.stop()
        event.prevent_default()
        self.set_focus(field)
        field.post_message(events.Key(event.key, event.character))

    def on_input_submitted(self, event: ChoiceInput.Submitted) -> None:
        event.stop()
        self.dismiss(event.value.strip().lstrip(":") or None)

    def action_cancel(self) -> None:
        self.dismiss(None)
