"""The footer: the keys that work here, as many as fit the terminal's width, with `? keys` always
last so the rest are one key away. Keys the user may not use (read-only, role) are left out."""

from __future__ import annotations

from rich.text import Text
from textual.screen import Screen
from textual.widgets import Input, Static

from cockpit.widgets.filter_bar import FilterBar

ALWAYS = ("goto", "filter", "help", "quit")  # binding ids kept at the end of every footer


class KeyBar(Static):
    def on_mount(self) -> None:
        self.screen.bindings_updated_signal.subscribe(self, self._changed)
        self.call_after_refresh(self.refresh_keys)

    def on_unmount(self) -> None:
        self.screen.bindings_updated_signal.unsubscribe(self)

    def _changed(self, screen: Screen) -> None:
        if self.is_attached and screen is self.screen:
            self.call_after_refresh(self.refresh_keys)

    def on_resize(self) -> None:
        self.refresh_keys()

    def pairs(self) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
        """(this view's keys, the keys every view has): (key, what) for the bindings shown."""
        screen = self.screen
        allowed = getattr(screen, "allowed", lambda action: True)
        own, always, seen = [], {}, set()
        for _, binding, enabled, _tip in screen.active_bindings.values():
            if not binding.show or not enabled or binding.action in seen:
                continue
            seen.add(binding.action)
            pair = (self.app.get_key_display(binding), binding.description)
            if binding.id in ALWAYS:
                always[binding.id] = pair
            elif allowed(binding.action):
                own.append(pair)
        return own, [always[i] for i in ALWAYS if i in always]

    def refresh_keys(self) -> None:
        if not self.is_attached:  # asked for after the screen went away
            return
        focused = self.screen.focused
        if isinstance(focused, FilterBar):
            self.update(Text.assemble(_pair("enter", "keep the filter"), "  ", _pair("esc", "clear it"), "  ",
                                      ("every word typed must appear in a row", "dim")))
            return
        own, always = self.pairs()
        if isinstance(focused, Input):  # typing in a form: its keys; `q` or `:` would only type
            always = []
        width = self.size.width or self.app.size.width
        tail = Text("  ").join(_pair(k, d) for k, d in always)
        line = Text()
        room = width - tail.cell_len - 2
        for k, d in own:
            piece = _pair(k, d)
            if line.cell_len + piece.cell_len + 2 > room:
                line.append("… ", "dim")
                break
            line.append_text(piece)
            line.append("  ")
        line.append_text(tail)
        self.update(line)


def _pair(key: str, what: str) -> Text:
    return Text.assemble((key, "bold"), " ", (what, "dim"))
