"""The audit log's hash chain: each entry's hash covers the entry before it and its own fields.

An entry's hash is sha256 over its `prev_hash`, a newline, and a canonical JSON of its fields
(keys sorted, no spaces, ASCII only). Changing a field, removing an entry or putting one in
without the right hashes breaks the chain at that entry; `first_break` finds the first place.
Pure: the store writes and reads the entries (engine/journal.py).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass

GENESIS = "0" * 64  # the prev_hash of the first entry
FIELDS = ("id", "real_t", "platform_t", "user", "role", "host", "action", "target", "details", "outcome")
OPTIONAL = ("db_user",)  # covered when set: entries written before it existed keep their hashes


@dataclass(frozen=True)
class Entry:
    """An audit entry as stored: its fields and its links."""

    id: int
    real_t: float
    platform_t: float | None
    user: str
    role: str
    host: str
    action: str
    target: str
    details: dict
    outcome: str
    prev_hash: str
    hash: str
    db_user: str | None = None  # the database role that wrote it (PostgreSQL), recorded by a trigger


@dataclass(frozen=True)
class Break:
    """Where the chain breaks: the entry, and which of its links does not hold."""

    id: int
    why: str  # "hash" (its hash does not match its fields) | "prev" (its prev_hash is not the entry before's hash)
    after_id: int | None  # the entry before it, if any

    def short(self) -> str:
        if self.why == "hash":
            return "its hash does not match its fields"
        return f"its prev_hash is not entry {self.after_id}'s hash" if self.after_id is not None else \
            "its prev_hash is not the start of the log"

    def describe(self) -> str:
        if self.why == "hash":
            return f"entry {self.id}: its hash does not match its fields (changed after it was written)"
        before = f"entry {self.after_id}" if self.after_id is not None else "the start of the log"
        return (f"entry {self.id}: its prev_hash does not match {before} "
                "(an entry was removed or put in between)")


@dataclass(frozen=True)
class Walk:
    """What walking the chain found: how many entries, the last one's id and hash (the head, to
    keep elsewhere: the chain alone cannot show that entries were cut off its end), the first break."""

    entries: int
    head_id: int | None
    head_hash: str
    broken: Break | None

    @property
    def whole(self) -> bool:
        return self.broken is None


def canonical(fields: dict) -> str:
    """The entry's fields as the hash covers them. `details` as stored (a JSON object)."""
    covered = {k: fields[k] for k in FIELDS} | {k: fields[k] for k in OPTIONAL if fields.get(k) is not None}
    return json.dumps(covered, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def entry_hash(prev_hash: str, fields: dict) -> str:
    return hashlib.sha256(f"{prev_hash}\n{canonical(fields)}".encode()).hexdigest()


def fields_of(e: Entry) -> dict:
    return {k: getattr(e, k) for k in FIELDS + OPTIONAL}


def walk(entries: Iterable[Entry], prev: tuple[int | None, str] = (None, GENESIS), counted: int = 0) -> Walk:
    """Walk entries in id order from `prev` (the id and hash of the entry before the first one
    given; the start of the log by default). Stops at the first break."""
    prev_id, prev_hash = prev
    n = counted
    for e in entries:
        if e.prev_hash != prev_hash:
            return Walk(n, prev_id, prev_hash, Break(e.id, "prev", prev_id))
        if entry_hash(e.prev_hash, fields_of(e)) != e.hash:
            return Walk(n, prev_id, prev_hash, Break(e.id, "hash", prev_id))
        prev_id, prev_hash = e.id, e.hash
        n += 1
    return Walk(n, prev_id, prev_hash, None)
