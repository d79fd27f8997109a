"""Constraints on hosts, as users write them: `role == web`, `disk >= 2T`, `gen in old,new`.

A key names a host's capacity (`cores`/`cpu`, `memory`/`mem`, `disk`), one of its fields
(`hardware`, `idc`, `pool`, `source`, `zone`) or else one of its labels. `label.KEY` always names
the label KEY, so a label called like a built-in stays reachable (`label.disk == ssd`); and a
capacity key under ==, != or `in` with values that are not amounts means the label of that name
too (`disk == ssd` is the label, `disk >= 2T` the capacity).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Literal

from cockpit.domain import Constraint

OPS = ("==", "!=", ">=", "<=", " in ", ">", "<")
NUM_KEYS = {"cores": "cores", "cpu": "cores", "memory": "memory", "mem": "memory", "disk": "disk"}
FIELD_KEYS = ("hardware", "idc", "pool", "source", "zone")
LABEL_PREFIX = "label."
_UNITS = {"": 1.0, "G": 1.0, "GB": 1.0, "GIB": 1.0, "T": 1024.0, "TB": 1024.0, "TIB": 1024.0,
          "M": 1 / 1024, "MB": 1 / 1024}
# The shape the world schema accepts too; the first operator after the key is the one that counts.
_SHAPE = re.compile(r"^\s*(?P<key>[A-Za-z0-9_.-]+)\s*(?P<op>==|!=|>=|<=|>|<|\sin\s)\s*(?P<value>\S.*?)\s*$", re.S)
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")  # as a world's label names
_OP_CHARS = "=!<>"
MAX_TEXT = 4096  # characters in a list of constraints
MAX_CONSTRAINTS = 64
EXAMPLE = "a constraint like 'role == web', 'disk >= 2T', 'gen in old,new' or 'label.disk == ssd'"


@dataclass(frozen=True)
class Subject:
    """What a constraint compares: a capacity amount (in cores or GB), a host field, or a label."""

    kind: Literal["amount", "field", "label"]
    name: str  # cores | memory | disk; a field name; a label key


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


def _is_amount(text: str) -> bool:
    try:
        parse_amount(text)
    except ValueError:
        return False
    return True


def values(c: Constraint) -> list[str]:
    """The value, or each choice of an `in` list."""
    return [v.strip() for v in c.value.split(",")] if c.op == "in" else [c.value.strip()]


def subject(c: Constraint) -> Subject:
    """What the constraint's key refers to (see the module's doc)."""
    if c.key.startswith(LABEL_PREFIX):
        return Subject("label", c.key[len(LABEL_PREFIX):])
    if c.key in NUM_KEYS:
        if c.op in ("==", "!=", "in") and not all(_is_amount(v) for v in values(c)):
            return Subject("label", c.key)
        return Subject("amount", NUM_KEYS[c.key])
    if c.key in FIELD_KEYS:
        return Subject("field", c.key)
    return Subject("label", c.key)


def parse_constraint(text: str) -> Constraint:
    """`role == web` -> Constraint, for any text of the right shape; ValueError naming the text
    otherwise. `check_constraint` says whether its parts make sense."""
    m = _SHAPE.match(text)
    if not m:
        raise ValueError(f"{text!r} is not {EXAMPLE}")
    return Constraint(m["key"], m["op"].strip(), m["value"])  # type: ignore[arg-type]


def _check_key(key: str) -> str | None:
    name = key[len(LABEL_PREFIX):] if key.startswith(LABEL_PREFIX) else key
    if not _NAME.match(name):
        return (f"{key!r} is not a key: a name of letters, digits, '-', '_' or '.' "
                f"(or {LABEL_PREFIX}NAME for a label)")
    return None


def _check_value(v: str, c: Constraint) -> str | None:
    if not v:
        return f"an empty choice in {c.value!r}" if c.op == "in" else "the value is empty"
    if v[0] in _OP_CHARS:
        return f"the value {v!r} starts with {v[0]!r}: write one operator, then the value ('role == web')"
    if not v.isprintable():
        return f"the value {v!r} has a control character"
    return None


def check_constraint(c: Constraint) -> str | None:
    """Why a constraint can never be evaluated, or None when it is well formed."""
    why = _check_key(c.key)
    if why:
        return why
    vs = values(c)
    for v in vs:
        why = _check_value(v, c)
        if why:
            return why
    what = subject(c)
    if what.kind == "amount":
        for v in vs:
            try:
                parse_amount(v)
            except ValueError as e:
                return str(e)
    elif c.key in NUM_KEYS and any(_is_amount(v) for v in vs):
        return (f"{c.value!r} mixes amounts and label values; write {c.key} in AMOUNTS for the capacity "
                f"or {LABEL_PREFIX}{c.key} in VALUES for the label")
    elif c.op in (">=", "<=", ">", "<"):
        try:
            ok = math.isfinite(float(c.value))
        except ValueError:
            ok = False
        if not ok:
            return f"{c.op} needs a number, got {c.value!r}"
    return None


def _split(text: str) -> list[str]:
    """Comma-separated constraints; a comma inside an `in` list stays with it."""
    parts: list[str] = []
    for piece in text.split(","):
        last = _SHAPE.match(parts[-1]) if parts else None
        if last and last["op"].strip() == "in" and not any(op in piece for op in OPS):
            parts[-1] += "," + piece
        else:
            parts.append(piece)
    return parts


def parse_constraints(text: str) -> tuple[Constraint, ...]:
    """Comma-separated constraints (none for a blank text); ValueError naming the first bad one."""
    if not text.strip():
        return ()
    if len(text) > MAX_TEXT:
        raise ValueError(f"constraints are at most {MAX_TEXT} characters, got {len(text)}")
    parts = _split(text)
    if len(parts) > MAX_CONSTRAINTS:
        raise ValueError(f"at most {MAX_CONSTRAINTS} constraints, got {len(parts)}")
    out = []
    for part in parts:
        if not part.strip():
            raise ValueError(f"{text.strip()!r}: an empty constraint (two commas, or one at an end)")
        c = parse_constraint(part.strip())
        why = check_constraint(c)
        if why:
            raise ValueError(f"{part.strip()!r}: {why}")
        out.append(c)
    return tuple(out)
