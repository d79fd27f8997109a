"""Form fields that never surprise.

- `ChoiceInput`: the grey suggestion it shows is exactly what Enter (or leaving the field) takes,
  computed the same way for both, so "b" showing "binpack" submits "binpack", never "b".
- `FieldInput`: its editing keys and Enter act in the order typed, even in a burst. In a dialog
  (cockpit.screens.dialog), Enter answers the dialog at once, and keys that reach the field after
  the answer go on to the screen then on top.
- `FieldRow` / `FieldScroll`: containers whose tab and shift+tab are priority keys. A priority key
  moves the focus as the app reads it, before the next key is handed to a widget; a plain tab
  moves it only when the field gets to it, so keys typed quickly after a tab would still land in
  the field being left.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from textual import events
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.suggester import Suggester
from textual.widgets import Input

FIELD_KEYS = [
    Binding("tab", "app.focus_next", "Next field", id="form.next", priority=True),
    Binding("shift+tab", "app.focus_previous", "Previous field", id="form.previous", show=False, priority=True),
]


def complete(value: str, choices: Sequence[str]) -> str:
    """The choice `value` stands for: itself when it is a choice (any case), else the first
    choice it begins (any case), else `value` unchanged."""
    if not value:
        return value
    low = value.casefold()
    for c in choices:
        if c.casefold() == low:
            return c
    for c in choices:
        if c.casefold().startswith(low):
            return c
    return value


class ChoiceSuggester(Suggester):
    """Suggests what `complete` would take, so the suggestion on screen never misleads."""

    def __init__(self, choices: Iterable[str]):
        super().__init__(use_cache=False, case_sensitive=True)
        self.choices = tuple(choices)

    async def get_suggestion(self, value: str) -> str | None:
        done = complete(value, self.choices)
        return done if done != value else None


def _editing_keys() -> dict[str, str]:
    """Input's own keys (backspace, arrows, Enter...) and the actions they run."""
    out = {}
    for b in Input.BINDINGS:
        if isinstance(b, Binding):
            for key in b.key.split(","):
                out[key.strip()] = b.action
    return out


class FieldInput(Input):
    """An input whose keys act in the order they were typed.

    Input's editing keys (backspace, the arrows, Enter) are bindings, and bindings run only once
    the key has bubbled up to the app; keys typed quickly after them (a burst over SSH) are
    already in the field by then: "42<Enter>9" would submit 429, "<backspace>42" would give 4.
    Here those keys act in turn with the characters typed."""

    EDITING_KEYS = _editing_keys()

    def dialog(self) -> Any | None:
        """The dialog the field is in (a screen with `submit_field` and `hand_on`), if any. Found
        through the field's ancestors: it may have left the screen stack already."""
        return next((n for n in self.ancestors_with_self if hasattr(n, "submit_field")), None)

    async def _on_key(self, event: events.Key) -> None:
        dialog = self.dialog()
        if dialog is not None and dialog.hand_on(event):
            return  # typed after the dialog answered: it went on to the screen now on top
        action = self.EDITING_KEYS.get(event.key)
        if action is None or event.is_printable:
            return  # Textual goes on to Input's own handler (it calls each class's in turn)
        event.stop()
        event.prevent_default()
        await self.run_action(action)

    async def action_submit(self) -> None:
        """Enter. In a dialog it answers now, with the fields as they are: the keys typed after
        Enter are not part of the answer (a Submitted message would arrive after them)."""
        dialog = self.dialog()
        if dialog is not None:
            dialog.submit_field(self)
            return
        await super().action_submit()


class ChoiceInput(FieldInput):
    """An input with a list of choices: Enter, or leaving the field, takes the suggestion shown."""

    def __init__(self, value: str = "", choices: Iterable[str] = (), **kwargs):
        self.choices: tuple[str, ...] = tuple(choices)
        super().__init__(value, suggester=ChoiceSuggester(self.choices), **kwargs)

    def set_choices(self, choices: Iterable[str]) -> None:
        self.choices = tuple(choices)
        self.suggester = ChoiceSuggester(self.choices)

    def accept(self) -> None:
        done = complete(self.value, self.choices)
        if done != self.value:
            self.value = done
            self.cursor_position = len(done)

    async def action_submit(self) -> None:
        self.accept()
        await super().action_submit()

    def on_blur(self, event: events.Blur) -> None:
        self.accept()


class FieldRow(Horizontal):
    """A row of labelled fields; tab moves on before the next key lands."""

    BINDINGS = FIELD_KEYS


class FieldScroll(VerticalScroll):
    """A column of labelled fields that scrolls when it cannot fit; tab as in FieldRow."""

    BINDINGS = FIELD_KEYS
