"""What `:tasks` and `:services` show of expansion flows, built from the facade's views off the
event loop: the columns (sized from the world), the rows (filtered by `/`), the summary lines and
the details, an item's log, and the new-flow form's fields and their check. Pure: no widget, no
store. Every state is a word, so the views read the same without colour (NO_COLOR)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, tzinfo

from rich.text import Text

from cockpit.domain import World
from cockpit.engine.facade_flows import FlowView, ItemView, ServiceView, StepView
from cockpit.widgets.filter_bar import matches
from cockpit.widgets.live_table import Column
from cockpit.widgets.registry_cells import progress_bar

KINDS = ("expand", "shrink")
MAX_COUNT = 10_000  # containers in one flow (core.flow.FlowSpec's bound)
FINISHED = ("done", "failed", "cancelled")
STATE_STYLE = {"queued": "cyan", "running": "bold cyan", "paused": "yellow", "done": "green", "failed": "bold red",
               "cancelled": "dim", "pending": "cyan", "skipped": "dim"}
STEP_MARK = {"done": ("✓ done", "green"), "running": ("▶ running", "bold cyan"),
             "failed": ("✗ failed", "bold red"), "waiting": ("· waiting", "dim"), "paused": ("‖ paused", "yellow"), "stopped": ("■ stopped", "dim")}


def _width(values: Sequence[str], least: int, most: int) -> int:
    return max(least, min(most, max((len(v) for v in values), default=least)))


def _right(value: str, style: str = "") -> Text:
    return Text(value, justify="right", style=style)


# --- columns ------------------------------------------------------------------------------------------


def flow_columns(world: World) -> list[Column]:
    """At 80 columns the actor goes first (the line below names it), then the item count (the bar
    shows the share); at 60 the IDC, the age and the bar go too. The step stays: it is the news."""
    return [
        Column("#", "id", 4),
        Column("Service", "service", _width([s.name for s in world.services], 7, 14)),
        Column("Change", "change", 6),
        Column("IDC", "idc", _width([i.name for i in world.idcs], 3, 10), drop=4),
        Column("State", "state", 9),
        Column("Step", "step", 24),
        Column("Progress", "bar", 8, drop=2),
        Column("Done", "items", 7, drop=5),
        Column("Age", "age", 4, drop=3),
        Column("Actor", "actor", None, drop=6),
    ]


STEP_COLUMNS = [
    Column("State", "state", 9),
    Column("Step", "title", 20),
    Column("Note", "note", None),
    Column("Took", "took", 7, drop=1),
]

ITEM_COLUMNS = [
    Column("Host or container", "name", 18),
    Column("On host", "host", 16, drop=2),
    Column("Step", "step", 12),
    Column("State", "state", 8),
    Column("Try", "attempts", 3, drop=1),
    Column("Last error", "error", None),
]

LOG_COLUMNS = [
    Column("Time", "t", 12),
    Column("Step", "step", 12, drop=1),
    Column("What", "text", None),
]


def service_columns(world: World) -> list[Column]:
    """A column per IDC (running, +starting, -stopping, on how many hosts). Narrower than 80
    columns the image goes first (the line below has it), then the kind, then the last IDCs."""
    idcs = [i.name for i in world.idcs]
    cols = [Column("Service", "service", _width([s.name for s in world.services], 7, 14)),
            Column("Kind", "kind", 5, drop=99)]
    cols += [Column(idc[:14], idc, 14, drop=10 + k) for k, idc in enumerate(idcs)]
    cols += [Column("Disc", "disc", 5, drop=5), Column("Health", "health", None),
             Column("Image", "image", 24, drop=100)]
    return cols


CONTAINER_COLUMNS = [
    Column("Container", "name", 16),
    Column("IDC", "idc", 9, drop=2),
    Column("Host", "host", 16, drop=1),
    Column("State", "state", 8),
    Column("Address:port", "address", None),
]


# --- cells ---------------------------------------------------------------------------------------------


def sign(kind: str) -> str:
    return "+" if kind == "expand" else "-"


def settled(items: dict) -> tuple[int, int]:
    """(items done, failed or skipped; all items) of a flow."""
    return sum(items.get(s, 0) for s in ("done", "failed", "skipped")), sum(items.values())


def step_at(f: FlowView) -> tuple[int, StepView | None]:
    """Where the flow is: (1-based index, step); a finished flow at its last step (or where it failed)."""
    names = [s.name for s in f.steps]
    if f.step in names:
        return names.index(f.step) + 1, f.steps[names.index(f.step)]
    failed = next((k for k, s in enumerate(f.steps) if s.state == "failed"), None)
    if failed is not None:
        return failed + 1, f.steps[failed]
    if f.state == "done":
        return len(f.steps), f.steps[-1] if f.steps else None
    return 0, None


def step_text(f: FlowView) -> Text:
    """`5/9 container scheduling`; `9/9 done`; `0/9 waiting to start`."""
    k, step = step_at(f)
    n = len(f.steps)
    if f.state == "done":
        return Text(f"{n}/{n} done", style="green")
    if step is None:
        return Text(f"0/{n} waiting to start" if f.state in ("queued", "paused") else f"0/{n} never started",
                    style="dim")
    return Text(f"{k}/{n} {step.title}", style=STATE_STYLE.get(f.state, "") if f.state != "running" else "")


def age_text(seconds: float) -> str:
    s = max(seconds, 0.0)
    if s < 60:
        return f"{s:.0f}s"
    if s < 3600:
        return f"{s / 60:.0f}m"
    if s < 86400:
        return f"{s / 3600:.0f}h"
    return f"{s / 86400:.0f}d"


def flow_cells(f: FlowView, created: float | None, now: float) -> tuple:
    done, total = settled(f.items)
    bar = Text(progress_bar(done, total, width=8, finished=f.state == "done"),
               style="green" if f.state == "done" else "red" if f.items.get("failed") else "cyan")
    return (
        _right(str(f.id)), f.service,
        Text(f"{sign(f.kind)}{f.count}", style="green" if f.kind == "expand" else "yellow"),
        f.idc or "-", Text(f.state, style=STATE_STYLE.get(f.state, "")), step_text(f), bar,
        _right(f"{done}/{total}" if total else "-"), _right(age_text(now - created) if created is not None else "?"),
        f.actor,
    )


def step_mark(s: StepView, flow_state: str) -> Text:
    state = s.state
    if state == "running" and flow_state == "paused":
        state = "paused"
    elif state == "running" and flow_state == "cancelled":
        state = "stopped"
    word, style = STEP_MARK.get(state, (state, ""))
    return Text(word, style=style)


def took_text(s: StepView) -> str:
    if s.seconds is None:
        return "…" if s.state == "running" else ""
    return f"{s.seconds:.2f} s" if s.seconds < 10 else f"{s.seconds:.0f} s"


def step_rows(f: FlowView | None) -> list[tuple[str, tuple]]:
    if f is None:
        return []
    return [(s.name, (step_mark(s, f.state), s.title, Text(s.note, style="red" if s.state == "failed" else ""),
                      _right(took_text(s)))) for s in f.steps]


def item_cells(i: ItemView) -> tuple:
    name = Text(i.name, style="bold" if i.kind == "host" else "")
    host = i.host if i.kind == "container" else Text("(a host)", style="dim")
    return (name, host or "-", i.step, Text(i.state, style=STATE_STYLE.get(i.state, "")), _right(str(i.attempts)),
            Text(i.detail or "", style="red"))


def log_time(real: float) -> str:
    """A log line's wall-clock time (the flow's calls run on it), in this machine's zone."""
    return datetime.fromtimestamp(real).strftime("%H:%M:%S.%f")[:12]


def log_rows(i: ItemView) -> list[tuple[str, tuple]]:
    """A row per log line; the lines that say its last error in red."""
    return [(str(k), (log_time(t), step, Text(text, style="red" if i.detail and i.detail in text else "")))
            for k, (t, step, text) in enumerate(i.log)]


def log_tail(i: ItemView, lines: int = 2) -> Text:
    """The item's last log lines, under the items table."""
    head = Text.assemble((f"{i.kind} {i.name}", "bold"), f" · {i.step} {i.state}, "
                         f"{i.attempts} attempt{'s' if i.attempts != 1 else ''}", (" · enter: the whole log", "dim"))
    tail = [Text.assemble((log_time(t) + " ", "dim"), (f"{step}: ", "cyan"),
                          (text, "red" if i.detail and i.detail in text else "")) for t, step, text in i.log[-lines:]]
    return Text("\n").join([head, *tail])


def log_head(i: ItemView, flow: int) -> Text:
    where = f" on {i.host}" if i.host else ""
    return Text.assemble((f"Log of {i.kind} {i.name}", "bold"), f"{where} · flow {flow} · at {i.step}, ",
                         (i.state, STATE_STYLE.get(i.state, "")),
                         f", {i.attempts} attempt{'s' if i.attempts != 1 else ''} · last {len(i.log)} lines",
                         ("  esc: back", "dim"))


# --- :tasks: what compute() gets and gives ---------------------------------------------------------------


@dataclass(frozen=True, repr=False)
class TasksRead:
    flows: list[FlowView]
    times: dict[int, tuple[float, float]]  # id -> (created, changed), platform time
    now: float  # the platform clock
    items_of: int | None
    items: list[ItemView]

    def __repr__(self) -> str:  # Textual describes a worker by its arguments' repr
        return f"TasksRead({len(self.flows)} flows, {len(self.items)} items of {self.items_of})"


@dataclass(frozen=True, repr=False)
class TasksPaint:
    read: TasksRead | None
    selected: int | None
    query: str
    tz: tzinfo

    def __repr__(self) -> str:
        return f"TasksPaint({self.selected}, {self.query!r})"


@dataclass(frozen=True, repr=False)
class TasksShown:
    rows: dict[str, list[tuple[str, tuple]]]
    flows: dict[str, FlowView]
    items: dict[str, ItemView]
    summary: Text
    detail: Text
    selected: int | None  # the flow whose steps and items show

    def __repr__(self) -> str:
        return f"TasksShown({ {k: len(v) for k, v in self.rows.items()} })"


def flow_haystack(f: FlowView) -> str:
    _, step = step_at(f)
    return (f"{f.id} {f.kind} {f.service} {sign(f.kind)}{f.count} {f.idc or ''} {f.state} {f.actor} "
            f"{step.title if step else ''} {f.reason or ''}")


def compute_tasks(p: TasksPaint) -> TasksShown:
    r, q = p.read, p.query
    if r is None:
        empty = {"flows": [], "steps": [], "items": []}
        return TasksShown(empty, {}, {}, Text("reading the flows…", style="dim"), Text(""), None)
    flows = [f for f in r.flows if not q or matches(q, flow_haystack(f))]
    by_id = {f.id: f for f in flows}
    selected = p.selected if p.selected in by_id else (flows[0].id if flows else None)
    f = by_id.get(selected)
    items = r.items if f is not None and r.items_of == selected else []  # the filter picks the flow
    rows = {"flows": [(str(x.id), flow_cells(x, r.times.get(x.id, (None,))[0], r.now)) for x in flows],
            "steps": step_rows(f), "items": [(str(i.id), item_cells(i)) for i in items]}
    return TasksShown(rows, {str(x.id): x for x in flows}, {str(i.id): i for i in items},
                      tasks_summary(r.flows, q), flow_detail(f, r.times.get(selected), p.tz) if f else
                      Text("No flow matches the filter." if r.flows else
                           "No flows yet: n starts one (scale a service out or in, step by step).", style="dim"),
                      selected)


def tasks_summary(flows: list[FlowView], q: str) -> Text:
    by: dict[str, int] = {}
    for f in flows:
        by[f.state] = by.get(f.state, 0) + 1
    moving = by.get("running", 0) + by.get("queued", 0)
    out = Text()
    out.append(f"{moving or 'no'} flow{'s' if moving != 1 else ''} under way", style="bold cyan" if moving else "")
    if by.get("paused"):
        out.append(f" ({by['paused']} paused)", style="bold yellow")
    out.append(f" · {by.get('done', 0)} done")
    if by.get("failed"):
        out.append(f", {by['failed']} failed", style="bold red")
    if by.get("cancelled"):
        out.append(f", {by['cancelled']} stopped")
    out.append(" · newest first")
    if q:
        out.append(f" · filter: {q}", style="italic")
    return out


def flow_detail(f: FlowView, times: tuple[float, float] | None, tz: tzinfo) -> Text:
    """The selected flow on one line: what, who, when, how far; why it failed or stopped."""
    done, total = settled(f.items)
    when = datetime.fromtimestamp(times[0], tz).strftime("%a %H:%M:%S") if times else "?"
    line = Text.assemble((f"#{f.id} {f.kind} {f.service} {sign(f.kind)}{f.count}", "bold"),
                         f" in {f.idc or '?'} by {f.actor}, {when}")
    if f.parent:
        line.append(f" · for flow {f.parent}'s dependencies")
    if total:
        line.append(f" · {done}/{total} items settled")
        if f.items.get("failed"):
            line.append(f", {f.items['failed']} failed", style="bold red")
    took = sum(s.seconds or 0 for s in f.steps)
    if f.state in FINISHED and took:
        line.append(f" · took {took:.1f} s")
    return line


def flow_reason(f: FlowView | None) -> Text:
    """Why a flow failed or was stopped, in full (it wraps): the line an SRE acts on."""
    if f is None or not f.reason:
        return Text("")
    return Text(f"{'failed' if f.state == 'failed' else f.state}: {f.reason}",
                style="bold red" if f.state == "failed" else "yellow")


# --- :services ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, repr=False)
class ServicesRead:
    services: list[ServiceView]
    containers_of: str | None
    containers: list[tuple[str, str, str, str | None, list]]  # name, IDC, host, state, address:port list

    def __repr__(self) -> str:
        return f"ServicesRead({len(self.services)} services, {len(self.containers)} containers of {self.containers_of})"


@dataclass(frozen=True, repr=False)
class ServicesPaint:
    read: ServicesRead | None
    idcs: tuple[str, ...]
    selected: str | None
    query: str

    def __repr__(self) -> str:
        return f"ServicesPaint({self.selected}, {self.query!r})"


@dataclass(frozen=True, repr=False)
class ServicesShown:
    rows: dict[str, list[tuple[str, tuple]]]
    services: dict[str, ServiceView]
    summary: Text
    detail: Text
    selected: str | None

    def __repr__(self) -> str:
        return f"ServicesShown({ {k: len(v) for k, v in self.rows.items()} })"


def running(s: ServiceView) -> int:
    return sum(c.get("running", 0) for c in s.per_idc.values())


def idc_cell(c: dict | None) -> Text:
    """`2203+3-1 on 560`: running, +starting, -stopping, on how many hosts."""
    if not c or not (c.get("running") or c.get("starting") or c.get("stopping")):
        return _right("—", "dim")
    text = str(c.get("running", 0))
    if c.get("starting"):
        text += f"+{c['starting']}"
    if c.get("stopping"):
        text += f"-{c['stopping']}"
    return _right(f"{text} on {c.get('hosts', 0)}", "bold cyan" if c.get("starting") or c.get("stopping") else "")


def discovery_state(s: ServiceView) -> tuple[str, str, str]:
    """What discovery holds against what runs: (short, in words, style)."""
    if s.discovery_error:
        return "✗ error", f"✗ the discovery store answered: {s.discovery_error}", "bold red"
    if s.kind not in ("http", "rpc"):
        return f"- {s.kind}", f"none: a {s.kind} service is not in discovery", "dim"
    if s.discovered is None:
        return "- not asked", "not asked: no engine runs in this cockpit (its discovery store is the engine's)", "dim"
    run = running(s)
    if s.discovered == run:
        return "✓ in sync", f"✓ all {run} running containers are in discovery", "green"
    if s.discovered < run:
        lack = run - s.discovered
        return f"✗ {lack} missing", f"✗ {lack} running containers are not in discovery", "yellow"
    stale = s.discovered - run
    return f"✗ {stale} stale", f"✗ {stale} in discovery are not running: requests go to nothing", "bold red"


def health(s: ServiceView) -> Text:
    short, _, style = discovery_state(s)
    return Text(short, style=style)


def service_cells(s: ServiceView, idcs: Sequence[str]) -> tuple:
    return (s.name, s.kind,
            *(idc_cell(s.per_idc.get(i)) for i in idcs),
            _right(str(s.discovered) if s.discovered is not None else "—", "" if s.discovered is not None else "dim"),
            health(s), s.image)


def container_cells(c: tuple) -> tuple:
    name, idc, host, state, addresses = c
    return (name, idc, host, Text(state or "?", style=STATE_STYLE.get(state or "", "")),
            ", ".join(addresses) if addresses else Text("-", style="dim"))


def main_idc(s: ServiceView) -> str | None:
    """The IDC that runs most of the service (ties: by name), as the facade chooses for a flow."""
    totals = {idc: c.get("running", 0) + c.get("starting", 0) + c.get("stopping", 0) for idc, c in s.per_idc.items()}
    totals = {k: v for k, v in totals.items() if v}
    return min(totals, key=lambda k: (-totals[k], k)) if totals else None


def compute_services(p: ServicesPaint) -> ServicesShown:
    r, q = p.read, p.query
    if r is None:
        return ServicesShown({"services": [], "containers": []}, {}, Text("reading the services…", style="dim"),
                             Text(""), None)
    rows, by_name = [], {}
    for s in r.services:
        cells = service_cells(s, p.idcs)
        if q and not matches(q, " ".join(c.plain if isinstance(c, Text) else str(c) for c in cells)):
            continue
        by_name[s.name] = s
        rows.append((s.name, cells))
    selected = p.selected if p.selected in by_name else (rows[0][0] if rows else None)
    containers = [(c[0], container_cells(c)) for c in r.containers if r.containers_of == selected] if selected else []
    s = by_name.get(selected) if selected else None
    return ServicesShown({"services": rows, "containers": containers}, by_name, services_summary(r.services, q),
                         service_detail(s) if s else Text("No service matches the filter." if r.services else
                                                          "No services on this platform.", style="dim"), selected)


def services_summary(services: list[ServiceView], q: str) -> Text:
    tot = {"running": 0, "starting": 0, "stopping": 0}
    for s in services:
        for c in s.per_idc.values():
            for k in tot:
                tot[k] += c.get(k, 0)
    off = [s.name for s in services if discovery_state(s)[0].startswith("✗")]
    out = Text(f"{len(services)} services · {tot['running']} containers running")
    if tot["starting"] or tot["stopping"]:
        out.append(f", {tot['starting']} starting, {tot['stopping']} stopping", style="bold cyan")
    if off:
        out.append(f" · discovery off for {', '.join(off)}", style="yellow")
    out.append(" · per IDC: running+starting-stopping on hosts", style="dim")
    if q:
        out.append(f" · filter: {q}", style="italic")
    return out


def service_detail(s: ServiceView, flow: int | None = None) -> Text:
    """Where it runs; what discovery holds (after the flow started for it here, if any); for an
    RPC service, who answers a caller in each IDC."""
    where = ", ".join(f"{idc} {c.get('running', 0)} running on {c.get('hosts', 0)} hosts"
                      + (f" (+{c['starting']} starting)" if c.get("starting") else "")
                      + (f" (-{c['stopping']} stopping)" if c.get("stopping") else "")
                      for idc, c in s.per_idc.items()) or "no containers"
    line = Text.assemble((f"{s.name}", "bold"), f" ({s.kind}) {s.image} · {where}")
    _, words, style = discovery_state(s)
    second = Text.assemble("discovery: ", (words, style))
    if flow is not None:
        second = Text(f"flow {flow} started from here: :tasks follows it · ", style="cyan") + second
    lines = [line, second]
    if s.callers:  # an RPC service: who answers a caller in each IDC
        lines.append(Text("callers ") + Text(" · ").join(_caller(v) for v in s.callers))
    return Text("\n").join(lines)


def _caller(v) -> Text:
    """A caller in one IDC: served by its own IDC's instances (how many), failed over, or none."""
    if v.idc is None:
        return Text(f"{v.own_idc}: none healthy", style="red")
    if v.failed_over:
        return Text(f"{v.own_idc}: → {v.idc} {len(v.instances)}", style="yellow")
    return Text(f"{v.own_idc}: own {len(v.instances)}")


# --- the new-flow form ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FlowRequest:
    kind: str
    service: str
    count: int
    idc: str | None  # None: where the service runs most


def parse_flow_form(values: dict, world: World) -> FlowRequest:
    """The form's fields as a request; ValueError naming the field that is wrong."""
    kind = values.get("kind", "").strip().lower()
    if kind not in KINDS:
        raise ValueError(f"kind: expand (scale out) or shrink (scale in), got {kind!r}")
    service = values.get("service", "").strip()
    names = [s.name for s in world.services]
    if service not in names:
        raise ValueError(f"service: one of {', '.join(names)}, got {service!r}")
    text = values.get("count", "").strip()
    if not text.isascii() or not text.isdigit() or not 1 <= int(text) <= MAX_COUNT:
        raise ValueError(f"containers: a whole number from 1 to {MAX_COUNT}, got {text!r}")
    idc = values.get("idc", "").strip() or None
    idcs = [i.name for i in world.idcs]
    if idc is not None and idc not in idcs:
        raise ValueError(f"IDC: one of {', '.join(idcs)}, or empty for where {service} runs most, got {idc!r}")
    return FlowRequest(kind, service, int(text), idc)
