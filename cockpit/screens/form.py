"""A small modal form: labelled inputs, Enter or the button to submit, Esc to back out.

It fits the terminal: the title stays on top and the buttons at the bottom, always in view,
while the note and the fields between them scroll when there are more than the screen holds.
Long labels and notes wrap rather than being cut. It answers once, at Enter or a press of a
button; keys typed after that go to the screen then on top (cockpit.screens.dialog).
"""

from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.widgets import Button, Input, Label, Static

from cockpit.screens.dialog import AnswerButton, Dialog
from cockpit.widgets.form_fields import ChoiceInput, FieldInput, FieldScroll


@dataclass(frozen=True)
class Field:
    id: str
    label: str
    value: str = ""
    suggestions: tuple[str, ...] = ()  # the choices: Enter or leaving the field takes the one shown
    placeholder: str = ""


class FormScreen(Dialog[dict | None]):
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
                yield AnswerButton("Cancel (esc)", id="cancel", compact=True)
                yield AnswerButton(self._submit, id="submit", variant="primary", compact=True)
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

    def _values(self) -> dict:
        """The fields' values, as the fields show them (a choice field's suggestion taken)."""
        for i in self.query(ChoiceInput):
            i.accept()
        return {f.id: self.query_one(f"#{f.id}", Input).value.strip() for f in self._fields}

    def submit_field(self, field: Input) -> None:
        self.answer(self._values())

    def button_answer(self, button_id: str) -> dict | None:
        return self._values() if button_id == "submit" else None

    def action_cancel(self) -> None:
        self.answer(None)
