"""How registry replication reads in the cells of `:registry`: the topology's tree lines, a
registry's health, a policy's route and trigger, an execution's progress, a matrix cell (short in
the cell, in full on the line below) and sizes. Every state is a word, so the view reads the same
without colour (NO_COLOR): colour only repeats what the word says."""

from __future__ import annotations

import os
from collections.abc import Sequence
from datetime import datetime, tzinfo

from rich.text import Text

from cockpit.core.replication import Cell

CELL_WIDTH = 10  # a registry's column in the matrix: "behind 59m" is the longest cell

CELL_STYLE = {"source": "cyan", "in_sync": "green", "behind": "yellow", "missing": "magenta",
              "failed": "bold red", "conflict": "bold red"}
STATE_STYLE = {"pending": "cyan", "running": "bold cyan", "succeeded": "green", "failed": "bold red",
               "stopped": "yellow", "conflict": "bold red"}


# --- the topology ------------------------------------------------------------------------------


def tree_prefixes(depths: Sequence[int]) -> list[str]:
    """The lines before each name of a tree listed depth first (each node after its parent, its
    children next): `├─ ` for a child with siblings after it, `└─ ` for the last, `│  ` where an
    ancestor's siblings are still to come. A depth that jumps by more than one is drawn as one."""
    n = len(depths)
    out = []
    for i, d in enumerate(depths):
        if d <= 0:
            out.append("")
            continue
        parts = []
        for level in range(1, d + 1):
            # is there, further down, another node at this level before the tree climbs above it?
            more = False
            for j in range(i + 1, n):
                if depths[j] < level:
                    break
                if depths[j] == level:
                    more = True
                    break
            if level == d:
                parts.append("├─ " if more else "└─ ")
            else:
                parts.append("│  " if more else "   ")
        out.append("".join(parts))
    return out


def health_text(ok: bool | None, error: str | None, latency_ms: float | None) -> Text:
    """`up 12 ms`, `DOWN: why`, or `not asked yet` (the engine has not pinged it)."""
    if ok is None:
        return Text("not asked yet", style="dim")
    if ok:
        return Text("up" + (f" {latency_ms:.0f} ms" if latency_ms is not None else ""), style="green")
    return Text(f"DOWN: {error or 'no answer'}", style="bold red")


def short_names(names: Sequence[str]) -> dict[str, str]:
    """Column headers for registries: the names without the prefix they all share (`reg-`), cut
    back to a separator so a name is never split mid-word; the names themselves when that leaves
    one empty."""
    if len(names) < 2:
        return {n: n for n in names}
    prefix = os.path.commonprefix(list(names))
    cut = max(prefix.rfind(c) for c in "-_.") + 1
    prefix = prefix[:cut]
    if not prefix or any(len(n) <= len(prefix) for n in names):
        return {n: n for n in names}
    return {n: n[len(prefix):] for n in names}


# --- policies and executions ---------------------------------------------------------------------


def trigger_text(trigger: str, schedule: str | None) -> str:
    return f"cron {schedule}" if trigger == "cron" and schedule else trigger


def mbps_text(mbps: float | None) -> str:
    return "-" if mbps is None else f"{mbps:g} Mb/s"


def progress_bar(done: int, total: int, width: int = 10, finished: bool = False) -> str:
    """Settled of total as a bar; the blocks read without colour. An execution that finished with
    nothing to do is a full bar."""
    filled = min(width, int(width * done / total)) if total > 0 else (width if finished else 0)
    return "█" * filled + "░" * (width - filled)


def size_text(n: float) -> str:
    """Bytes in decimal units (as the MB moved and MB/s columns): `512 B`, `38.2 MB`, `1.20 GB`."""
    n = float(n)
    if n < 1000:
        return f"{n:.0f} B"
    for unit in ("kB", "MB", "GB", "TB"):
        n /= 1000
        if n < 1000 or unit == "TB":
            return f"{n:.1f} {unit}" if n < 100 else f"{n:.0f} {unit}"
    return f"{n:.0f} TB"  # unreachable: the loop returns at TB


def mb_text(n: float) -> str:
    """Bytes as MB, for the MB and MB/s columns."""
    mb = n / 1e6
    return "0" if n <= 0 else f"{mb:.1f}" if mb < 100 else f"{mb:,.0f}"


# --- the matrix --------------------------------------------------------------------------------


def lag_text(seconds: float | None) -> str:
    """A lag in at most three characters: `45s`, `4m`, `59m`, `3h`, `12d`, `15w`, `2y`."""
    if seconds is None:
        return "?"
    s = max(int(seconds), 0)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m"
    if s < 86400:
        return f"{s // 3600}h"
    days = s // 86400
    if days < 100:
        return f"{days}d"
    return f"{days // 7}w" if days < 700 else f"{min(days // 365, 99)}y"


def cell_text(cell: Cell | None) -> Text:
    """The matrix cell: a word (the lag beside `behind`), at most CELL_WIDTH characters."""
    if cell is None:
        return Text("-", style="dim")
    words = {"source": "source", "in_sync": "in sync", "missing": "missing", "failed": "FAILED",
             "conflict": "CONFLICT"}
    text = f"behind {lag_text(cell.lag_s)}" if cell.state == "behind" else words.get(cell.state, cell.state)
    return Text(text, style=CELL_STYLE.get(cell.state, ""))


def short_digest(digest: str | None, n: int = 12) -> str:
    if not digest:
        return "-"
    algo, _, hexpart = digest.partition(":")
    return f"{algo}:{hexpart[:n]}" if hexpart else digest[:n]


def cell_detail(image: str, registry: str, cell: Cell | None, source: str | None) -> Text:
    """The selected cell in full, for the line under the matrix."""
    head = Text.assemble((image, "bold"), " at ", (registry, "bold"), ": ")
    if cell is None:
        return head + Text("not known", style="dim")
    style = CELL_STYLE.get(cell.state, "")
    where = f"{source} is its source" if source else "its source is not known"
    if cell.state == "source":
        body = Text.assemble(("source", style), f": where the others copy it from ({short_digest(cell.digest)})")
    elif cell.state == "in_sync":
        body = Text.assemble(("in sync", style), f": the source's digest ({short_digest(cell.digest)})")
    elif cell.state == "behind":
        body = Text.assemble((f"behind {lag_text(cell.lag_s)}", style),
                             f": not here yet; {where} and has had it for {_long_lag(cell.lag_s)}")
    elif cell.state == "missing":
        body = Text.assemble(("missing", style), ": not here, and no registry holds it")
    elif cell.state == "failed":
        body = Text.assemble(("FAILED", style), f": the last copy here failed: {cell.note or 'no reason given'}")
    elif cell.state == "conflict":
        held = f"holds {short_digest(cell.digest)}, another digest than the source's" if cell.digest else "a conflict"
        body = Text.assemble(("CONFLICT", style), f": {held}; left alone, a person decides"
                             + (f": {cell.note}" if cell.note else ""))
    else:
        body = Text(cell.state)
    return head + body


def _long_lag(seconds: float | None) -> str:
    if seconds is None:
        return "an unknown time"
    s = max(int(seconds), 0)
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    if h:
        return f"{h} h {m} min"
    if m:
        return f"{m} min {sec} s" if sec else f"{m} min"
    return f"{sec} s"


def when_text(t: float | None, tz: tzinfo, fmt: str = "%a %d %b %H:%M:%S") -> str:
    return "-" if t is None else datetime.fromtimestamp(t, tz).strftime(fmt)
