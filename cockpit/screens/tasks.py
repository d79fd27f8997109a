"""`:tasks`: expansion flows, live. Each flow (its service and change, IDC, state, the step it is
at of its nine or four, a bar of its hosts and containers settled, who started it, how long ago);
under it the selected flow's steps (each with its mark, note and time) and, on the next tab, its
hosts and containers (step, state, attempts, last error) with the selected one's last log lines.
Enter on a flow goes to its hosts and containers; Enter on one of those opens its whole log.

`n` starts a flow (a form, checked, then what will happen, to confirm); `p` pauses, `r` resumes,
`x` stops (confirmed). Flows run on the wall clock, also while the platform clock is paused: the
store is read every tick of the wall clock while the view is on top, in a thread; rows are built
in a thread too (ViewScreen.repaint) and shown in one update, by stable keys."""

from __future__ import annotations

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.widgets import Static, TabbedContent, TabPane, Tabs

from cockpit.core.flow import OPEN
from cockpit.engine.actions import Outcome
from cockpit.engine.facade_flows import FlowAsk, FlowView, ItemView
from cockpit.screens.base import OneRead, PolledView
from cockpit.screens.flow_form import FlowStarter
from cockpit.widgets.flow_rows import (
    ITEM_COLUMNS,
    LOG_COLUMNS,
    STEP_COLUMNS,
    TasksPaint,
    TasksRead,
    TasksShown,
    compute_tasks,
    flow_columns,
    flow_reason,
    log_head,
    log_rows,
    log_tail,
    sign,
    step_text,
)
from cockpit.widgets.live_table import LiveTable
from cockpit.widgets.view_tabs import ViewTabs


class TasksScreen(FlowStarter, OneRead, PolledView):
    VIEW = "tasks"
    ALIASES = ("flows", "flow", "expansions", "expand")
    HELP = "Expansion flows: steps, hosts and containers, logs; start, pause, resume, stop"
    CSS_PATH = "tasks.tcss"
    AUTO_FOCUS = "#flows"

    BINDINGS = [
        Binding("n", "new", "New flow…", id="tasks.new"),
        Binding("p", "pause", "Pause", id="tasks.pause"),
        Binding("r", "resume", "Resume", id="tasks.resume"),
        Binding("x", "stop", "Stop…", id="tasks.stop"),
        Binding("l", "log", "Whole log of the selected host or container", id="tasks.log", show=False),
    ]
    ACTION_IDS = {"new": "flow.start", "pause": "flow.pause", "resume": "flow.resume", "stop": "flow.stop"}

    def __init__(self) -> None:
        super().__init__()
        self._read_data: TasksRead | None = None
        self._selected: int | None = None  # the flow whose steps and items show
        self._log: str | None = None  # the item (its key) whose whole log shows
        self.shown: TasksShown | None = None

    def body(self) -> ComposeResult:
        yield Static("reading the flows…", id="summary")
        yield LiveTable(flow_columns(self.cockpit_app.cockpit.world), id="flows")
        yield Static("", id="flow-detail")
        yield Static("", id="flow-reason")
        with ViewTabs(id="tabs"):
            with TabPane("Steps", id="tab-steps"):
                yield LiveTable(STEP_COLUMNS, id="steps")
            with TabPane("Hosts & containers", id="tab-items"):
                yield LiveTable(ITEM_COLUMNS, id="items")
                yield Static("", id="item-detail")
        with Vertical(id="log"):
            yield Static("", id="log-head")
            yield LiveTable(LOG_COLUMNS, id="log-lines")
            yield Static("", id="log-foot")

    def on_mount(self) -> None:
        super().on_mount()
        for bar in self.query(Tabs):  # `]` and `[` switch tabs; the keys stay on the tables
            bar.can_focus = False
        self.load()

    # --- reading the store (threads only) ---------------------------------------------------------

    def _start_read(self) -> None:
        self._read(self._selected)

    @work(thread=True, group="tasks-read", exit_on_error=False, description="read the flows")
    def _read(self, selected: int | None) -> None:
        c = self.cockpit_app.cockpit
        read, error = None, None
        try:
            flows = c.flows()
            ids = [f.id for f in flows]
            if selected not in ids:
                selected = ids[0] if ids else None
            read = TasksRead(flows, c.flow_times(ids), c.clock().t, selected,
                             c.flow_items(selected) if selected is not None else [])
        except Exception as e:  # a locked or damaged store: say so, keep what is shown
            error = f"{type(e).__name__}: {e}"
        self.on_loop(self._read_done, read, error)

    def _take(self, read: TasksRead) -> bool:
        changed = self.shown is None or read != self._read_data
        self._read_data = read
        return changed

    # --- painting (base.ViewScreen: paint_state on the loop, compute in a thread, show) ------------

    def paint_state(self) -> TasksPaint:
        return TasksPaint(self._read_data, self._selected, self.query_text.strip(),
                          self.cockpit_app.cockpit.world.traffic.tz)

    def compute(self, state: TasksPaint) -> TasksShown:
        return compute_tasks(state)

    def show(self, shown: TasksShown) -> None:
        self.shown = shown
        flows = self.query_one("#flows", LiveTable)
        flows.sync(shown.rows["flows"])
        if shown.selected is not None and flows.current_key() != str(shown.selected):
            flows.move_to_key(str(shown.selected))
        self.query_one("#steps", LiveTable).sync(shown.rows["steps"])
        self.query_one("#items", LiveTable).sync(shown.rows["items"])
        summary = shown.summary
        summary = self._with_error(summary)
        self.query_one("#summary", Static).update(summary)
        self.query_one("#flow-detail", Static).update(shown.detail)
        reason = flow_reason(shown.flows.get(str(shown.selected)))
        self.query_one("#flow-reason", Static).update(reason)
        self.query_one("#flow-reason", Static).display = bool(reason.plain)
        self._paint_item()
        self._paint_log()

    def _paint_item(self) -> None:
        item = self._item(self._key("items"))
        s = self.shown
        if item is not None:
            text = log_tail(item)
        elif s is not None and s.selected is not None and self._read_data and self._read_data.items_of == s.selected:
            text = Text("no hosts or containers yet: the flow places them at its scheduling step"
                        if s.flows.get(str(s.selected)) and s.flows[str(s.selected)].kind == "expand" else
                        "no containers chosen yet", style="dim")
        else:
            text = Text("")
        self.query_one("#item-detail", Static).update(text)

    def on_live_table_highlighted(self, event: LiveTable.Highlighted) -> None:
        if event.table.id == "flows" and event.key is not None and int(event.key) != self._selected:
            self._selected = int(event.key)
            self._close_log()
            self.repaint()  # its steps now (they are in the flows read); its items with the next read
            self.load()
        elif event.table.id == "items":
            self._paint_item()
        elif event.table.id == "log-lines":
            self._paint_log_foot()

    def on_live_table_selected(self, event: LiveTable.Selected) -> None:
        if event.table.id == "flows":
            self.query_one(TabbedContent).active = "tab-items"
            self.query_one("#items", LiveTable).focus()
        elif event.table.id == "items":
            self._open_log(event.key)

    def on_tabbed_content_tab_activated(self, event: TabbedContent.TabActivated) -> None:
        """`]` `[` (or a click): the flows table keeps the keys; a table that went out of sight
        hands them to the one now shown."""
        if self.focused is not self.query_one("#flows", LiveTable):
            tables = event.pane.query(LiveTable)
            if tables:
                tables.first().focus()

    def _key(self, table_id: str) -> str | None:
        return self.query_one(f"#{table_id}", LiveTable).current_key()

    def _item(self, key: str | None) -> ItemView | None:
        return self.shown.items.get(key) if self.shown is not None and key is not None else None

    # --- an item's whole log ----------------------------------------------------------------------

    def action_log(self) -> None:
        if self._log is not None:
            self._close_log()
            return
        key = self._key("items") if self.query_one(TabbedContent).active == "tab-items" else None
        if self._item(key) is None:
            self.notify("select a host or container (Hosts & containers tab: ] to get there) to see its log",
                        severity="warning", timeout=3)
            return
        self._open_log(key)

    def _open_log(self, key: str) -> None:
        if self._item(key) is None:
            return
        self._log = key
        self.add_class("-log")
        self._paint_log()
        self.call_after_refresh(self.query_one("#log-lines", LiveTable).focus)  # once shown

    def _paint_log(self) -> None:
        if self._log is None:
            return
        item = self._item(self._log)
        if item is None:  # the flow's items were read again without it (another flow selected)
            self._close_log()
            return
        self.query_one("#log-head", Static).update(log_head(item, self.shown.selected or 0))
        lines = self.query_one("#log-lines", LiveTable)
        rows = log_rows(item)
        was_last = lines.cursor_row == lines.row_count - 1
        lines.sync(rows)
        if was_last and rows:  # following the end of a log that grows
            lines.move_cursor(row=len(rows) - 1)
        self._paint_log_foot()

    def _paint_log_foot(self) -> None:
        item = self._item(self._log)
        key = self._key("log-lines")
        if item is None or key is None:
            self.query_one("#log-foot", Static).update(Text("no log yet", style="dim"))
            return
        t, step, text = item.log[int(key)]
        self.query_one("#log-foot", Static).update(Text.assemble((f"{step}: ", "cyan"), text))

    def _close_log(self, refocus: bool = False) -> None:
        if self._log is None:
            return
        self._log = None
        self.remove_class("-log")
        if refocus:
            self.call_after_refresh(self.query_one("#items", LiveTable).focus)

    def handle_escape(self) -> bool:
        if self._log is not None:
            self._close_log(refocus=True)
            return True
        if self.focused in (self.query_one("#items", LiveTable), self.query_one("#steps", LiveTable)):
            self.query_one("#flows", LiveTable).focus()
            return True
        return super().handle_escape()

    # --- actions ------------------------------------------------------------------------------------

    def _selected_flow(self, what: str) -> FlowView | None:
        f = self.shown.flows.get(str(self._selected)) if self.shown is not None else None
        if f is None:
            self.notify(f"select a flow to {what}", severity="warning", timeout=3)
        return f

    def action_pause(self) -> None:
        f = self._selected_flow("pause")
        if f is None:
            return
        if f.state not in ("queued", "running"):
            self.notify(f"flow {f.id} is {f.state}: " + ("r resumes it" if f.state == "paused" else
                                                         "there is nothing to pause"), severity="warning")
            return
        c = self.cockpit_app.cockpit
        self.cockpit_app.perform("flow.pause", f"pause flow {f.id}", self.after_flow_action(lambda: c.pause_flow(f.id)))

    def action_resume(self) -> None:
        f = self._selected_flow("resume")
        if f is None:
            return
        if f.state != "paused":
            self.notify(f"flow {f.id} is {f.state}: only a paused flow resumes", severity="warning")
            return
        c = self.cockpit_app.cockpit
        self.cockpit_app.perform("flow.resume", f"resume flow {f.id}",
                                 self.after_flow_action(lambda: c.resume_flow(f.id)))

    def action_stop(self) -> None:
        f = self._selected_flow("stop")
        if f is None:
            return
        if f.state not in OPEN:
            self.notify(f"flow {f.id} is {f.state}: there is nothing to stop", severity="warning")
            return
        body = (f"Stop flow {f.id}: {f.service} {sign(f.kind)}{f.count} in {f.idc}, {f.state} at "
                f"{step_text(f).plain}.\nNothing more is done: the steps not reached do not run, and every host "
                "and container keeps the state it has now (what was started stays). It cannot be resumed; "
                "n starts a new flow.")
        c = self.cockpit_app.cockpit
        self.cockpit_app.perform("flow.stop", body, self.after_flow_action(lambda: c.stop_flow(f.id)))

    def action_new(self) -> None:
        f = self.shown.flows.get(str(self._selected)) if self.shown is not None else None
        world = self.cockpit_app.cockpit.world
        if f is not None:
            values = {"kind": f.kind, "service": f.service, "count": "1", "idc": f.idc or ""}
        else:
            values = {"kind": "expand", "service": world.services[0].name if world.services else "", "count": "1"}
        self.open_flow_form(values)

    def flow_started(self, ask: FlowAsk, outcome: Outcome) -> None:
        if outcome.ok and outcome.task is not None:
            self._selected = outcome.task  # the next read shows it, selected
