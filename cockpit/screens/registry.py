"""`:registry`: the registries of every IDC and their replication. Four tabs: the topology as a
tree with each registry's health; the policies; the executions with their progress and the
selected one's tasks; the matrix of images x registries (in sync, behind with the lag, FAILED,
CONFLICT). Enter on a matrix row opens the image's layers and what sharing them saves. `r`
starts a replication (of the selected image, or of everything a policy covers), `x` stops one.

The executions move in real time (copies run on the wall clock, also while the platform clock is
paused): the store is read every tick of the wall clock while the view is on top, in a thread;
rows are built in a thread too (ViewScreen.repaint) and shown in one update."""

from __future__ import annotations

import re
import time
from dataclasses import replace

from rich.text import Text
from textual import work
from textual.actions import SkipAction
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.widgets import Static, TabbedContent, TabPane, Tabs

from cockpit.domain import World
from cockpit.engine.facade_registry import ACTIVE, ExecutionView, MatrixView, PolicyView, RegistryNode, ReplicationTaskView
from cockpit.screens.base import OneRead, PolledView
from cockpit.screens.form import Field, FormScreen
from cockpit.widgets.live_table import LiveTable, layout
from cockpit.widgets.registry_cells import cell_detail, short_names, trigger_text
from cockpit.widgets.registry_rows import (
    BLOB_COLUMNS,
    EXECUTION_COLUMNS,
    Paint,
    Read,
    Shown,
    compute_rows,
    execution_detail,
    layers_text,
    matrix_columns,
    node_detail,
    policy_columns,
    policy_detail,
    task_columns,
    task_detail,
    topology_columns,
)
from cockpit.widgets.view_tabs import ViewTabs

MATRIX_S = 5.0  # the matrix is read every tick on its tab, else at most this often (the summary counts it)
# --- the view ----------------------------------------------------------------------------------


class RegistryScreen(OneRead, PolledView):
    VIEW = "registry"
    ALIASES = ("reg", "registries", "replication", "images")
    HELP = "Registry topology, replications, sync matrix, layers"
    CSS_PATH = "registry.tcss"
    AUTO_FOCUS = "#topology"

    BINDINGS = [
        Binding("r", "replicate", "Replicate…", id="registry.replicate"),
        Binding("x", "stop", "Stop replication…", id="registry.stop"),
        Binding("d", "layers", "Layers of the image", id="registry.layers", show=False),
        Binding("left,h", "column(-1)", "Matrix: previous registry", show=False, id="registry.column_previous"),
        Binding("right,l", "column(1)", "Matrix: next registry", show=False, id="registry.column_next"),
    ]
    ACTION_IDS = {"replicate": "registry.replicate", "stop": "registry.stop"}

    def __init__(self) -> None:
        super().__init__()
        self._tree: list[RegistryNode] = []
        self._policies: list[PolicyView] = []
        self._executions: list[ExecutionView] = []
        self._tasks: list[ReplicationTaskView] = []
        self._tasks_of: int | None = None
        self._matrix: MatrixView | None = None
        self._matrix_read = 0.0
        self._registries: list[str] = []
        self._column = 0  # the matrix's selected registry
        self._layers: tuple[str, str | None] | None = None  # (image, registry) shown in the layers pane
        self.shown: Shown | None = None

    def body(self) -> ComposeResult:
        world = self.cockpit_app.cockpit.world
        columns, self._registries = matrix_columns(world)
        yield Static("reading the registries…", id="summary")
        with ViewTabs(id="tabs"):
            with TabPane("Topology", id="tab-topology"):
                yield LiveTable(topology_columns(world), id="topology")
                yield Static("", id="topology-detail", classes="detail")
            with TabPane("Policies", id="tab-policies"):
                yield LiveTable(policy_columns(world), id="policies")
                yield Static("", id="policy-detail", classes="detail")
            with TabPane("Executions", id="tab-executions"):
                yield LiveTable(EXECUTION_COLUMNS, id="executions")
                yield LiveTable(task_columns(world), id="tasks")
                yield Static("", id="execution-detail", classes="detail")
                yield Static("", id="task-detail")
            with TabPane("Matrix", id="tab-matrix"):
                yield LiveTable(columns, id="matrix")
                yield Static("", id="cell", classes="detail")
        with Vertical(id="layers"):
            yield Static("", id="layers-head")
            yield LiveTable(BLOB_COLUMNS, id="blobs")
            yield Static("", id="layers-foot")

    def on_mount(self) -> None:
        super().on_mount()
        for bar in self.query(Tabs):  # `]` and `[` switch tabs; the keys stay on the tables
            bar.can_focus = False
        self._mark_column()

    # --- reading the store (threads only) ---------------------------------------------------------

    def _start_read(self) -> None:
        """Every tick of the wall clock while on top: the executions and the selected one's tasks;
        the matrix on its tab (elsewhere at most every MATRIX_S, for the summary's counts)."""
        due = (self._matrix is None or self._tab() == "tab-matrix" or self._layers is not None
               or time.monotonic() - self._matrix_read >= MATRIX_S)
        if due:
            self._matrix_read = time.monotonic()
        self._read(self._selected_execution_id(), due)

    @work(thread=True, group="registry-read", exit_on_error=False, description="read the registries")
    def _read(self, execution: int | None, with_matrix: bool) -> None:
        c = self.cockpit_app.cockpit
        read, error = None, None
        try:
            executions = c.replications()
            if execution is None or all(e.id != execution for e in executions):
                execution = executions[0].id if executions else None
            read = Read(c.registry_tree(), c.replication_policies(), executions, execution,
                        c.replication_tasks(execution) if execution is not None else [],
                        c.registry_matrix() if with_matrix else None)
        except Exception as e:  # a locked or damaged store: say so, keep what is shown
            error = f"{type(e).__name__}: {e}"
        self.on_loop(self._read_done, read, error)

    def _take(self, read: Read) -> bool:
        before = (self._tree, self._policies, self._executions, self._tasks_of, self._tasks, self._matrix)
        self._tree, self._policies, self._executions = read.tree, read.policies, read.executions
        self._tasks_of, self._tasks = read.tasks_of, read.tasks
        if read.matrix is not None:
            self._matrix = read.matrix
        return self.shown is None or before != (self._tree, self._policies, self._executions, self._tasks_of,
                                                self._tasks, self._matrix)

    # --- painting (base.ViewScreen: paint_state on the loop, compute in a thread, show) ------------

    def paint_state(self) -> Paint:
        return Paint(self._tree, self._policies, self._executions, self._tasks, self._matrix, self._registries,
                     self.query_text.strip())

    def compute(self, state: Paint) -> Shown:
        return compute_rows(state)

    def show(self, shown: Shown) -> None:
        self.shown = shown
        for table_id, rows in shown.rows.items():
            self.query_one(f"#{table_id}", LiveTable).sync(rows)
        summary = shown.summary
        summary = self._with_error(summary)
        self.query_one("#summary", Static).update(summary)
        self._paint_details()

    def on_live_table_highlighted(self, event: LiveTable.Highlighted) -> None:
        if event.table.id == "executions" and event.key is not None and int(event.key) != self._tasks_of:
            self.load()  # the tasks of the execution now selected, without waiting for the tick
        self._paint_details()

    def _paint_details(self) -> None:
        s = self.shown
        if s is None:
            return
        tz = self.cockpit_app.cockpit.world.traffic.tz
        node = s.nodes.get(self._key("topology") or "")
        self._detail("#topology-detail", node_detail(node) if node else
                     Text("No registry matches the filter." if self._tree else "No registries in this world."))
        policy = s.policies.get(self._key("policies") or "")
        self._detail("#policy-detail", policy_detail(policy) if policy else
                     Text("No policy matches the filter." if self._policies else
                          "No replication policies: the world's registries replicate from none."))
        self._paint_execution(s, tz)
        self._detail("#cell", self._cell_text(s))

    def _paint_execution(self, s: Shown, tz) -> None:
        e = s.executions.get(self._key("executions") or "")
        if e is None:
            self._detail("#execution-detail", Text("No replication yet: r starts one." if not self._executions
                                                   else "No replication matches the filter."))
            self._detail("#task-detail", Text(""))
            return
        self._detail("#execution-detail", execution_detail(e, tz))
        t = s.tasks.get(self._key("tasks") or "") if self._tasks_of == e.id else None
        if t is not None:
            self._detail("#task-detail", task_detail(t))
        elif self._tasks_of == e.id and not self._tasks:
            self._detail("#task-detail", Text("no tasks yet: the engine plans them when it starts the replication"
                                              if e.state == "pending" else "no tasks: every destination held it all",
                                              style="dim"))
        else:
            self._detail("#task-detail", Text(""))

    def _cell_text(self, s: Shown) -> Text:
        image = self._key("matrix")
        if image is None or not self._registries:
            return Text("No image matches the filter." if self._matrix and self._matrix.rows else
                        "No images in the registries yet.")
        registry = self._registries[self._column]
        row = s.cells.get(image, {})
        source = next((r for r, c in row.items() if c.state == "source"), None)
        line = cell_detail(image, registry, row.get(registry), source)
        hidden = self.hidden_registries()
        if hidden:  # first, or a long cell would push it out of sight
            line = Text(f"(hidden at this width: {', '.join(hidden)}) ", style="dim") + line
        return line + Text("  ←/→ registry · enter: layers · r: replicate it", style="dim")

    def _detail(self, selector: str, text: Text) -> None:
        self.query_one(selector, Static).update(text)

    def _key(self, table_id: str) -> str | None:
        return self.query_one(f"#{table_id}", LiveTable).current_key()

    def _tab(self) -> str:
        return self.query_one(TabbedContent).active

    def _selected_execution_id(self) -> int | None:
        key = self._key("executions")
        return int(key) if key is not None else None

    # --- tabs, the matrix's selected registry, the layers pane ----------------------------------------

    def on_tabbed_content_tab_activated(self, event: TabbedContent.TabActivated) -> None:
        """`]` `[` (or a click): the pane's first table takes the keys; the matrix is read at once."""
        self._close_layers(refocus=False)
        tables = event.pane.query(LiveTable)
        if tables:
            tables.first().focus()
        if event.pane.id == "tab-matrix":
            self.load()
            self.call_after_refresh(self._paint_details)  # laid out at last: which registries fit is known

    def on_resize(self) -> None:
        self.call_after_refresh(self._paint_details)

    def action_column(self, step: int) -> None:
        if self._tab() != "tab-matrix" or self._layers is not None or not self._registries:
            raise SkipAction()  # left and right mean nothing here: let them go on
        self._column = (self._column + step) % len(self._registries)
        self._mark_column()
        if self.shown is not None:
            self._detail("#cell", self._cell_text(self.shown))

    def _mark_column(self) -> None:
        """The selected registry's header starts with ▸ (its cell in full is on the line below)."""
        if not self._registries:
            return
        table = self.query_one("#matrix", LiveTable)
        short = short_names(self._registries)
        table.columns = [c if c.key not in short else
                         replace(c, label=("▸" if c.key == self._registries[self._column] else "") + short[c.key])
                         for c in table.columns]
        table.refresh()

    def hidden_registries(self) -> list[str]:
        """The matrix's registries left out at the terminal's width (the line under it names them)."""
        table = self.query_one("#matrix", LiveTable)
        width = table.scrollable_content_region.width
        if not width:  # not laid out (another tab shows)
            return []
        shown = {table.columns[i].key for i, _ in layout(table.columns, width)}
        return [r for r in self._registries if r not in shown]

    def on_live_table_selected(self, event: LiveTable.Selected) -> None:
        if event.table.id == "matrix":
            self._open_layers(event.key, self._registries[self._column] if self._registries else None)
        elif event.table.id == "tasks":
            t = self.shown.tasks.get(event.key) if self.shown else None
            if t is not None:
                self._open_layers(f"{t.repo}:{t.tag}", t.destination)
        elif event.table.id == "executions":
            self.query_one("#tasks", LiveTable).focus()

    def action_layers(self) -> None:
        if self._layers is not None:
            self._close_layers()
            return
        tab = self._tab()
        if tab == "tab-matrix" and self._key("matrix"):
            self._open_layers(self._key("matrix"), self._registries[self._column] if self._registries else None)
        elif tab == "tab-executions" and self._key("tasks") and self.shown is not None:
            t = self.shown.tasks.get(self._key("tasks"))
            if t is not None:
                self._open_layers(f"{t.repo}:{t.tag}", t.destination)
        else:
            self.notify("select an image (Matrix tab) or a task (Executions tab) to see its layers",
                        severity="warning", timeout=3)

    def _open_layers(self, image: str, registry: str | None) -> None:
        self._layers = (image, registry)
        self.query_one("#layers-head", Static).update(Text(f"reading the layers of {image}…", style="dim"))
        self.query_one("#blobs", LiveTable).sync([])
        self.query_one("#layers-foot", Static).update("")
        self.add_class("-layers")
        self.call_after_refresh(self.query_one("#blobs", LiveTable).focus)  # once shown
        self._read_layers(image, registry)

    @work(thread=True, group="registry-layers", exit_on_error=False, description="read an image's layers")
    def _read_layers(self, image: str, registry: str | None) -> None:
        try:
            view, error = self.cockpit_app.cockpit.image_layers(image, registry), None
        except Exception as e:  # a locked or damaged store: the pane says so
            view, error = None, f"cannot read the layers of {image}: {type(e).__name__}: {e}"
        if view is not None:
            head, rows, foot = layers_text(view)
        else:
            head, rows, foot = Text(error or f"no registry holds {image}", style="bold red"), [], Text("")
        self.on_loop(self._show_layers, (image, registry), head, rows, foot)

    def _show_layers(self, asked: tuple[str, str | None], head: Text, rows: list, foot: Text) -> None:
        if self._layers != asked or not self.is_attached:
            return  # closed, or another image asked for since
        self.query_one("#layers-head", Static).update(head)
        self.query_one("#blobs", LiveTable).sync(rows)
        self.query_one("#layers-foot", Static).update(foot)

    def _close_layers(self, refocus: bool = True) -> None:
        if self._layers is None:
            return
        self._layers = None
        self.remove_class("-layers")
        if refocus:
            tables = self.query(f"#{self._tab()} LiveTable")
            if tables:
                self.call_after_refresh(tables.first().focus)

    def handle_escape(self) -> bool:
        if self._layers is not None:
            self._close_layers()
            return True
        if self.focused is self.query_one("#tasks", LiveTable):
            self.query_one("#executions", LiveTable).focus()
            return True
        return super().handle_escape()

    # --- actions ------------------------------------------------------------------------------------

    def _replicate_defaults(self) -> tuple[str, str]:
        """The policy and image the form starts with: the image selected (matrix row, layers pane,
        task) and a policy that covers it into the selected registry; else the selected policy."""
        world = self.cockpit_app.cockpit.world
        tab, image, into = self._tab(), "", None
        if self._layers is not None:
            image, into = self._layers
        elif tab == "tab-matrix":
            image = self._key("matrix") or ""
            into = self._registries[self._column] if self._registries else None
        elif tab == "tab-executions" and self.focused is self.query_one("#tasks", LiveTable) and self.shown:
            t = self.shown.tasks.get(self._key("tasks") or "")
            if t is not None:
                image, into = f"{t.repo}:{t.tag}", t.destination
        if tab == "tab-policies" and self._key("policies"):
            return self._key("policies"), image
        repo, _, tag = image.rpartition(":")

        def covers(p) -> bool:
            return bool(image) and p.repositories.allows(repo) and p.tags.allows(tag)

        ranked = ([p for p in world.replication if covers(p) and into in p.destinations]
                  + [p for p in world.replication if covers(p)] + list(world.replication))
        return (ranked[0].name if ranked else ""), image

    def action_replicate(self) -> None:
        world = self.cockpit_app.cockpit.world
        if not world.replication:
            self.notify("no replication policy in this world: add one under `replication:` in the world file",
                        severity="error")
            return
        policy, image = self._replicate_defaults()
        names = tuple(p.name for p in world.replication)
        note = "\n".join(f"{p.name}: {p.source} → {', '.join(p.destinations)} ({trigger_text(p.trigger, p.schedule)})"
                         for p in world.replication)
        fields = [Field("policy", "Policy", policy, names),
                  Field("images", "Images (NAME:TAG, comma-separated; empty: every image the policy covers)", image,
                        placeholder="every image")]

        def chosen(v: dict | None) -> None:
            if v is not None:
                self._confirm_replicate(world, v["policy"], v["images"])

        self.cockpit_app.push_screen(FormScreen("Start a replication", fields, submit="Replicate…", note=note),
                                     callback=chosen)

    def _confirm_replicate(self, world: World, name: str, images_text: str) -> None:
        """The form's answer, checked; then what it will do, to confirm."""
        images = [x for x in re.split(r"[,\s]+", images_text) if x]
        why = self.cockpit_app.cockpit.replication_refusal(name, images)  # the CLI's check, shared
        if why is not None:
            self.notify(why, severity="error")
            return
        p = world.policy(name)
        what = ", ".join(images[:5]) + (f" and {len(images) - 5} more" if len(images) > 5 else "")
        override = ("a tag that holds another digest there is replaced (override)" if p.override else
                    "a tag that holds another digest there is reported as a conflict and left alone")
        body = (f"Replicate {what or 'every image it covers'} with policy {p.name}: "
                f"{p.source} → {', '.join(p.destinations)}.\n"
                f"Only what each destination lacks is copied; {override}.")
        app = self.cockpit_app
        app.perform("registry.replicate", body, lambda: app.cockpit.replicate(p.name, images or None))

    def action_stop(self) -> None:
        e = self.shown.executions.get(self._key("executions") or "") if self.shown else None
        if self._tab() != "tab-executions" or e is None:
            self.notify("select a replication (Executions tab) to stop", severity="warning")
            return
        if e.state not in ACTIVE:
            self.notify(f"replication {e.id} is {e.state}: there is nothing to stop", severity="warning")
            return
        app = self.cockpit_app
        app.perform("registry.stop", f"Stop replication {e.id} ({e.policy}, {e.settled} of {e.tasks_total} tasks "
                    "settled).\nThe copies under way finish first; the tasks not started are not run.",
                    lambda: app.cockpit.stop_replication(e.id))

