"""What `:registry` shows, built from the facade's views off the event loop: the columns of each
table (sized from the world), the rows (filtered by `/`), the summary line and the details under
each table, and the layers pane's text. Pure: no widget, no store."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import tzinfo

from rich.text import Text

from cockpit.core.replication import Cell
from cockpit.domain import World
from cockpit.engine.facade_registry import (
    ACTIVE,
    ExecutionView,
    LayersView,
    MatrixView,
    PolicyView,
    RegistryNode,
    ReplicationTaskView,
)
from cockpit.widgets.filter_bar import matches
from cockpit.widgets.live_table import Column
from cockpit.widgets.registry_cells import (
    CELL_WIDTH,
    STATE_STYLE,
    cell_text,
    health_text,
    mb_text,
    mbps_text,
    progress_bar,
    short_digest,
    short_names,
    size_text,
    trigger_text,
    tree_prefixes,
    when_text,
)


def _width(values, least: int, most: int) -> int:
    return max(least, min(most, max((len(v) for v in values), default=least)))


def _right(value: str, style: str = "") -> Text:
    return Text(value, justify="right", style=style)


# --- columns, sized from the world ---------------------------------------------------------------


def registry_order(world: World) -> list[str]:
    """The registries by importance for the matrix's columns: the tops of the topology first,
    then one level down, and so on (file order within a level); the last go first when narrow."""
    index = {r.name: k for k, r in enumerate(world.registries)}
    return sorted(index, key=lambda n: (world.depth(n), index[n]))


def matrix_columns(world: World) -> tuple[list[Column], list[str]]:
    """The image, then one narrow column per registry in the file's order; when the terminal is
    too narrow the deepest registries go first, the tops of the topology stay."""
    names = [r.name for r in world.registries]
    rank = {n: k for k, n in enumerate(registry_order(world))}
    short = short_names(names)
    images = [i.ref for i in world.images] + [r.image for r in world.releases]
    cols = [Column("Image", "image", _width(images, 12, 28))]
    cols += [Column(short[n], n, CELL_WIDTH, drop=rank[n]) for n in names]
    return cols, names


def topology_columns(world: World) -> list[Column]:
    """The name (with its tree lines, and its peer for a dual master) and the health always stay;
    narrower than 80 columns the role goes first (the tree says it), then the IDC, then the count."""
    names = []
    for r in world.registries:
        peer = world.dual_peer(r.name)
        names.append("   " * world.depth(r.name) + r.name + (f" ⇄ {peer}" if peer else ""))
    return [
        Column("Registry", "name", _width(names, 8, 32)),
        Column("IDC", "idc", _width([r.idc for r in world.registries], 3, 12), drop=2),
        Column("Role", "role", 11, drop=3),
        Column("Images", "images", 6, drop=1),
        Column("Health", "health", None),
    ]


def policy_columns(world: World) -> list[Column]:
    return [
        Column("Policy", "name", _width([p.name for p in world.replication], 6, 16)),
        Column("Source → destinations", "route", None),
        Column("Trigger", "trigger", _width([trigger_text(p.trigger, p.schedule) for p in world.replication], 7, 17),
               drop=2),
        Column("Ovr", "override", 3, drop=4),
        Column("Del", "deletions", 3, drop=5),
        Column("Cap", "bandwidth", 9, drop=1),
        Column("Conc", "concurrency", 4, drop=3),
    ]


# Narrower than 80 columns the trigger goes first (the line below says it), then the MB moved,
# then the throughput; the progress bar stays down to 60 columns.
EXECUTION_COLUMNS = [
    Column("#", "id", 4),
    Column("Policy", "policy", None),
    Column("Trigger", "trigger", 7, drop=5),
    Column("State", "state", 9),
    Column("Progress", "bar", 10, drop=1),
    Column("Tasks", "tasks", 7),
    Column("Fail", "failed", 4),
    Column("Conf", "conflict", 4),
    Column("MB", "mb", 7, drop=4),
    Column("MB/s", "rate", 6, drop=3),
]


def task_columns(world: World) -> list[Column]:
    images = [i.ref for i in world.images] + [r.image for r in world.releases]
    return [
        Column("Image", "image", _width(images, 12, 28)),
        Column("To", "to", _width([r.name for r in world.registries], 4, 16)),
        Column("Action", "action", 9, drop=3),
        Column("State", "state", 9),
        Column("MB", "mb", 7, drop=2),
        Column("Try", "attempts", 3, drop=4),
        Column("Error", "error", None),
    ]


BLOB_COLUMNS = [Column("Blob", "digest", 19), Column("Size", "size", 9), Column("Shared with", "shared", None)]


# --- what a read of the store gives, and the rows built from it (in threads) ------------------------


@dataclass(frozen=True, repr=False)
class Read:
    tree: list[RegistryNode]
    policies: list[PolicyView]
    executions: list[ExecutionView]
    tasks_of: int | None
    tasks: list[ReplicationTaskView]
    matrix: MatrixView | None  # None: not read this time (the last one stands)

    def __repr__(self) -> str:  # Textual describes a worker by its arguments' repr
        return f"Read({len(self.tree)} registries, {len(self.executions)} executions)"


@dataclass(frozen=True, repr=False)
class Paint:
    tree: list[RegistryNode]
    policies: list[PolicyView]
    executions: list[ExecutionView]
    tasks: list[ReplicationTaskView]
    matrix: MatrixView | None
    registries: list[str]  # the matrix's columns
    query: str

    def __repr__(self) -> str:
        return f"Paint({len(self.tree)} registries, {self.query!r})"


@dataclass(frozen=True, repr=False)
class Shown:
    rows: dict[str, list[tuple[str, tuple]]]  # table id -> rows
    nodes: dict[str, RegistryNode]
    policies: dict[str, PolicyView]
    executions: dict[str, ExecutionView]
    tasks: dict[str, ReplicationTaskView]
    cells: dict[str, dict[str, Cell]]  # image -> registry -> cell
    summary: Text

    def __repr__(self) -> str:
        return f"Shown({ {k: len(v) for k, v in self.rows.items()} })"


def role_text(n: RegistryNode) -> str:
    return "dual master" if n.peer else n.role


def topology_rows(tree: list[RegistryNode], q: str) -> list[tuple[str, tuple]]:
    """A row per registry, under the one it replicates from; a dual master names its peer (⇄)."""
    prefixes = tree_prefixes([n.depth for n in tree])
    rows = []
    for prefix, n in zip(prefixes, tree):
        health = health_text(n.ok, n.error, n.latency_ms)
        if q and not matches(q, f"{n.name} {n.idc} {role_text(n)} {n.parent or ''} {n.peer or ''} {health.plain}"):
            continue
        name = Text.assemble((prefix, "dim"), (n.name, "bold" if n.depth == 0 else ""),
                             (f" ⇄ {n.peer}" if n.peer else "", "cyan"))
        rows.append((n.name, (name, n.idc, role_text(n), _right(str(n.images)), health)))
    return rows


def policy_rows(policies: list[PolicyView], q: str) -> list[tuple[str, tuple]]:
    rows = []
    for p in policies:
        route = f"{p.source} → {', '.join(p.destinations)}"
        trigger = trigger_text(p.trigger, p.schedule)
        if q and not matches(q, f"{p.name} {route} {trigger} {p.repositories} {p.tags}"):
            continue
        rows.append((p.name, (p.name, route, trigger, "yes" if p.override else "no",
                              "yes" if p.deletions else "no", mbps_text(p.bandwidth_mbps),
                              _right(str(p.concurrency)))))
    return rows


def execution_cells(e: ExecutionView) -> tuple:
    style = STATE_STYLE.get(e.state, "")
    return (
        _right(str(e.id)), e.policy, e.trigger, Text(e.state, style=style),
        Text(progress_bar(e.settled, e.tasks_total, finished=e.state not in ACTIVE),
             style="green" if e.state == "succeeded" else "cyan"),
        _right(f"{e.settled}/{e.tasks_total}"),
        _right(str(e.tasks_failed) if e.tasks_failed else "", "bold red"),
        _right(str(e.tasks_conflict) if e.tasks_conflict else "", "bold red"),
        _right(mb_text(e.bytes_moved)),
        _right(mb_text(e.throughput_bps) if e.throughput_bps else ""),
    )


def task_cells(t: ReplicationTaskView) -> tuple:
    return (
        f"{t.repo}:{t.tag}", t.destination, t.action, Text(t.state, style=STATE_STYLE.get(t.state, "")),
        _right(mb_text(t.bytes_moved)), _right(str(t.attempts)), Text(t.error or "", style="red"),
    )


def matrix_rows(m: MatrixView | None, registries: list[str], q: str) -> tuple[list, dict[str, dict[str, Cell]]]:
    rows, cells = [], {}
    for image, row in (m.rows if m else []):
        texts = [cell_text(row.get(r)) for r in registries]
        if q and not matches(q, image + " " + " ".join(t.plain for t in texts)):
            continue
        cells[image] = row
        rows.append((image, (image, *texts)))
    return rows, cells


def summary_text(p: Paint) -> Text:
    """One line, what matters first (it is cut at the right when narrow): registries down, images
    not in sync, replications under way, then how many registries there are."""
    down = sum(1 for n in p.tree if n.ok is False)
    active = sum(1 for e in p.executions if e.state in ACTIVE)
    counts = {"behind": 0, "failed": 0, "conflict": 0}
    for _, row in (p.matrix.rows if p.matrix else []):
        for c in row.values():
            if c.state in counts:
                counts[c.state] += 1
    parts: list = []
    if down:
        parts.append((f"{down} registr{'y' if down == 1 else 'ies'} DOWN · ", "bold red"))
    if p.matrix is None:
        parts.append("reading the images…")
    elif not any(counts.values()):
        parts.append((f"{len(p.matrix.rows)} images all in sync", "green"))
    else:
        parts.append(f"{counts['behind']} behind, ")
        parts.append((f"{counts['failed']} FAILED", "bold red" if counts["failed"] else ""))
        parts.append(", ")
        parts.append((f"{counts['conflict']} CONFLICT", "bold red" if counts["conflict"] else ""))
    parts.append(f" · {active or 'no'} replication{'s' if active != 1 else ''} under way · {len(p.tree)} registries")
    if p.query:
        parts.append((f" · filter: {p.query}", "italic"))
    return Text.assemble(*parts)


def compute_rows(p: Paint) -> Shown:
    q = p.query
    mrows, cells = matrix_rows(p.matrix, p.registries, q)
    executions = [e for e in p.executions
                  if not q or matches(q, f"{e.id} {e.policy} {e.trigger} {e.state} {e.actor} {e.error or ''}")]
    tasks = [t for t in p.tasks
             if not q or matches(q, f"{t.repo}:{t.tag} {t.destination} {t.action} {t.state} {t.error or ''}")]
    return Shown(
        rows={"topology": topology_rows(p.tree, q), "policies": policy_rows(p.policies, q),
              "executions": [(str(e.id), execution_cells(e)) for e in executions],
              "tasks": [(str(t.id), task_cells(t)) for t in tasks], "matrix": mrows},
        nodes={n.name: n for n in p.tree}, policies={x.name: x for x in p.policies},
        executions={str(e.id): e for e in executions}, tasks={str(t.id): t for t in tasks},
        cells=cells, summary=summary_text(p),
    )


# --- the details under each table ------------------------------------------------------------------


def node_detail(n: RegistryNode) -> Text:
    if n.peer:
        where = f"dual master with {n.peer}: each replicates the other's pushes"
    elif n.parent:
        where = f"slave of {n.parent}"
    else:
        where = "master: the top of its tree"
    health = health_text(n.ok, n.error, n.latency_ms)
    if n.checked_real is not None:
        health.append(f" (checked {max(time.time() - n.checked_real, 0):.0f} s ago)", style="dim")
    return Text("\n").join([
        Text.assemble((n.name, "bold"), f" in {n.idc}, {where}"),
        Text(f"{n.images} images held · link {n.link_mbps:g} Mb/s into it (simulated platform)"),
        health,
    ])


def policy_detail(p: PolicyView) -> Text:
    trigger = {"event": f"event (each push to {p.source})", "manual": "manual (r starts it)",
               "cron": f"cron {p.schedule} (the world's time zone)"}.get(p.trigger, p.trigger)
    cap = f"capped at {mbps_text(p.bandwidth_mbps)}" if p.bandwidth_mbps else "no bandwidth cap"
    override = ("yes (another digest there is replaced)" if p.override else
                "no (another digest there is a conflict, left alone)")
    return Text("\n").join([
        Text.assemble((p.name, "bold"), f": {p.source} → {', '.join(p.destinations)}"),
        Text(f"trigger: {trigger}"),
        Text(f"repositories: {p.repositories} · tags: {p.tags}"),
        Text(f"override: {override}"),
        Text(f"deletions: {'replicated' if p.deletions else 'not replicated'} · {p.concurrency} transfers at once · "
             f"{cap}"),
    ])


def execution_detail(e: ExecutionView, tz: tzinfo) -> Text:
    """The selected execution on one line (the table has its numbers): who, when, what."""
    scope = ", ".join(f"{r}:{t}" for r, t in e.scope) if e.scope else "every image the policy covers"
    line = Text.assemble((f"#{e.id} {e.policy}", "bold"),
                         f" {e.trigger} by {e.actor}, queued {when_text(e.created_t, tz, '%d %b %H:%M:%S')}: {scope}")
    if e.error:
        line.append(f"; {e.error}", style="bold red")
    return line


def task_detail(t: ReplicationTaskView) -> Text:
    """The selected task, its error in full (it wraps)."""
    tries = f"{t.attempts} attempt{'s' if t.attempts != 1 else ''}"
    line = Text.assemble((f"{t.repo}:{t.tag}", "bold"), f" → {t.destination}: {t.action} ",
                         (t.state, STATE_STYLE.get(t.state, "")), f", {tries}, {size_text(t.bytes_moved)} moved")
    if t.error:
        line.append(": ")
        line.append(t.error, style="red")
    return line


def layers_text(v: LayersView) -> tuple[Text, list[tuple[str, tuple]], Text]:
    """The layers pane: the image, its blobs with the images that share each, what sharing saves."""
    total = sum(n for _, n, _ in v.blobs)
    shared = sum(n for _, n, others in v.blobs if others)
    head = Text("\n").join([
        Text.assemble((v.image, "bold"), " at ", (v.registry, "bold"), f": {short_digest(v.digest, 16)}",
                      ("  esc: back", "dim")),
        Text(f"{len(v.blobs)} blobs, {size_text(total)} (the config, then the layers) · {v.media_type}", style="dim"),
    ])
    rows = []
    for k, (digest, size, others) in enumerate(v.blobs):
        with_ = f"{len(others)}: {', '.join(others)}" if others else "only this image"
        rows.append((f"{k}:{digest}", (short_digest(digest), _right(size_text(size)),
                                       Text(with_, style="" if others else "dim"))))
    s = v.sharing
    images = len({i for layer in s.layers for i in layer.images})
    foot = Text("\n").join([
        Text(f"This image: {size_text(shared)} of {size_text(total)} is in other images here too; a registry "
             f"holding them receives {size_text(total - shared)} for it."),
        Text(f"{v.registry} ({images} images): {size_text(s.stored)} stored instead of {size_text(s.unshared)}. "
             f"Sharing saves {size_text(s.saved_storage)} of storage, and {size_text(s.saved_transfer)} of "
             "transfer to an empty registry."),
    ])
    return head, rows, foot
