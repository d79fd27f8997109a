"""Containers as tasks change them: rows and call intents written together, then settled from
the answers. A starting or stopping container holds its host's resources like a running one."""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field

from cockpit.backends.base import ContainerSpec
from cockpit.core.addressing import container_name
from cockpit.domain import Service
from cockpit.engine.outside import Intent, calls_of, intend
from cockpit.store.db import bulk_insert, bulk_update, bump_version
from cockpit.store.models import ContainerRow

START, REMOVE = "container.start", "container.remove"
CHUNK = 500  # containers per statement (SQLite takes at most 32,766 parameters in one)


@dataclass
class Changes:
    """What one task asks of the container runtime, before it is written."""

    task: int
    now: float  # platform time
    rows: list[dict] = field(default_factory=list)
    intents: list[Intent] = field(default_factory=list)
    stopping: list[int] = field(default_factory=list)
    _made: Counter = field(default_factory=Counter)

    def start(self, svc: Service, host: dict, n: int, stage: int = 0) -> None:
        """n containers of `svc` on `host` (a host row as a dict)."""
        for _ in range(n):
            self._made[svc.name] += 1
            name = container_name(svc.name, self.task, self._made[svc.name])
            self.rows.append({"service": svc.name, "host": host["id"], "idc": host["idc"], "created_t": self.now,
                              "task": self.task, "name": name, "state": "starting"})
            spec = ContainerSpec(name, host["name"], host.get("address"), svc.name, svc.image, tuple(svc.ports),
                                 tuple(svc.host_ports), svc.cpu, svc.memory_gb)
            self.intents.append(Intent(START, name, host["name"], asdict(spec), stage))

    def remove(self, containers: list[tuple[int, str, str]], stage: int, after_ok: bool = True) -> None:
        """Stop and remove containers given as (row id, name, host name)."""
        for cid, name, host in containers:
            self.intents.append(Intent(REMOVE, f"rm:{name}", host, {"host": host, "name": name}, stage, after_ok))
            self.stopping.append(cid)

    def write(self, real_now: float) -> None:
        bulk_insert(ContainerRow, self.rows)
        for i in range(0, len(self.stopping), 500):
            ContainerRow.update(state="stopping").where(ContainerRow.id.in_(self.stopping[i : i + 500])).execute()
        intend(self.task, self.intents, real_now)
        bump_version()


def on_hosts(host_ids: list[int], names: dict[int, str]) -> list[tuple[int, str, str]]:
    """The containers on these hosts as (row id, name, host name)."""
    out = []
    for i in range(0, len(host_ids), 500):
        q = ContainerRow.select(ContainerRow.id, ContainerRow.name, ContainerRow.host).where(
            ContainerRow.host.in_(host_ids[i : i + 500]))
        out += [(cid, name, names[host]) for cid, name, host in q.tuples()]
    return out


@dataclass
class Settled:
    started: int = 0
    removed: int = 0
    start_errors: list[str] = field(default_factory=list)
    remove_errors: list[str] = field(default_factory=list)
    not_removed: set[str] = field(default_factory=set)  # hosts where a container could not be removed

    def first_error(self) -> str:
        return (self.start_errors + self.remove_errors + [""])[0]


def settle(task: int) -> Settled:
    """Bring the task's container rows in line with the runtime's answers: started ones run (with
    their address and ports), ones that did not start are gone, removed ones are deleted, and
    ones that could not be removed still run.

    The rows change a chunk at a time, not one statement per container, which kept a task of
    5,000 containers settling for 1.7 s of its fenced transaction. (The names a task starts are
    its own, made from its id, and those it removes ran before it: no name is in two of the three
    writes below, so their order does not matter.)"""
    out = Settled()
    started: list[tuple] = []  # (state, ref, address, ports, name)
    gone: list[str] = []  # did not start, or removed
    back: list[str] = []  # could not be removed: running again
    for c in calls_of(task):
        if c.kind == START:
            if c.state == "done":
                r = c.result
                started.append(("running", r.get("ref"), r.get("address"), [list(p) for p in r.get("ports", [])],
                                c.key))
                out.started += 1
            else:
                gone.append(c.key)
                out.start_errors.append(c.error or "cancelled")  # the engine's error names its host
        elif c.kind == REMOVE:
            name = c.request["name"]
            if c.state == "done":
                gone.append(name)
                out.removed += 1
            else:
                back.append(name)
                if c.state == "failed":
                    out.remove_errors.append(c.error or "failed")
                out.not_removed.add(c.target)
    bulk_update(ContainerRow, ("state", "ref", "address", "ports"), "name", started)
    for i in range(0, len(gone), CHUNK):
        ContainerRow.delete().where(ContainerRow.name.in_(gone[i : i + CHUNK])).execute()
    for i in range(0, len(back), CHUNK):
        ContainerRow.update(state="running").where(ContainerRow.name.in_(back[i : i + CHUNK])).execute()
    bump_version()
    return out
