"""What every view shares: the status header, a filterable body, the footer."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from textual.app import ComposeResult
from textual.screen import Screen
from textual.widgets import Footer

from cockpit.widgets.filter_bar import FilterBar
from cockpit.widgets.status_header import StatusHeader

if TYPE_CHECKING:
    from cockpit.app import CockpitApp
    from cockpit.engine.facade import Snapshot


class ViewScreen(Screen):
    """A named view (`:hosts`). Subclasses compose `body()` and react to snapshots and filters."""

    VIEW: ClassVar[str] = ""
    ALIASES: ClassVar[tuple[str, ...]] = ()
    HELP: ClassVar[str] = ""
    ACTION_IDS: ClassVar[dict[str, str]] = {}  # binding action -> the platform action it performs

    def __init__(self) -> None:
        super().__init__(name=self.VIEW)
        self.query_text = ""

    @property
    def cockpit_app(self) -> CockpitApp:
        return self.app  # type: ignore[return-value]

    def compose(self) -> ComposeResult:
        yield StatusHeader(id="status")
        yield from self.body()
        yield FilterBar()
        yield Footer(compact=True)

    def body(self) -> ComposeResult:
        return
        yield

    def on_screen_resume(self) -> None:
        app = self.cockpit_app
        if app.last_snapshot is not None:
            app.paint_header(self)
            self.on_snapshot(app.last_snapshot, fresh=False)

    def on_snapshot(self, snap: Snapshot, fresh: bool) -> None:
        """A new snapshot arrived (`fresh`), or the screen came back to the top."""

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Keys for actions this user may not take (read-only, role) are hidden, as in k9s."""
        action_id = self.ACTION_IDS.get(action)
        return self.cockpit_app.permitted(action_id) if action_id else True

    # --- filter -------------------------------------------------------------------------

    def open_filter(self) -> None:
        self.query_one(FilterBar).open()

    def handle_escape(self) -> bool:
        """Esc: clear an active filter. True when the key was used here (the view stays)."""
        bar = self.query_one(FilterBar)
        if bar.has_class("-shown") or bar.value:
            bar.close(clear=True)
            self.focus_next()
            return True
        return False

    def on_filter_bar_query(self, message: FilterBar.Query) -> None:
        self.query_text = message.query
        self.apply_filter()

    def apply_filter(self) -> None:
        """Show only the rows matching `query_text`."""
