"""`?`: every key of the view, with its binding id for remapping in the config; the actions the
user may not take now and why; every view. It fits the terminal and scrolls (j/k, arrows, pages)."""

from __future__ import annotations

from collections.abc import Iterable

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.keys import format_key
from textual.widgets import Static

from cockpit.screens.base import ViewScreen
from cockpit.screens.dialog import Dialog
from cockpit.widgets.form_fields import FieldRow, FieldScroll
from cockpit.widgets.live_table import LiveTable

# The widgets whose keys the help lists, under these headings.
SECTIONS: list[tuple[type, str]] = [(LiveTable, "In a table"), (FieldRow, "In the form"), (FieldScroll, "In the form")]
PALETTE = ("ctrl+p", "Command palette: every action you may take here", "(fixed)")
Row = tuple[Text, Text, Text]


def key_label(key: str) -> str:
    """`ctrl+right_square_bracket` as `ctrl+]`."""
    *mods, last = key.strip().split("+")
    return "+".join([*mods, format_key(last)])


def class_bindings(cls: type) -> list[Binding]:
    """The bindings a class has, its bases' first; only those with an id (the remappable ones)."""
    out = []
    for klass in reversed(cls.__mro__):
        for b in klass.__dict__.get("BINDINGS", ()):
            if isinstance(b, Binding) and b.id:
                out.append(b)
    return out


def keys_of(binding: Binding, keymap: dict[str, str]) -> str:
    keys = keymap.get(binding.id or "", binding.key)
    return ", ".join(key_label(k) for k in keys.split(","))


class HelpScreen(Dialog[None]):
    CSS_PATH = "help.tcss"
    BINDINGS = [
        Binding("escape,question_mark,q", "dismiss_help", "Close", show=False),
        Binding("j", "scroll('down')", "Scroll down", show=False),
        Binding("k", "scroll('up')", "Scroll up", show=False),
        Binding("g", "scroll('home')", "Top", show=False),
        Binding("G", "scroll('end')", "Bottom", show=False),
    ]

    def __init__(self, view: ViewScreen | None, views: list[tuple[str, str]]):
        super().__init__()
        self._view = view
        self._views = views

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help"):
            yield Static(Text("↑↓ j k pgup pgdn: scroll   esc ? q: close", style="dim"), id="hint")
            yield Static(self.content(), id="content")

    def on_mount(self) -> None:
        self.set_focus(self.query_one("#help", VerticalScroll))

    def content(self) -> RenderableType:
        app = self.app
        keymap = dict(getattr(getattr(app, "cfg", None), "keys", None) or {})
        sections: dict[str, list[Row]] = {}
        notes: list[Text] = []
        view = self._view
        if view is not None:
            sections["Keys of this view"] = rows = []
            refused: dict[str, list[str]] = {}
            for b in class_bindings(type(view)):
                action_id = view.ACTION_IDS.get(b.action.split("(")[0])
                why = self._refusal(action_id) if action_id else None
                rows.append(_row(keys_of(b, keymap), b.description, b.id, refused=why is not None))
                if why:
                    refused.setdefault(why, []).append(b.description)
            notes = [Text.assemble(("✗ not allowed now", "bold red"), f" ({', '.join(what)}): {why}")
                     for why, what in refused.items()]
            for cls, title in SECTIONS:
                for widget_cls in {type(w) for w in view.query(cls)}:
                    sections.setdefault(title, []).extend(
                        _row(keys_of(b, keymap), b.description, b.id) for b in class_bindings(widget_cls))
        sections["In every view"] = [_row(keys_of(b, keymap), b.description, b.id)
                                     for b in class_bindings(type(app))] + [_row(*PALETTE)]
        key_w = min(max(r[0].cell_len for rows in sections.values() for r in rows), 12)  # longer ones wrap
        id_w = max(r[2].cell_len for rows in sections.values() for r in rows)
        parts: list[RenderableType] = []
        if view is not None:
            parts.append(Text.assemble((view.VIEW, "bold"), f": {view.HELP}"))
        for n, (title, rows) in enumerate(sections.items()):
            parts.append(_section(title, _unique(rows), key_w, id_w))
            if n == 0 and notes:
                parts.extend(notes)
        parts.append(_views(self._views, key_w))
        parts.append(Text("\nRemap a key in the config:  keys: {binding-id: \"keys\"}", style="dim"))
        return Group(*parts)

    def _refusal(self, action_id: str) -> str | None:
        cockpit = getattr(self.app, "cockpit", None)
        return cockpit.refusal(action_id) if cockpit is not None else None

    def action_scroll(self, where: str) -> None:
        scroll = self.query_one("#help", VerticalScroll)
        {"down": scroll.scroll_down, "up": scroll.scroll_up, "home": scroll.scroll_home,
         "end": scroll.scroll_end}[where](animate=False)

    def action_dismiss_help(self) -> None:
        self.answer(None)


def _row(keys: str, what: str, ident: str | None, refused: bool = False) -> Row:
    desc = Text(what or "")
    if refused:
        desc.append(" ✗", "bold red")
    return Text(keys, style="dim" if refused else "bold cyan"), desc, Text(ident or "", style="dim")


def _unique(rows: Iterable[Row]) -> list[Row]:
    seen, out = set(), []
    for r in rows:
        key = (r[0].plain, r[2].plain)
        if key not in seen:
            seen.add(key)
            out.append(r)
    return out


def _section(title: str, rows: list[Row], key_w: int, id_w: int) -> RenderableType:
    t = Table.grid(padding=(0, 1), expand=True)
    t.add_column(width=key_w, overflow="fold")
    t.add_column(ratio=1, overflow="fold")
    t.add_column(no_wrap=True, width=id_w)
    for r in rows:
        t.add_row(*r)
    return Group(Text(f"\n{title}", style="bold"), t)


def _views(views: list[tuple[str, str]], key_w: int) -> RenderableType:
    t = Table.grid(padding=(0, 1), expand=True)
    t.add_column(no_wrap=True, width=key_w)
    t.add_column(ratio=1, overflow="fold")
    for name, text in views:
        t.add_row(Text(f":{name}", style="bold cyan"), Text(text))
    return Group(Text("\nViews (type : then a name)", style="bold"), t)
