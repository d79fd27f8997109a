"""The Textual app: the view stack, `:` `/` `?` `esc`, the command palette, live polling.

Polling runs in a thread worker and touches the UI only from the main thread; a poll still
waiting on a slow store is not stacked on (the header shows the data as stale instead).
"""

from __future__ import annotations

import asyncio
import gc
import os
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from functools import partial
from typing import TYPE_CHECKING

from textual.app import App
from textual.binding import Binding
from textual.command import DiscoveryHit, Hit, Hits, Provider
from textual.widgets import Input, TabbedContent

from cockpit.config import Config
from cockpit.engine.actions import ACTIONS, Outcome
from cockpit.engine.facade import Cockpit, Snapshot
from cockpit.screens import VIEWS, resolve, view_class
from cockpit.screens.base import ViewScreen
from cockpit.screens.dashboard import DashboardScreen
from cockpit.widgets.live_table import LiveTable
from cockpit.widgets.status_header import StatusHeader

if TYPE_CHECKING:
    from cockpit.engine.engine import Engine

STORE_SLOW_S = 3.0  # a read of the store out this long: the header says it is not answering
MAX_NOT_DONE = 20


@dataclass(frozen=True)
class NotDone:
    """An action that did not take (the store failed it): what it was, and how to ask again."""

    action_id: str
    summary: str
    do: Callable[[], Outcome]
    why: str
    t: float


class ViewCommands(Provider):
    """The palette: every action the user may take in this view (with its key), the views, and
    the platform clock's actions."""

    def _entries(self) -> list[tuple[str, Callable[[], None], str]]:
        app: CockpitApp = self.app  # type: ignore[assignment]
        out = []
        view = self.screen if isinstance(self.screen, ViewScreen) else None  # the view under the palette
        offered: set[str] = set()
        if view is not None:
            for title, action, keys in view.palette_actions():
                out.append((f"{title} ({view.VIEW})", partial(app.call_later, view.run_action, action), f"key {keys}"))
                offered.add(view.ACTION_IDS.get(action, action))
        if view is not None:
            table = view.focused if isinstance(view.focused, LiveTable) else next(iter(view.query(LiveTable)), None)
            if table is not None:
                out.append(("Copy the selected row (OSC 52)", table.action_copy_row, "key y"))
            out.append(("Filter the table", view.open_filter, "key /"))
            if view.query(TabbedContent):
                out += [("Next tab", partial(app.action_tab, 1), "key ]"),
                        ("Previous tab", partial(app.action_tab, -1), "key [")]
        for item in app.not_done:  # what did not take, to ask again
            when = datetime.fromtimestamp(item.t).strftime("%H:%M:%S")
            out.append((f"Retry: {ACTIONS[item.action_id].title} ({item.summary or item.action_id})",
                        partial(app.retry, item), f"did not take at {when}: {item.why} (if unsure, :audit says)"))
        out.append(("Keys and help", app.action_help, "key ?"))
        out += [(f"Go to {name}", partial(app.goto, name), view_class(name).HELP) for name in VIEWS]
        if app.permitted("sim.pause") and "sim.pause" not in offered:
            out.append(("Pause or resume the platform clock", app.toggle_pause, ACTIONS["sim.pause"].title))
        if app.permitted("sim.hot_event") and "sim.hot_event" not in offered:
            out.append(("Start a hot event…", app.open_hot_event, ACTIONS["sim.hot_event"].title))
        out.append(("Quit", app.exit, "key q"))
        return out

    async def discover(self) -> Hits:
        for text, cmd, help_text in self._entries():
            yield DiscoveryHit(text, cmd, help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for text, cmd, help_text in self._entries():
            score = matcher.match(text)
            if score > 0:
                yield Hit(score, matcher.highlight(text), cmd, help=help_text)


class CockpitApp(App):
    TITLE = "Cockpit"
    # The dashboard's own too: Textual reads a screen's styles when it is pushed, never for the
    # default screen, whose styles were otherwise missing until the first view was opened.
    CSS_PATH = ["widgets/widgets.tcss", "screens/dashboard.tcss"]
    BINDINGS = [
        # Priority: they act before the keys typed after them are handed on (`:plan⏎` typed in one
        # burst over a slow link reaches the prompt); check_action keeps them out of dialogs and
        # out of fields being typed in.
        Binding("colon", "goto", "View", id="goto", priority=True),
        Binding("slash", "filter", "Filter", id="filter", priority=True),
        Binding("question_mark", "help", "Keys", id="help", priority=True),
        Binding("escape", "back", "Back", id="back", show=False),
        Binding("right_square_bracket", "tab(1)", "Next tab", id="tab.next", show=False, priority=True),
        Binding("left_square_bracket", "tab(-1)", "Previous tab", id="tab.previous", show=False, priority=True),
        Binding("q", "quit", "Quit", id="quit"),
    ]
    COMMANDS = {ViewCommands}  # ours only: Textual's own (a second help, screenshots into the cwd) would confuse

    def __init__(self, cockpit: Cockpit, cfg: Config, engine_factory: Callable[[], Engine] | None = None):
        super().__init__()
        self.cockpit = cockpit
        self.cfg = cfg
        self._engine_factory = engine_factory
        if engine_factory is not None:
            cockpit.engine_expected = True
        self.last_snapshot: Snapshot | None = None
        self.poll_error: str | None = None
        self._tick: int | None = None
        self._polling = False
        self._poll_started = 0.0
        self.not_done: list[NotDone] = []  # actions that did not take, newest first, to ask again
        self._settled = False  # the engine's platform is loaded and moved out of the collector's way
        if cfg.theme in self.available_themes:
            self.theme = cfg.theme
        if cfg.keys:
            self.set_keymap(cfg.keys)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("goto", "filter", "help", "tab"):
            return isinstance(self.screen, ViewScreen) and not isinstance(self.screen.focused, Input)
        return True

    def get_default_screen(self) -> DashboardScreen:
        return DashboardScreen()

    # --- lifecycle ------------------------------------------------------------------------

    def on_mount(self) -> None:
        _signals(asyncio.get_running_loop(), self._hangup)
        self.set_interval(self.cfg.tick_s, self.poll)
        self.poll()
        if self._engine_factory is None:  # no engine to wait for (read-only, a viewer): settle now
            self.call_after_refresh(_quiet_gc)
            self.call_after_refresh(self._prefetch)

    async def _start_engine(self) -> None:
        """After the first paint: the engine's imports and first load stay off the path to it.
        It runs on a loop of its own, in its own thread: a busy screen cannot hold up a tick."""
        factory, self._engine_factory = self._engine_factory, None
        if factory is None:
            return
        engine = await asyncio.to_thread(factory)
        self.cockpit.attach(engine)
        await asyncio.to_thread(engine.start)
        _quiet_gc()
        self._prefetch()

    def _prefetch(self) -> None:
        """Once started, read what the views that hold thousands of rows show (the hosts), in a
        thread: the first `:hosts` then shows them at once. And ready every screen's code and
        styles (warm_up.py), so no view is slower to open the first time."""
        from cockpit.screens.hosts import prefetch

        self.run_worker(partial(prefetch, self.cockpit), thread=True, group="prefetch", exit_on_error=False,
                        description="read the hosts ahead")
        self.run_worker(self._warm_up, thread=True, group="warm-up", exit_on_error=False,
                        description="ready every screen")

    def _warm_up(self) -> None:
        from cockpit.screens import warm_up

        classes = warm_up.import_screens()
        try:
            self.call_from_thread(warm_up.load_styles, self, classes)
        except RuntimeError:  # the app is closing
            return

    def _hangup(self) -> None:
        """The SSH connection dropped (SIGHUP) or we were told to stop: leave cleanly, and if
        leaving hangs (a write to a terminal that is gone), leave anyway after a moment."""
        threading.Thread(target=_last_resort, args=(self.cockpit,), name="hangup", daemon=True).start()
        self.exit(return_code=0)

    async def on_unmount(self) -> None:
        _signals(asyncio.get_running_loop(), None)
        if self.cockpit.engine is not None:
            await asyncio.to_thread(self.cockpit.engine.stop)

    # --- polling --------------------------------------------------------------------------

    def poll(self) -> None:
        if self._polling:  # the last read has not come back: the store may not be answering
            if self._store_silent_s() > STORE_SLOW_S and isinstance(self.screen, ViewScreen):
                self.paint_header(self.screen)
            return
        self._polling = True
        self._poll_started = time.monotonic()
        self.run_worker(self._fetch, thread=True, group="poll", exit_on_error=False)

    def _store_silent_s(self) -> float:
        """How long the read under way has waited for the store (0 when none is)."""
        return time.monotonic() - self._poll_started if self._polling else 0.0

    def _fetch(self) -> None:
        try:
            snap, err = self.cockpit.snapshot(self._tick), None
        except Exception as e:  # a dead or locked store: say so in the header, keep running
            snap, err = None, f"{type(e).__name__}: {e}"
        try:
            self.call_from_thread(self._apply, snap, err)
        except RuntimeError:  # the app is shutting down
            self._polling = False

    def _apply(self, snap: Snapshot | None, err: str | None) -> None:
        self._polling = False
        self.poll_error = err
        fresh = snap is not None and snap.rows is not None
        if snap is not None:
            prev = self.last_snapshot
            if fresh or prev is None:
                self.last_snapshot = snap
            else:
                self.last_snapshot = replace(prev, clock=snap.clock, engine=snap.engine)
            self._tick = snap.clock.tick
            if snap.engine.mode == "active" and self.cockpit.engine is not None and not self._settled:
                # The engine loaded the platform (hundreds of thousands of objects at 20,000 hosts):
                # out of the collector's way, or every full collection walks them, freezing the screen.
                self._settled = True
                gc.freeze()
        screen = self.screen
        if isinstance(screen, ViewScreen):
            self.paint_header(screen)
            if fresh and self.last_snapshot is not None:
                screen.on_snapshot(self.last_snapshot, fresh=True)
        if self._engine_factory is not None:
            self.call_after_refresh(lambda: self.run_worker(self._start_engine(), group="engine"))

    def paint_header(self, screen: ViewScreen) -> None:
        snap = self.last_snapshot
        world = self.cockpit.world
        if snap is None:
            clocks, engine, style = ["--:--"], "connecting", "dim"
        else:
            c = snap.clock
            when = datetime.fromtimestamp(c.t, world.traffic.tz)
            speed = " ⏸" if c.paused else f" ×{c.speed:g}"
            clocks = [when.strftime("%a %d %b %H:%M:%S" if c.speed < 10 else "%a %d %b %H:%M") + speed,
                      when.strftime("%d %b %H:%M") + speed, when.strftime("%H:%M") + speed]
            engine, style = self._engine_text(snap)
        screen.query_one(StatusHeader).show(world=world.name, clocks=clocks, engine=engine, engine_style=style,
                                            user=self.cfg.user, role=self.cfg.role, readonly=self.cfg.readonly)

    def _engine_text(self, snap: Snapshot) -> tuple[str, str]:
        waited = self._store_silent_s()
        if waited > STORE_SLOW_S:  # what is shown is as old as the last read that came back
            return f"store not answering {waited:.0f}s · data stale", "bold red"
        if self.poll_error:
            return "store error", "bold red"
        text, style = self._engine_state(snap)
        if snap.down:
            b, more = snap.down[0], len(snap.down) - 1
            since = f" {time.time() - b.since_real:.0f}s" if b.since_real is not None else ""
            text += f" · {b.kind} {b.name} down{since}" + (f" (+{more}, :backends)" if more else " (:backends)")
            style = "bold red"
        return text, style

    def _engine_state(self, snap: Snapshot) -> tuple[str, str]:
        e = snap.engine
        if e.mode == "none":
            return "no engine", "bold red"
        if e.mode == "viewer" and self.cockpit.engine_child is not None and e.stale_s is None \
                and e.holder is not None and e.holder.endswith(f":{self.cockpit.engine_child}"):
            return "engine ● active (own process)", "green"
        if e.mode == "viewer":
            stale = f", stale {e.stale_s:.0f}s" if e.stale_s is not None else ""
            return f"watching · engine on {e.holder}{stale}", "bold red" if stale else "yellow"
        if e.stale_s is not None:
            why = self._own_store_error()
            return f"engine stale {e.stale_s:.0f}s" + (f": store {why}" if why else ""), "bold red"
        if e.error:
            return "engine error", "bold red"
        if e.mode == "active":
            return "engine ● active", "green"
        return "engine starting", "dim"

    def _own_store_error(self) -> str | None:
        """Why this process's engine could not write the store (locked, full), if it knows."""
        engine = self.cockpit.engine
        if engine is None:
            return None
        failing = [b for b in engine.backend_health.states() if b.kind == "store" and not b.ok]
        return failing[0].error if failing else None

    # --- navigation -----------------------------------------------------------------------

    def action_goto(self) -> None:
        from cockpit.screens.command_prompt import CommandPrompt

        self.push_screen(CommandPrompt(list(VIEWS)), callback=self.goto)

    def goto(self, text: str | None) -> None:
        if not text:
            return
        name = resolve(text)
        if name is None:
            self.notify(f"no view {text!r}; views: {', '.join(VIEWS)}", severity="error")
            return
        for s in self.screen_stack:
            if isinstance(s, ViewScreen) and s.VIEW == name:
                while self.screen_stack[-1] is not s:
                    self.pop_screen()
                return
        self.push_screen(view_class(name)())

    def action_back(self) -> None:
        screen = self.screen
        if isinstance(screen, ViewScreen) and screen.handle_escape():
            return
        if len(self.screen_stack) > 1:
            self.pop_screen()

    def action_filter(self) -> None:
        if isinstance(self.screen, ViewScreen):
            self.screen.open_filter()

    def action_tab(self, step: int) -> None:
        """`]` and `[`: the next or previous tab of the view, when it has tabs."""
        from textual.widgets import TabbedContent, Tabs

        tabs = self.screen.query(TabbedContent)
        if not tabs:
            return
        bar = tabs.first().query_one(Tabs)
        if step > 0:
            bar.action_next_tab()
        else:
            bar.action_previous_tab()

    def action_help(self) -> None:
        from cockpit.screens.help import HelpScreen

        view = self.screen if isinstance(self.screen, ViewScreen) else None
        self.push_screen(HelpScreen(view, [(n, view_class(n).HELP) for n in VIEWS]))

    # --- actions --------------------------------------------------------------------------

    def permitted(self, action_id: str) -> bool:
        return self.cockpit.refusal(action_id) is None

    def refuse(self, action_id: str) -> None:
        """Say why, where the key was pressed; the refusal goes to the audit log too."""
        why = self.cockpit.refusal(action_id) or "not allowed"
        self.notify(f"{ACTIONS[action_id].title}: {why}", severity="warning")

        async def record() -> None:
            try:
                await asyncio.to_thread(self.cockpit.record_refusal, action_id)
            except Exception as e:  # noqa: BLE001 - a store that cannot take it: say so, keep running
                self.notify(f"the refusal could not be audited: {_one_line(e, self.cockpit.db)}", severity="error")

        self.run_worker(record(), group="action", exit_on_error=False)

    def perform(self, action_id: str, summary: str, do: Callable[[], Outcome]) -> None:
        """Refused actions still go to the facade, which records the refusal in the audit log."""
        if self.permitted(action_id) and ACTIONS[action_id].confirm:
            from cockpit.screens.confirm import ConfirmScreen

            def answered(yes: bool | None) -> None:
                if yes:
                    self._do(do, action_id, summary)

            self.push_screen(ConfirmScreen(ACTIONS[action_id].title + "?", summary), callback=answered)
        else:
            self._do(do, action_id, summary)

    def _do(self, do: Callable[[], Outcome], action_id: str = "", summary: str = "") -> None:
        async def run() -> None:
            try:
                outcome = await asyncio.to_thread(do)
            except Exception as e:  # noqa: BLE001 - a store that fails us: one line, and the app goes on
                self._did_not_take(action_id, summary, do, _one_line(e, self.cockpit.db))
                return
            if not outcome.ok and not outcome.refused:
                self._did_not_take(action_id, summary, do, outcome.message)
                return
            self.notify(outcome.message, severity="information" if outcome.ok else "error")
            self.poll()

        self.run_worker(run(), group="action", exit_on_error=False)

    def _did_not_take(self, action_id: str, summary: str, do: Callable[[], Outcome], why: str) -> None:
        """Kept (in this Cockpit, not the store, which may be what failed) to be asked again from
        the palette: nothing that did not take is lost silently."""
        title = ACTIONS[action_id].title if action_id in ACTIONS else "the action"
        if action_id in ACTIONS:
            self.not_done = [NotDone(action_id, summary, do, why, time.time()), *self.not_done][:MAX_NOT_DONE]
        self.notify(f"not done: {title}: {why} (ctrl+p, Retry, to ask again)", severity="error")

    def retry(self, item: NotDone) -> None:
        """Ask again an action that did not take (with its confirmation, as the first time) —
        unless the audit log shows it was done after all (a commit whose answer was lost)."""
        self.not_done = [x for x in self.not_done if x is not item]

        async def check() -> None:
            try:
                done = await asyncio.to_thread(self.cockpit.done_since, item.action_id, item.t - 1.0)
            except Exception as e:  # noqa: BLE001 - the store still away: keep it, say so
                self._did_not_take(item.action_id, item.summary, item.do, _one_line(e, self.cockpit.db))
                return
            if done is not None:
                self.notify(f"{ACTIONS[item.action_id].title} was done after all (audit entry {done}): "
                            "not asked again", severity="warning")
                return
            self.perform(item.action_id, item.summary, item.do)

        self.run_worker(check(), group="action", exit_on_error=False)

    def toggle_pause(self) -> None:
        paused = not (self.last_snapshot.clock.paused if self.last_snapshot else False)
        self.perform("sim.pause", "pause" if paused else "resume", lambda: self.cockpit.set_paused(paused))

    def open_hot_event(self) -> None:
        from cockpit.screens.form import Field, FormScreen

        online = [s.name for s in self.cockpit.world.services if s.kind != "batch"]

        def chosen(values: dict | None) -> None:
            if values is None:
                return
            services = [x.strip() for x in values["services"].split(",") if x.strip()]
            try:
                factor, minutes = float(values["factor"]), int(values["minutes"])
            except ValueError:
                self.notify("the multiplier and the minutes must be numbers", severity="error")
                return
            self.perform(
                "sim.hot_event",
                f"Surge {', '.join(services)} x{factor:g} for {minutes} min on the simulated platform.",
                lambda: self.cockpit.inject_hot_event(services, factor, minutes),
            )

        self.push_screen(FormScreen(
            "Hot event: a traffic surge on the simulated platform",
            [Field("services", "Services (comma-separated)", ",".join(online[:3]), tuple(online)),
             Field("factor", "Traffic multiplier", "2"), Field("minutes", "Minutes", "60")],
            submit="Start…",
        ), callback=chosen)


def _one_line(e: BaseException, db) -> str:
    """What went wrong, in one line; a store's error as the store describes it (a full disk)."""
    from cockpit.store.db import describe_for

    return describe_for(e, db)


def _quiet_gc() -> None:
    """Once started: what lives for the whole session is moved out of the collector's way, and
    young collections come less often. Full collections of a big heap froze the screen for
    70 to 170 ms, the worst of a sort's or a filter's delay with thousands of hosts."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)


def _last_resort(cockpit: Cockpit, grace_s: float = 3.0, stop_s: float = 3.0) -> None:
    """Still running `grace_s` after a hang-up: hand the engine lease back and end the process.
    Handing it back waits at most `stop_s` (a stop that hangs behind a long engine step must not
    keep a cockpit whose terminal is gone running; the lease then lapses by itself)."""
    time.sleep(grace_s)
    if cockpit.engine is not None:
        stopper = threading.Thread(target=cockpit.engine.stop, name="last-resort-stop", daemon=True)
        stopper.start()
        stopper.join(stop_s)
    os._exit(0)


def _signals(loop: asyncio.AbstractEventLoop, handler: Callable[[], None] | None) -> None:
    """Hang-up (the SSH connection dropped) and terminate: leave cleanly. POSIX event loops only."""
    for sig in (signal.SIGHUP, signal.SIGTERM):
        try:
            if handler is None:
                loop.remove_signal_handler(sig)
            else:
                loop.add_signal_handler(sig, handler)
        except (RuntimeError, ValueError):  # not the main thread (some test runners): nothing to undo
            continue


def create_app(cockpit: Cockpit, cfg: Config, engine_factory: Callable[[], Engine] | None = None) -> CockpitApp:
    """The app, built from a facade and settings the caller chose (tests choose their own).
    With `engine_factory`, it runs the engine too (it becomes a viewer if another one is active);
    a read-only cockpit never does: it only watches."""
    return CockpitApp(cockpit, cfg, None if cfg.readonly else engine_factory)
