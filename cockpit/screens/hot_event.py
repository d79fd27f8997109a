"""Starting a simulated hot event: which services, how hard, how long."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Static

from cockpit.domain import World


HotEvent = tuple[list[str], float, int]  # services, traffic multiplier, minutes


class HotEventScreen(ModalScreen[HotEvent | None]):
    """Collects the event; the caller asks for confirmation and acts (a screen that is gone
    cannot receive the answer to a question it asked)."""

    BINDINGS = [Binding("escape", "cancel", "Cancel", show=False)]
    DEFAULT_CSS = """
    HotEventScreen { align: center middle; }
    HotEventScreen > Vertical { width: 64; height: auto; border: thick $accent; background: $surface; padding: 1 2; }
    HotEventScreen Input { margin-bottom: 1; }
    HotEventScreen Horizontal { height: auto; align: center middle; }
    HotEventScreen #error { color: $error; height: auto; }
    """

    def __init__(self, world: World):
        super().__init__()
        self._world = world

    def compose(self) -> ComposeResult:
        online = [s.name for s in self._world.services if s.kind != "batch"]
        with Vertical():
            yield Static("[b]Hot event[/b]: a traffic surge on the simulated platform")
            yield Label("Services (comma-separated)")
            yield Input(",".join(online[:3]), id="services")
            yield Label("Traffic multiplier")
            yield Input("2", id="factor", type="number")
            yield Label("Minutes")
            yield Input("60", id="minutes", type="integer")
            yield Static("", id="error")
            with Horizontal():
                yield Button("Cancel", id="cancel")
                yield Button("Start…", id="start", variant="warning")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "cancel":
            self.dismiss(None)
            return
        services = [s.strip() for s in self.query_one("#services", Input).value.split(",") if s.strip()]
        try:
            factor = float(self.query_one("#factor", Input).value)
            minutes = int(self.query_one("#minutes", Input).value)
        except ValueError:
            self.query_one("#error", Static).update("multiplier and minutes must be numbers")
            return
        known = {s.name for s in self._world.services}
        unknown = [s for s in services if s not in known]
        if unknown or not services:
            self.query_one("#error", Static).update(f"unknown service: {', '.join(unknown) or '(none)'}")
            return
        self.dismiss((services, factor, minutes))

    def action_cancel(self) -> None:
        self.dismiss(None)
