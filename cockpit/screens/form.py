"""A small modal form: labelled inputs, Enter or the button to submit, Esc to back out."""

from __future__ import annotations

from dataclasses import dataclass

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.suggester import SuggestFromList
from textual.widgets import Button, Input, Label, Static


@dataclass(frozen=True)
class Field:
    id: str
    label: str
    value: str = ""
    suggestions: tuple[str, ...] = ()
    placeholder: str = ""


class FormScreen(ModalScreen[dict | None]):
    BINDINGS = [Binding("escape", "cancel", "Cancel", show=False)]
    DEFAULT_CSS = """
    FormScreen { align: center middle; }
    FormScreen > Vertical { width: 66; height: auto; border: thick $accent; background: $surface; padding: 1 2; }
    FormScreen Input { margin-bottom: 1; }
    FormScreen Horizontal { height: auto; align: center middle; }
    FormScreen Button { margin: 0 2; }
    """

    def __init__(self, title: str, fields: list[Field], submit: str = "OK", note: str = ""):
        super().__init__()
        self._title = title
        self._fields = fields
        self._submit = submit
        self._note = note

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(f"[b]{self._title}[/b]")
            if self._note:
                yield Static(self._note)
            for f in self._fields:
                yield Label(f.label)
                yield Input(f.value, id=f.id, placeholder=f.placeholder,
                            suggester=SuggestFromList(f.suggestions, case_sensitive=False) if f.suggestions else None)
            with Horizontal():
                yield Button("Cancel", id="cancel")
                yield Button(self._submit, id="submit", variant="primary")

    def _values(self) -> dict:
        return {f.id: self.query_one(f"#{f.id}", Input).value.strip() for f in self._fields}

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.dismiss(self._values())

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(self._values() if event.button.id == "submit" else None)

    def action_cancel(self) -> None:
        self.dismiss(None)
