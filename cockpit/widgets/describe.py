"""The describe pane of `:hosts` (k9s's `d`escribe, lazydocker's enter): one host in full — where
it is, what it is, its labels, state and initialisation, cost, its containers and its history.
It scrolls; enter or esc closes it (the screen decides what closing means)."""

from __future__ import annotations

from datetime import datetime, tzinfo

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.message import Message
from textual.widgets import Static

from cockpit.engine.facade_hosts import ContainerView, HostDetail
from cockpit.widgets.scroll_keys import scroll_bindings

LEVEL_STYLE = {"warn": "yellow", "error": "bold red"}
INIT_STYLE = {"ready": "green", "pending": "yellow", "initialising": "yellow", "failed": "bold red",
              "timed_out": "bold red"}


def _when(t: float | None, tz: tzinfo, fmt: str = "%d %b %H:%M") -> str:
    return "-" if t is None else datetime.fromtimestamp(t, tz).strftime(fmt)


def _endpoint(c: ContainerView) -> str:
    """address:host port→container port, each published port once."""
    ports = ",".join(f"{hp}→{cp}" if hp != cp else str(cp) for cp, hp in c.ports)
    if c.address and ports:
        return f"{c.address}:{ports}"
    return c.address or ports or "-"


def _pct(used: float, cap: float, unit: str = "") -> str:
    share = f" ({100 * used / cap:.0f}%)" if cap else ""
    return f"{used:,g}/{cap:,g}{unit}{share}"


def describe(d: HostDetail, tz: tzinfo) -> RenderableType:
    """The pane's text for one host, platform times in the world's zone `tz`."""
    state = Text("DOWN", "bold red") if not d.alive else Text("up", "green")
    if not d.alive and d.down_until_t is not None:
        state.append(f" (repair by {_when(d.down_until_t, tz)})", "red")
    if d.released_t is not None:
        state = Text(f"released {_when(d.released_t, tz)}", "bold")
    init = Text(d.status.replace("_", " "), INIT_STYLE.get(d.status, ""))
    if d.init_task:
        init.append(f" at {d.init_task}")
    if d.status_detail:
        init.append(f": {d.status_detail}", "red")
    where = f"{d.source}" + (f" in {d.zone}" if d.zone else "") + (f", {d.instance_id}" if d.instance_id else "")
    if d.order is not None:
        where += f" (ECS order {d.order})"
    cost = f"{d.charge_type}: {d.per_month:,.2f} a month ({d.per_hour:,.2f} an hour)"
    if d.expires_t is not None:
        cost += f"; expires {_when(d.expires_t, tz)}"
    labels = " ".join(f"{k}={v}" for k, v in sorted(d.labels.items())) or "(none)"

    def line(key: str, *value: str | Text) -> Text:
        return Text.assemble((f"{key:<10}", "bold"), *value)

    head = [
        Text(d.name, "bold reverse"),
        line("State", state, "  initialisation ", init),
        line("IDC", d.idc, "   pool ", (d.pool, "bold"), f"   group {d.group}"),
        line("Hardware", f"{d.hardware}: {d.cores} cores, {d.memory_gb} GB, {d.disk_gb:,} GB disk"),
        line("Source", where),
        line("Address", d.address or "(not known yet)"),
        line("Labels", labels),
        line("Reserved", f"CPU {_pct(d.cpu_alloc, d.cores)}  mem {_pct(d.mem_alloc, d.memory_gb, ' GB')}"
                         f"  disk {_pct(d.disk_alloc, d.disk_gb, ' GB')}"),
        line("Cost", cost),
        line("Since", _when(d.created_t, tz)),
    ]
    ctrs = Table(box=None, pad_edge=False, padding=(0, 1), show_edge=False, expand=False,
                 header_style="bold", title=f"Containers ({len(d.containers)})", title_justify="left",
                 title_style="bold")
    for col in ("Service", "Name", "Address:ports", "State"):
        ctrs.add_column(col, overflow="fold")
    for c in d.containers:
        ctrs.add_row(c.service, c.name, _endpoint(c), Text(c.state, "green" if c.state == "running" else "yellow"))
    history = Text.assemble((f"History ({len(d.history)}, newest first)", "bold"))
    for h in d.history:
        history.append(f"\n{_when(h.t, tz)}  ")
        history.append(h.text, LEVEL_STYLE.get(h.level, ""))
    if not d.history:
        history.append("\n(no pool moves or events)", "dim")
    return Group(*head, Text(""), ctrs if d.containers else Text("Containers: none", "bold"), Text(""), history)


class HostDescribe(VerticalScroll, can_focus=True):
    """Scrolls with the keys every table moves with; enter asks to close (esc goes through the
    screen)."""

    BINDINGS = [
        Binding("enter", "close", "Close", id="describe.close"),
        *scroll_bindings(),
    ]

    class Close(Message):
        """The user is done with the pane."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.host: str | None = None

    def compose(self):
        yield Static("", id="describe-body")

    def reading(self, host: str) -> None:
        self.host = host
        self.query_one("#describe-body", Static).update(Text(f"reading {host}…", "dim"))
        self.scroll_home(animate=False)

    def show_detail(self, host: str, detail: HostDetail | None, tz: tzinfo) -> None:
        """Put `detail` on the pane (None: the host is gone), if the pane is still on `host`."""
        if host != self.host or not self.is_attached:
            return
        body = describe(detail, tz) if detail is not None else Text(f"no host named {host} any more", "bold red")
        self.query_one("#describe-body", Static).update(body)

    def show_failure(self, host: str, why: str) -> None:
        if host == self.host and self.is_attached:
            self.query_one("#describe-body", Static).update(Text(f"{host}: could not read it: {why}", "bold red"))

    def action_close(self) -> None:
        self.post_message(self.Close())
