"""`:services`: each service with its containers per IDC (running, starting, stopping, on how many
hosts), what discovery holds of it against what runs (in words: all in, some missing, stale ones
left, or the discovery store's error), and the selected service's containers (IDC, host, state,
address:port). `+` and `-` start a flow for the selected service (the form of :tasks, prefilled:
its IDC is where it runs most).

Containers come and go on the wall clock while flows run, also while the platform clock is
paused: the store (and the discovery store, through the facade) is read every tick of the wall
clock while the view is on top, in a thread; rows are built in a thread and shown in one update."""

from __future__ import annotations

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import Static

from cockpit.engine.actions import Outcome
from cockpit.engine.facade_flows import FlowAsk
from cockpit.screens.base import OneRead, PolledView
from cockpit.screens.flow_form import FlowStarter
from cockpit.widgets.flow_rows import (
    CONTAINER_COLUMNS,
    ServicesPaint,
    ServicesRead,
    ServicesShown,
    compute_services,
    main_idc,
    service_detail,
    service_columns,
)
from cockpit.widgets.live_table import LiveTable


class ServicesScreen(FlowStarter, OneRead, PolledView):
    VIEW = "services"
    ALIASES = ("service", "svc", "discovery")
    HELP = "Services: containers per IDC and host, discovery health; expand or shrink"
    CSS_PATH = "services.tcss"
    AUTO_FOCUS = "#services"

    BINDINGS = [
        Binding("plus", "expand", "Expand…", id="services.expand"),
        Binding("minus", "shrink", "Shrink…", id="services.shrink"),
    ]
    ACTION_IDS = {"expand": "flow.start", "shrink": "flow.start"}

    def __init__(self) -> None:
        super().__init__()
        self._read_data: ServicesRead | None = None
        self._selected: str | None = None
        self._flows: dict[str, int] = {}  # service -> the last flow started for it from here
        self.shown: ServicesShown | None = None

    def body(self) -> ComposeResult:
        yield Static("reading the services…", id="summary")
        yield LiveTable(service_columns(self.cockpit_app.cockpit.world), id="services")
        yield Static("", id="service-detail")
        yield LiveTable(CONTAINER_COLUMNS, id="containers")

    def on_mount(self) -> None:
        super().on_mount()
        self.load()

    # --- reading the store (threads only) ---------------------------------------------------------

    def _start_read(self) -> None:
        self._read(self._selected)

    @work(thread=True, group="services-read", exit_on_error=False, description="read the services")
    def _read(self, selected: str | None) -> None:
        c = self.cockpit_app.cockpit
        read, error = None, None
        try:
            services = c.services_view()
            names = [s.name for s in services]
            if selected not in names:
                selected = names[0] if names else None
            read = ServicesRead(services, selected, c.service_containers(selected) if selected else [])
        except Exception as e:  # a locked or damaged store: say so, keep what is shown
            error = f"{type(e).__name__}: {e}"
        self.on_loop(self._read_done, read, error)

    def _take(self, read: ServicesRead) -> bool:
        changed = self.shown is None or read != self._read_data
        self._read_data = read
        return changed

    # --- painting ---------------------------------------------------------------------------------

    def paint_state(self) -> ServicesPaint:
        idcs = tuple(i.name for i in self.cockpit_app.cockpit.world.idcs)
        return ServicesPaint(self._read_data, idcs, self._selected, self.query_text.strip())

    def compute(self, state: ServicesPaint) -> ServicesShown:
        return compute_services(state)

    def show(self, shown: ServicesShown) -> None:
        self.shown = shown
        services = self.query_one("#services", LiveTable)
        services.sync(shown.rows["services"])
        if shown.selected is not None and services.current_key() != shown.selected:
            services.move_to_key(shown.selected)
        self.query_one("#containers", LiveTable).sync(shown.rows["containers"])
        summary = shown.summary
        summary = self._with_error(summary)
        self.query_one("#summary", Static).update(summary)
        s = shown.services.get(shown.selected or "")
        detail = service_detail(s, self._flows.get(s.name)) if s is not None else shown.detail
        self.query_one("#service-detail", Static).update(detail)

    def on_live_table_highlighted(self, event: LiveTable.Highlighted) -> None:
        if event.table.id == "services" and event.key is not None and event.key != self._selected:
            self._selected = event.key
            self.repaint()
            self.load()  # its containers, without waiting for the next read

    def on_live_table_selected(self, event: LiveTable.Selected) -> None:
        if event.table.id == "services":
            self.query_one("#containers", LiveTable).focus()

    def handle_escape(self) -> bool:
        if self.focused is self.query_one("#containers", LiveTable):
            self.query_one("#services", LiveTable).focus()
            return True
        return super().handle_escape()

    # --- actions ------------------------------------------------------------------------------------

    def _form(self, kind: str) -> None:
        s = self.shown.services.get(self._selected or "") if self.shown is not None else None
        if s is None:
            self.notify(f"select a service to {kind}", severity="warning", timeout=3)
            return
        self.open_flow_form({"kind": kind, "service": s.name, "count": "1", "idc": main_idc(s) or ""})

    def action_expand(self) -> None:
        self._form("expand")

    def action_shrink(self) -> None:
        self._form("shrink")

    def flow_started(self, ask: FlowAsk, outcome: Outcome) -> None:
        if outcome.ok and outcome.task is not None:
            self._flows[ask.service] = outcome.task
            if self.shown is not None:
                self.show(self.shown)
