"""The lab's state file: every piece `up` made, in the order it made them, written atomically
after each one, so a lab that died half-way up is still taken down whole.

A piece is a process (by PID), a network namespace, a link, or a file or directory the lab made; `down`
undoes them in reverse order. `lab` holds what the world and config files were made from.
"""

from __future__ import annotations

import json
import os
import re
import threading
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from cockpit.lab.procs import LabError

STATE_NAME = "lab.json"
FORMAT = "cockpit-lab/1"
MAX_BYTES = 1 << 20  # a lab of 16 hosts writes a few kilobytes
KINDS = ("bridge", "netns", "veth", "path", "sshd", "dockerd", "registry", "etcd", "nginx")
NET_KINDS = ("bridge", "netns", "veth")
NET_NAME = re.compile(r"ckl[0-9]{1,3}(h[0-9]{1,2})?")  # lab/netns.py's names


@dataclass
class Piece:
    kind: str  # one of KINDS
    name: str  # what the lab calls it (a host, a registry, an interface)
    pid: int | None = None
    address: str | None = None
    port: int | None = None
    url: str | None = None
    path: str | None = None  # a file or directory the lab made; a process's directory
    inode: int | None = None  # a netns piece: its inode, to find every process inside it; sshd: its mount namespace's
    host: str | None = None  # the lab host it belongs to
    started: int | None = None  # a process's start time (clock ticks since boot): a PID reused is not it


@dataclass
class State:
    dir: Path
    lab: dict = field(default_factory=dict)
    pieces: list[Piece] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    @property
    def path(self) -> Path:
        return self.dir / STATE_NAME

    def add(self, piece: Piece) -> Piece:
        with self._lock:
            self.pieces.append(piece)
            self._write()
        return piece

    def update(self, **lab) -> None:
        with self._lock:
            self.lab.update(lab)
            self._write()

    def save(self) -> None:
        with self._lock:
            self._write()

    def _write(self) -> None:
        doc = {"format": FORMAT, "lab": self.lab, "pieces": [asdict(p) for p in self.pieces]}
        tmp = self.path.with_name(f".{STATE_NAME}.{os.getpid()}.{threading.get_ident()}")
        with open(tmp, "w") as f:
            json.dump(doc, f, indent=1)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)

    def of(self, kind: str) -> list[Piece]:
        return [p for p in self.pieces if p.kind == kind]

    def remove(self) -> None:
        with self._lock:
            self.path.unlink(missing_ok=True)


def load(dir: Path) -> State | None:
    """The lab state in `dir`, None when there is none; LabError when the file is not one."""
    path = Path(dir) / STATE_NAME
    try:
        if not path.is_file():
            if path.exists():
                raise LabError(f"{path}: not a regular file, so not a lab's state")
            return None
        if path.stat().st_size > MAX_BYTES:
            raise LabError(f"{path}: {path.stat().st_size:,} bytes is too large for a lab's state")
        doc = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise LabError(f"{path}: not a lab's state file ({e.__class__.__name__}: {e})") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise LabError(f"{path}: not a lab's state file (expected format {FORMAT!r})")
    known = {f.name for f in fields(Piece)}
    pieces = []
    for i, raw in enumerate(doc.get("pieces") or []):
        if not isinstance(raw, dict) or raw.get("kind") not in KINDS or set(raw) - known \
                or not isinstance(raw.get("name"), str) or not _typed(raw) or not _named(raw):
            raise LabError(f"{path}: pieces[{i}] is not a piece of a lab")
        pieces.append(Piece(**raw))
    lab = doc.get("lab") if isinstance(doc.get("lab"), dict) else None
    if lab is None:
        raise LabError(f"{path}: no 'lab' section")
    return State(Path(dir), lab, pieces)


def _named(raw: dict) -> bool:
    """Interfaces and namespaces are the lab's own names: `down` deletes them (never eth0)."""
    if raw["kind"] in NET_KINDS:
        return bool(NET_NAME.fullmatch(raw["name"]))
    return len(raw["name"]) <= 128


def _typed(raw: dict) -> bool:
    """PIDs, ports, inodes and start times are positive whole numbers (a PID of 0 or -1 would signal a group)."""
    for key in ("pid", "port", "inode", "started"):
        v = raw.get(key)
        if v is not None and (not isinstance(v, int) or isinstance(v, bool) or v <= 1):
            return False
    return all(raw.get(k) is None or isinstance(raw[k], str) for k in ("address", "url", "path", "host"))
