"""What every view shares: the status header, a filterable body, the key bar; actions gated by
role and read-only mode (refused in place, with the reason); tables painted off the event loop."""

from __future__ import annotations

import functools
import itertools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.screen import Screen

from cockpit.widgets.filter_bar import FilterBar
from cockpit.widgets.key_bar import KeyBar
from cockpit.widgets.status_header import StatusHeader

if TYPE_CHECKING:
    from cockpit.app import CockpitApp
    from cockpit.engine.facade import Snapshot


def _gate(method: Callable, action_id: str) -> Callable:
    @functools.wraps(method)
    def run(self: ViewScreen, *args, **kwargs):
        if not self.cockpit_app.permitted(action_id):
            self.cockpit_app.refuse(action_id)
            return None
        return method(self, *args, **kwargs)

    run.gated = action_id  # type: ignore[attr-defined]
    return run


class ViewScreen(Screen):
    """A named view (`:hosts`). Subclasses compose `body()` and react to snapshots and filters."""

    VIEW: ClassVar[str] = ""
    ALIASES: ClassVar[tuple[str, ...]] = ()
    HELP: ClassVar[str] = ""
    ACTION_IDS: ClassVar[dict[str, str]] = {}  # binding action -> the platform action it performs

    def __init_subclass__(cls, **kwargs) -> None:
        """Every action that changes the platform is gated: refused in place, with the reason, for
        a role without the right or in read-only mode (and the refusal is audited)."""
        super().__init_subclass__(**kwargs)
        for action, action_id in cls.ACTION_IDS.items():
            method = cls.__dict__.get(f"action_{action}")
            if method is not None and not hasattr(method, "gated"):
                setattr(cls, f"action_{action}", _gate(method, action_id))

    def __init__(self) -> None:
        super().__init__(name=self.VIEW)
        self.query_text = ""
        self._painting = False  # a paint is being computed in a thread
        self._paint_again = False  # and another was asked for meanwhile
        self._paint_gen = itertools.count(1)
        self._paint_latest = 0

    @property
    def cockpit_app(self) -> CockpitApp:
        return self.app  # type: ignore[return-value]

    def compose(self) -> ComposeResult:
        yield StatusHeader(id="status")
        yield from self.body()  # first: the view's table takes the focus, not the hidden filter
        with Vertical(id="bottom"):  # docked together, so the filter sits on the keys, not over them
            yield FilterBar()
            yield KeyBar(id="keys")

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

    def allowed(self, action: str) -> bool:
        """May this user take the action bound to `action` now? (The key bar shows only those.)"""
        action_id = self.ACTION_IDS.get(action)
        return self.cockpit_app.permitted(action_id) if action_id else True

    def palette_actions(self) -> list[tuple[str, str, str]]:
        """(title, action, key) of every action of this view the user may take, for ctrl+p."""
        out, seen = [], set()
        for binding in self.BINDINGS:
            action = getattr(binding, "action", None)
            if action is None or action in seen or not self.allowed(action):
                continue
            seen.add(action)
            keys = ", ".join(self.app.get_key_display(binding).split(","))
            out.append((binding.description or action, action, keys))
        return out

    # --- filter -----------------------------------------------------------------------------

    def open_filter(self) -> None:
        self.query_one(FilterBar).open()

    def handle_escape(self) -> bool:
        """Esc: clear an active filter. True when the key was used here (the view stays)."""
        bar = self.query_one(FilterBar)
        if bar.has_class("-shown") or bar.value:
            bar.close(clear=True)
            self.refocus()
            return True
        return False

    def refocus(self) -> None:
        """Back from the filter: to the view's table that shows, else the next focusable widget."""
        from cockpit.widgets.live_table import LiveTable

        for table in self.query(LiveTable):
            if table.display and table.is_on_screen:
                table.focus()
                return
        self.focus_next()

    def on_filter_bar_query(self, message: FilterBar.Query) -> None:
        self.query_text = message.query
        self.apply_filter()

    def apply_filter(self) -> None:
        """Show only the rows matching `query_text` (views with big tables: `repaint`)."""
        self.repaint()

    # --- painting off the event loop --------------------------------------------------------

    def repaint(self) -> None:
        """Recompute what the view shows (filter, sort) in a thread, then show it in one update.
        One paint at a time: the first key of a burst starts one at once, the keys typed while it
        runs make one more when it is done (what it computed is then out of date and dropped)."""
        if self._painting:
            self._paint_again = True
            return
        self._start_paint()

    def _start_paint(self) -> None:
        self._painting = True
        self._paint_again = False
        gen = next(self._paint_gen)
        self._paint_latest = gen
        state = self.paint_state()
        # A description, or Textual builds the repr of the whole state on the event loop.
        self.run_worker(functools.partial(self._paint_worker, gen, state), thread=True, group="paint",
                        description=f"paint {self.VIEW}", exit_on_error=False)

    def _paint_worker(self, gen: int, state: Any) -> None:
        result, ok = None, False
        try:
            result, ok = self.compute(state), True
        finally:  # a compute that failed still ends its paint, or the view would never paint again
            self.on_loop(self._paint_done, gen, result, ok)

    def _paint_done(self, gen: int, result: Any, ok: bool) -> None:
        self._painting = False
        if self._paint_again and self.is_attached:
            self._start_paint()
        elif ok:
            self._show_if_latest(gen, result)

    def on_loop(self, callback, *args, **kwargs) -> None:
        """From a worker thread: run `callback` on the event loop, unless the app is closing."""
        try:
            self.app.call_from_thread(callback, *args, **kwargs)
        except RuntimeError:  # the app is closing: nothing left to show it on
            return

    def _show_if_latest(self, gen: int, result: Any) -> None:
        if gen == self._paint_latest and self.is_attached:
            self.show(result)

    def paint_state(self) -> Any:
        """On the event loop: what `compute` needs (the data loaded, the query, the sort)."""
        return None

    def compute(self, state: Any) -> Any:
        """In a thread, touching no widget: the rows to show."""
        return None

    def show(self, result: Any) -> None:
        """On the event loop: put `compute`'s result on screen."""


class OneRead:
    """A view that reads the store in a worker thread, one read at a time: a read asked for while
    one runs runs once after it, and the view repaints only when what was read changed (or the
    store's error did). Subclasses start their worker in `_start_read` (it ends by calling
    `_read_done(read, error)` on the loop) and keep what was read in `_take` (True when it changed
    what is shown)."""

    _reading = False
    _again = False
    _error: str | None = None

    def load(self) -> None:
        if self._reading:
            self._again = True
            return
        self._reading = True
        self._start_read()

    def _repainted(self) -> None:
        """After a repaint that a read caused."""

    def _with_error(self, summary):
        """The view's summary line, with the store's error when the last read met one."""
        if not self._error:
            return summary
        from rich.text import Text

        return summary + Text(f" · store: {self._error}", style="bold red")

    def _read_done(self, read: Any, error: str | None) -> None:
        self._reading = False
        changed = error != self._error
        self._error = error
        if read is not None:
            changed = self._take(read) or changed
        if self.is_attached and changed:  # most ticks nothing moved: nothing to build again
            self.repaint()
            self._repainted()
        if self._again:
            self._again = False
            self.load()


class PolledView(ViewScreen):
    """A view whose data comes in real time (audit entries, an order's drain progress), also while
    the platform clock is paused or no engine runs: read every tick of the wall clock while on
    top, and at once when the view comes back on top. Subclasses implement `load` (a worker)."""

    def on_mount(self) -> None:
        self.set_interval(self.cockpit_app.cfg.tick_s, self._refresh)

    def _refresh(self) -> None:
        if self.is_current:
            self.load()

    def on_snapshot(self, snap: Snapshot, fresh: bool) -> None:
        if not fresh:  # back on top: read now rather than at the next refresh
            self.load()
