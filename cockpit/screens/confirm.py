"""Asking before a change to the platform: `y` or Enter on Yes goes ahead, anything else backs out.

The question stays on top and the answers at the bottom, always in view; a long summary wraps
and scrolls between them. It answers once; keys typed after the answer go to the screen then on
top (cockpit.screens.dialog).
"""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.widgets import Button, Static

from cockpit.screens.dialog import AnswerButton, Dialog


class ConfirmScreen(Dialog[bool]):
    CSS_PATH = "confirm.tcss"
    BINDINGS = [
        Binding("y", "answer(True)", "Yes", show=False),
        Binding("n,escape", "answer(False)", "No", show=False),
    ]

    def __init__(self, title: str, body: str):
        super().__init__()
        self._title = title
        self._body = body

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="dialog"):
            yield Static(Text(self._title, style="bold"), id="title")
            with Horizontal(id="buttons"):
                yield AnswerButton("No (n)", id="no", compact=True)
                yield AnswerButton("Yes, do it (y)", id="yes", variant="warning", compact=True)
            yield Static(Text(self._body), id="body")

    def on_mount(self) -> None:
        self.set_focus(self.query_one("#no", Button))

    def button_answer(self, button_id: str) -> bool:
        return button_id == "yes"

    def action_answer(self, yes: bool) -> None:
        self.answer(yes)
