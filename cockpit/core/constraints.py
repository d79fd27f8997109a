"""Constraints on hosts, as users write them: `role == web`, `disk >= 2T`, `gen in old,new`."""

from __future__ import annotations

import math
import re

from cockpit.domain import Constraint

OPS = ("==", "!=", ">=", "<=", " in ", ">", "<")
NUM_KEYS = {"cores": "cores", "cpu": "cores", "memory": "memory", "mem": "memory", "disk": "disk"}
_UNITS = {"": 1.0, "G": 1.0, "GB": 1.0, "GIB": 1.0, "T": 1024.0, "TB": 1024.0, "TIB": 1024.0,
          "M": 1 / 1024, "MB": 1 / 1024}
_SHAPE = re.compile(r"^\s*[A-Za-z0-9_.-]+\s*(==|!=|>=|<=|>|<| in )\s*\S.*$")
EXAMPLE = "a constraint like 'role == web', 'disk >= 2T' or 'gen in old,new'"


def parse_amount(text: str) -> float:
    """'2T' -> 2048.0 (GB), '512G' -> 512.0, '12' -> 12.0. ValueError otherwise."""
    s = text.strip().upper()
    i = len(s)
    while i and not (s[i - 1].isdigit() or s[i - 1] == "."):
        i -= 1
    unit = s[i:].strip()
    if unit not in _UNITS or not s[:i]:
        raise ValueError(f"{text!r} is not an amount like 12, 512G or 2T")
    try:
        value = float(s[:i]) * _UNITS[unit]
    except ValueError:
        raise ValueError(f"{text!r} is not an amount like 12, 512G or 2T") from None
    if not math.isfinite(value):
        raise ValueError(f"{text!r} is not a finite amount")
    return value


def parse_constraint(text: str) -> Constraint:
    """`role == web` -> Constraint; ValueError naming the text otherwise."""
    if not _SHAPE.match(text):
        raise ValueError(f"{text!r} is not {EXAMPLE}")
    for op in OPS:
        if op in text:
            key, value = text.split(op, 1)
            return Constraint(key.strip(), op.strip(), value.strip())  # type: ignore[arg-type]
    raise ValueError(f"{text!r} is not {EXAMPLE}")


def check_constraint(c: Constraint) -> str | None:
    """Why a constraint can never be evaluated, or None when it is well formed."""
    if c.key in NUM_KEYS:
        for v in c.value.split(",") if c.op == "in" else [c.value]:
            try:
                parse_amount(v)
            except ValueError as e:
                return str(e)
    elif c.op in (">=", "<=", ">", "<"):
        try:
            float(c.value)
        except ValueError:
            return f"{c.op} needs a number, got {c.value!r}"
    return None


def parse_constraints(text: str) -> tuple[Constraint, ...]:
    """Comma-separated constraints; a comma inside an `in` list stays with it."""
    parts: list[str] = []
    for piece in text.split(","):
        if parts and not any(op in piece for op in OPS):
            parts[-1] += "," + piece
        elif piece.strip():
            parts.append(piece)
    out = []
    for part in parts:
        c = parse_constraint(part)
        why = check_constraint(c)
        if why:
            raise ValueError(f"{part.strip()!r}: {why}")
        out.append(c)
    return tuple(out)
