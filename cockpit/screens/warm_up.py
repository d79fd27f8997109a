"""Ready every screen before the user asks for one: a screen opened for the first time otherwise
pays, while the user waits on their key, for importing its module (up to 30 ms for `:plan`) and
for its styles, which Textual reads on the screen's first push by parsing every style of the app
again and restyling every widget (25 to 40 ms). Done once, after the first paint, while the user
reads the dashboard: the imports in a thread, the styles in one pass on the event loop."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from pathlib import Path

from textual.app import App
from textual.screen import Screen

import cockpit.screens as package


def import_screens() -> list[type[Screen]]:
    """In a thread: import every screen module; every screen class of Cockpit's."""
    for module in pkgutil.iter_modules(package.__path__):
        importlib.import_module(f"{package.__name__}.{module.name}")
    found, todo = [], list(Screen.__subclasses__())
    while todo:
        cls = todo.pop()
        todo.extend(cls.__subclasses__())
        if cls.__module__.startswith(f"{package.__name__}."):
            found.append(cls)
    return found


def style_files(cls: type[Screen]) -> list[Path]:
    """The style files a screen class names, resolved as Textual resolves them on its push."""
    paths = cls.CSS_PATH
    if paths is None:
        return []
    base = Path(inspect.getfile(cls)).parent
    return [(base / p).resolve() for p in ([paths] if isinstance(paths, (str, Path)) else paths)]


def load_styles(app: App, classes: list[type[Screen]]) -> int:
    """On the event loop: read the styles of `classes` not read yet, parse once, restyle once.
    Their rules are all scoped by the screen's type, so reading them early changes no style.
    The number of files read."""
    sheet = app.stylesheet
    new = sorted({str(p) for cls in classes for p in style_files(cls) if not sheet.has_source(str(p))})
    for path in new:
        sheet.read(path)
    if new:
        sheet.reparse()
        sheet.update(app)
    return len(new)
