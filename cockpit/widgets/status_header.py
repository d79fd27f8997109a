"""One line at the top: world, read-only flag, platform clock and speed, engine state, user and role.

The read-only flag comes first so that a narrow terminal never cuts it off."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static


class StatusHeader(Static):

    def show(self, *, world: str, clock: str, engine: str, engine_style: str, who: str, readonly: bool) -> None:
        line = Text.assemble(("Cockpit ", "bold"), (world, "bold"))
        if readonly:
            line.append(" ")
            line.append(" READ-ONLY ", "reverse bold")
        line.append_text(Text.assemble(" │ ", clock, " │ ", (engine, engine_style), " │ ", who))
        self.update(line)
