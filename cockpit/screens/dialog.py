"""What the dialogs (the `:` prompt, a form, a confirmation, the help) share: they answer once, and
keys typed quickly around them land where the user meant them.

Over a slow SSH link many keys arrive at once, and the app hands each one to the widget that has
the focus as it reads it, before the first has acted. So keys typed right after the one that
answers a dialog (`:hosts⏎⏎`, `:ev⏎abc`) reach the dialog after it has gone: they would answer it
a second time (and close the view under it) or be typed into a field no one reads. Here they go on
to the screen then on top, in the order typed. Keys that reach a dialog before its field has the
focus go into that field.
"""

from __future__ import annotations

from typing import Any, TypeVar

from textual import events
from textual.app import App
from textual.screen import ModalScreen
from textual.widgets import Button, Input

from cockpit.widgets.form_fields import FieldInput

Result = TypeVar("Result")


def pass_on(app: App, event: events.Key) -> None:
    """Hand a key to the screen now on top, as if it were typed now. It waits for what is already
    due to run (the dialog's answer, which may open a view) and goes before keys typed later."""
    event.stop()
    event.prevent_default()
    app.call_next(app.on_event, events.Key(event.key, event.character))


class Dialog(ModalScreen[Result]):
    """A modal that answers once; subclasses answer with `answer(result)`."""

    def __init__(self) -> None:
        super().__init__()
        self.answered = False

    def answer(self, result: Any) -> None:
        """Close with `result`, the first time only: a second Enter or click in the same burst
        must not close the screen under the dialog."""
        if self.answered:
            return
        self.answered = True
        self.dismiss(result)

    def button_answer(self, button_id: str) -> Any:
        """What pressing the button with this id answers (None: closed without an answer)."""
        return None

    def hand_on(self, event: events.Key) -> bool:
        """After the answer, a key that reaches the dialog goes to the screen then on top."""
        if not self.answered:
            return False
        pass_on(self.app, event)
        return True

    def typing_field(self) -> Input | None:
        """The field keys typed into the dialog go to: the one with the focus, else the first."""
        if isinstance(self.focused, Input):
            return self.focused
        if self.focused is None:
            fields = self.query(FieldInput)
            return fields.first() if fields else None
        return None  # a button or the scroll has it: the key came from it (its bindings act)

    def on_key(self, event: events.Key) -> None:
        """A key that reached the dialog itself: after the answer, to the screen on top; before a
        field has the focus (the dialog is still opening), into the field. A field takes its own
        characters and editing keys, so one of those here was never seen by a field."""
        if self.hand_on(event):
            return
        if not (event.is_printable or event.key in FieldInput.EDITING_KEYS):
            return
        field = self.typing_field()
        if field is None:
            return
        event.stop()
        event.prevent_default()
        self.set_focus(field, scroll_visible=False)  # at once: the keys after this one go to it
        field.post_message(events.Key(event.key, event.character))


class AnswerButton(Button):
    """A dialog's button: a press answers at once, not through a message that would arrive after
    keys typed later (`enter` on No then `y` must not answer Yes)."""

    def press(self) -> AnswerButton:
        if self.disabled or not self.display:
            return self
        super().press()  # looks pressed; its Pressed message finds the dialog answered
        dialog = self.screen
        if isinstance(dialog, Dialog) and self.id is not None:
            dialog.answer(dialog.button_answer(self.id))
        return self
