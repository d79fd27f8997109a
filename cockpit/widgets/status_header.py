"""One line at the top: world, read-only flag, platform clock and speed, engine state, user and role.

It always fits the terminal's width: what matters least gives way first (the product's name,
the world's name, the weekday and seconds of the clock, the role), and the read-only flag and the
engine's state (with its staleness) are the last to be shortened."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

SEP = " │ "


class StatusHeader(Static):
    def show(self, *, world: str, clocks: list[str], engine: str, engine_style: str, user: str, role: str,
             readonly: bool) -> None:
        """`clocks`: the platform clock, longest first (each shorter form said with less)."""
        width = (self.content_size.width or self.app.size.width - 2) or 80
        self.update(fit(width, world, clocks, engine, engine_style, user, role, readonly))


def fit(width: int, world: str, clocks: list[str], engine: str, engine_style: str, user: str, role: str,
        readonly: bool) -> Text:
    """The fullest header that fits `width` cells."""
    tries: list[tuple[str, str, str]] = []  # (title, clock, who), richest first
    for clock in clocks:
        tries += [(f"Cockpit {world}", clock, f"{user} ({role})"), (world, clock, f"{user} ({role})"),
                  ("", clock, f"{user} ({role})")]
    tries += [("", clocks[-1], user), ("", "", user), ("", "", "")]
    for title, clock, who in tries:
        line = _line(title, readonly, clock, Text(engine, engine_style), who)
        if line.cell_len <= width:
            return line
    line = _line("", readonly, "", Text(engine, engine_style), "")
    line.truncate(width, overflow="ellipsis")
    return line


def _line(title: str, readonly: bool, clock: str, engine: Text, who: str) -> Text:
    head = [Text(title, "bold")] if title else []
    if readonly:
        head.append(Text(" READ-ONLY ", "reverse bold"))
    fields = ([Text(clock)] if clock else []) + [engine] + ([Text(who)] if who else [])
    line = Text(" ").join(head)
    if head:
        line.append(SEP)
    line.append_text(Text(SEP).join(fields))
    return line
