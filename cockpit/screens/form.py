"""A small modal form: labelled inputs, Enter or the button to submit, Esc to back out.

It fits the terminal: the title stays on top and the buttons at the bottom, always in view,
while the note and the fields between them scroll when there are more than the screen holds.
Long labels and notes wrap rather than being cut.
"""

from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Static

from cockpit.widgets.form_fields import ChoiceInput, FieldInput, FieldScroll


@dataclass(frozen=True)
class Field:
    id: str
    label: str
    value: str = ""
    suggestions: tuple[str, ...] = ()  # the choices: Enter or leaving the field takes the one shown
    placeholder: str = ""


class FormScreen(ModalScreen[dict | None]):
    CSS_PATH = "form.tcss"
    BINDINGS = [Binding("escape", "cancel", "Cancel", show=False)]

    def __init__(self, title: str, fields: list[Field], submit: str = "OK", note: str = ""):
        super().__init__()
        self._title = title
        self._fields = fields
        self._submit = submit
        self._note = note

    def compose(self) -> ComposeResult:
        with FieldScroll(id="dialog"):
            yield Static(Text(self._title, style="bold"), id="title")
            with Horizontal(id="buttons"):
                yield Button("Cancel (esc)", id="cancel", compact=True)
                yield Button(self._submit, id="submit", variant="primary", compact=True)
            if self._note:
                yield Static(Text(self._note), id="note")
            for f in self._fields:
                yield Label(Text(f.label), classes="label")
                if f.suggestions:
                    yield ChoiceInput(f.value, f.suggestions, id=f.id, placeholder=f.placeholder, compact=True)
                else:
                    yield FieldInput(f.value, id=f.id, placeholder=f.placeholder, compact=True)

    def on_mount(self) -> None:
        first = self.query(Input).first() if self._fields else self.query_one("#submit", Button)
        self.set_focus(first, scroll_visible=False)  # before the layout: it would scroll too far
        self.call_after_refresh(first.scroll_visible, animate=False)

    def _values(self, submitted: Input.Submitted | None = None) -> dict:
        """The fields' values; the one Enter was pressed in as it was then (keys typed after it
        in a burst are not part of the answer)."""
        for i in self.query(ChoiceInput):
            i.accept()  # what the field shows is what is submitted
        values = {f.id: self.query_one(f"#{f.id}", Input).value for f in self._fields}
        if submitted is not None and submitted.input.id in values:
            values[submitted.input.id] = submitted.value
        return {k: v.strip() for k, v in values.items()}

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.dismiss(self._values(event))

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(self._values() if event.button.id == "submit" else None)

    def action_cancel(self) -> None:
        self.dismiss(None)
