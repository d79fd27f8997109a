"""A request's arguments held to the action method's own annotations before the engine runs it:
whoever wrote the row (an SRE with psql, say) gets exactly the types the method was written for,
or a one-line refusal. Only what the facade's action methods use: str, int, float, bool, dict,
list, list[str], and `X | None`."""

from __future__ import annotations

import inspect
import math
import types
import typing
from collections.abc import Callable

MAX_STR = 4096
MAX_ITEMS = 100_000


def problem(method: Callable, args: dict) -> str | None:
    """Why these arguments do not fit the method (None when they do)."""
    sig = inspect.signature(method)
    try:
        sig.bind(None, **args)
    except TypeError as e:
        return str(e)
    try:
        hints = typing.get_type_hints(method)
    except (NameError, TypeError) as e:  # an annotation only a type checker resolves: not askable
        return f"its arguments cannot be checked ({e})"
    for name, value in args.items():
        why = _fits(hints.get(name, typing.Any), value)
        if why:
            return f"{name}: {why}"
    return None


def _fits(hint, value) -> str | None:
    if hint is typing.Any:
        return None
    origin, inner = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in inner:
            return None
        whys = [_fits(h, value) for h in inner if h is not type(None)]
        return None if any(w is None for w in whys) else whys[0]
    if origin is list or hint is list:
        if not isinstance(value, list) or len(value) > MAX_ITEMS:
            return f"expected a list (at most {MAX_ITEMS:,} items), got {_what(value)}"
        return next((f"item {k}: {w}" for k, v in enumerate(value) if (w := _fits(inner[0], v))), None) \
            if inner else None
    if origin is dict or hint is dict:
        return None if isinstance(value, dict) else f"expected an object, got {_what(value)}"
    if hint is bool:
        return None if isinstance(value, bool) else f"expected true or false, got {_what(value)}"
    if hint is int:
        return None if isinstance(value, int) and not isinstance(value, bool) else \
            f"expected a whole number, got {_what(value)}"
    if hint is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        return None if ok else f"expected a number, got {_what(value)}"
    if hint is str:
        return None if isinstance(value, str) and len(value) <= MAX_STR else \
            f"expected text (at most {MAX_STR} characters), got {_what(value)}"
    return f"an argument of type {hint} cannot be asked for"


def _what(value) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:39] + "…"
