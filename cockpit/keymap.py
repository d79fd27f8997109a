"""Every key binding the user may remap by its id, where it acts, and the clashes a remap makes.

A binding acts in a scope: the app (every view), a view, a table (in every view), a form (in
every dialog and the plan's form), a pane. Two bindings clash when one key would do both in one
place: the app's with anything, a table's with a view's, two of one view."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from dataclasses import dataclass

from textual.binding import Binding
from textual.dom import DOMNode


@dataclass(frozen=True)
class Bound:
    id: str
    keys: tuple[str, ...]
    scope: str  # "app", "view:<name>", or the widget's class name
    description: str


def _bindings_of(cls) -> list[Binding]:
    out = []
    for b in getattr(cls, "BINDINGS", []):
        if isinstance(b, Binding) and b.id:
            out.append(b)
    return out


def all_bindings() -> list[Bound]:
    """Every binding with an id, in the app, its views, and the widgets of the screens package."""
    import cockpit.screens
    import cockpit.widgets
    from cockpit.app import CockpitApp
    from cockpit.screens import VIEWS, view_class

    out = [Bound(b.id, _keys(b), "app", b.description) for b in _bindings_of(CockpitApp)]
    views = {view_class(n) for n in VIEWS}
    for name in VIEWS:
        out += [Bound(b.id, _keys(b), f"view:{name}", b.description) for b in _bindings_of(view_class(name))]
    seen = {CockpitApp, *views}
    for package in (cockpit.widgets, cockpit.screens):
        for info in pkgutil.iter_modules(package.__path__):
            module = importlib.import_module(f"{package.__name__}.{info.name}")
            for _, cls in inspect.getmembers(module, inspect.isclass):
                if cls in seen or not issubclass(cls, DOMNode) or cls.__module__ != module.__name__:
                    continue
                seen.add(cls)
                out += [Bound(b.id, _keys(b), cls.__name__, b.description) for b in _bindings_of(cls)]
    return out


def _keys(b: Binding) -> tuple[str, ...]:
    return tuple(k.strip() for k in b.key.split(",") if k.strip())


def clashes(remap: dict[str, str]) -> list[tuple[str, str]]:
    """(binding id, why) for each remap whose key another binding already uses where it acts."""
    bound = all_bindings()
    keys = {b.id: (tuple(k.strip() for k in remap[b.id].split(",")) if b.id in remap else b.keys) for b in bound}
    out = []
    for b in bound:
        if b.id not in remap:
            continue
        for other in bound:
            if other.id == b.id or not _meet(b.scope, other.scope):
                continue
            common = set(keys[b.id]) & set(keys[other.id])
            if common:
                out.append((b.id, f"{sorted(common)[0]!r} is also {other.id} ({other.description.lower() or other.scope}"
                                  f", {_where(other.scope)}): choose another key"))
                break
    return out


def _meet(a: str, b: str) -> bool:
    """Do bindings of these scopes act in one place?"""
    if a == b or "app" in (a, b):
        return True
    views = [s for s in (a, b) if s.startswith("view:")]
    return len(views) == 1 and "LiveTable" in (a, b)  # every view has tables


def _where(scope: str) -> str:
    if scope == "app":
        return "in every view"
    if scope.startswith("view:"):
        return f"in :{scope[5:]}"
    return {"LiveTable": "in every table"}.get(scope, f"in {scope}")
