"""The world's registries, checked once the shape is right: where they are, the topology their
`replicates_from` make, the replication policies and the simulated releases.

The topology is a forest: each slave replicates from one registry, each tree's top is a master
that replicates from nobody or a dual-master pair (two masters that replicate from each other,
the only cycle allowed). Mixed into world_checks' checker, which supplies `d` (the document's
data), `images`, `idcs`, and the `bad`, `ref` and `check_timestamp` reporters.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from cockpit.yamlcheck import PathT

# Far beyond a real platform (Weibo ran a registry per IDC); the views draw every one of them.
MAX_REGISTRIES = 1_000
MAX_POLICIES = 1_000
MAX_RELEASES = 10_000


def cron_problem(text: str) -> str | None:
    """Why `text` is not a five-field cron schedule (APScheduler's reading), or None."""
    from apscheduler.triggers.cron import CronTrigger  # lazily: only worlds with a cron policy pay for it

    try:
        CronTrigger.from_crontab(text, timezone=timezone.utc)
    except ValueError as e:
        return f"not a cron schedule (minute hour day month weekday): {e}"
    return None


def find_cycles(parent: dict[str, str], order: list[str]) -> list[list[str]]:
    """The cycles of a graph where each node has at most one parent, each as the list of its
    nodes from the one first in `order`, following parents."""
    cycles: list[list[str]] = []
    done: set[str] = set()
    rank = {name: i for i, name in enumerate(order)}
    for name in order:
        path: list[str] = []
        at: dict[str, int] = {}
        node: str | None = name
        while node is not None and node not in done and node not in at:
            at[node] = len(path)
            path.append(node)
            node = parent.get(node)
        if node is not None and node in at:
            cycle = path[at[node]:]
            first = min(range(len(cycle)), key=lambda i: rank[cycle[i]])
            cycles.append(cycle[first:] + cycle[:first])
        done.update(path)
    return cycles


def _path(out: dict[str, list[str]], start: str, goal: str) -> list[str] | None:
    """The shortest path start ... goal along `out`'s edges (breadth first), or None."""
    came: dict[str, str | None] = {start: None}
    frontier = [start]
    while frontier:
        nxt = []
        for node in frontier:
            if node == goal:
                path = [node]
                while came[path[-1]] is not None:
                    path.append(came[path[-1]])
                return path[::-1]
            for m in out.get(node, ()):
                if m not in came:
                    came[m] = node
                    nxt.append(m)
        frontier = nxt
    return None


class RegistryChecks:
    """The checks of the registries, replication and releases sections."""

    d: dict
    images: dict[str, int]
    idcs: dict[str, dict]

    if TYPE_CHECKING:  # the checker's reporters
        def bad(self, path: PathT, message: str) -> None: ...
        def ref(self, path: PathT, value: Any, known: Collection, what: str) -> bool: ...
        def check_timestamp(self, text: str, path: PathT) -> datetime | None: ...

    def check_registries(self) -> None:
        """Registries sit in a known IDC; a slave replicates from another, known registry."""
        registries = {r["name"] for r in self.d.get("registries", [])}
        for ri, r in enumerate(self.d.get("registries", [])):
            p = ("registries", ri)
            self.ref(p + ("idc",), r["idc"], self.idcs, "IDC")
            src = r.get("replicates_from")
            if src is not None:
                if src == r["name"]:
                    self.bad(p + ("replicates_from",), "a registry cannot replicate from itself")
                else:
                    self.ref(p + ("replicates_from",), src, registries, "registry")
            if r["role"] == "slave" and src is None:
                self.bad(p + ("replicates_from",), "a slave registry names the registry it replicates from")

    def check_topology(self) -> None:
        """No replication cycle but a dual-master pair; a master replicates only from its peer."""
        regs = self.d.get("registries", [])
        index = {r["name"]: i for i, r in enumerate(regs)}
        if len(index) != len(regs):
            return  # a name used twice (already reported): who replicates from whom is unclear
        # Unknown names and self-replication are already reported; they make no edge.
        parent = {r["name"]: r["replicates_from"] for r in regs
                  if r.get("replicates_from") in index and r["replicates_from"] != r["name"]}
        in_cycle: set[str] = set()
        for cycle in find_cycles(parent, list(index)):
            in_cycle.update(cycle)
            if len(cycle) == 2 and all(regs[index[n]]["role"] == "master" for n in cycle):
                continue  # a dual-master pair
            chain = " -> ".join(cycle + cycle[:1])
            self.bad(("registries", index[cycle[0]], "replicates_from"),
                     f"replication cycle: {chain} (each replicates from the next); only two masters may "
                     "replicate from each other (dual-master)")
        for name, src in parent.items():
            if regs[index[name]]["role"] == "master" and name not in in_cycle:
                self.bad(("registries", index[name], "replicates_from"),
                         f"a master replicates only from its dual-master peer, and {src!r} does not replicate "
                         f"from {name!r}")

    def check_replication(self) -> None:
        """Policies replicate between known registries, never to their source, on a sound trigger."""
        regs = {r["name"] for r in self.d.get("registries", [])}
        fed = {r.get("replicates_from") for r in self.d.get("registries", [])}
        for pi, policy in enumerate(self.d.get("replication", [])):
            p = ("replication", pi)
            source = policy["source"]
            known = self.ref(p + ("source",), source, regs, "registry")
            if "destinations" in policy:
                for di, dest in enumerate(policy["destinations"]):
                    if dest == source:
                        self.bad(p + ("destinations", di), "a policy cannot replicate its source to itself")
                    else:
                        self.ref(p + ("destinations", di), dest, regs, "registry")
            elif known and source not in fed:
                self.bad(p + ("destinations",), f"no registry replicates from {source!r}: name the destinations")
            self._trigger(p, policy)
        self._policy_cycles(fed)

    def _policy_cycles(self, fed: set) -> None:
        """The policies copy source -> destinations: no cycle through them, but between the two
        masters of a declared dual-master pair. A cycle is reported once, at the policy that
        closes it (the last of its edges in the file)."""
        regs = self.d.get("registries", [])
        by_name = {r["name"]: r for r in regs}
        children: dict[str, list[str]] = {}
        for r in regs:
            if r.get("replicates_from") in by_name:
                children.setdefault(r["replicates_from"], []).append(r["name"])
        edges: list[tuple[str, str, PathT]] = []  # (source, destination, where), in file order
        for pi, policy in enumerate(self.d.get("replication", [])):
            s = policy["source"]
            if s not in by_name:
                continue
            if "destinations" in policy:
                dests = [(d, ("replication", pi, "destinations", di)) for di, d in enumerate(policy["destinations"])]
            else:
                dests = [(d, ("replication", pi, "source")) for d in children.get(s, [])]
            edges += [(s, d, where) for d, where in dests if d in by_name and d != s]
        out: dict[str, list[str]] = {}
        for s, d, _ in edges:
            out.setdefault(s, []).append(d)

        def dual(a: str, b: str) -> bool:
            ra, rb = by_name[a], by_name[b]
            return (ra["role"] == rb["role"] == "master" and ra.get("replicates_from") == b
                    and rb.get("replicates_from") == a)

        reported: set[frozenset] = set()
        for s, d, where in reversed(edges):
            if dual(s, d):
                continue  # a longer cycle through the pair has an edge that is not the pair's
            path = _path(out, d, s)
            if path is None or frozenset(path) in reported:
                continue
            reported.add(frozenset(path))
            chain = " -> ".join([s] + path)
            self.bad(where, f"replication cycle through the policies: {chain} (each copies to the next); only the "
                            "two masters of a declared dual-master pair may replicate both ways")

    def _trigger(self, p: PathT, policy: dict) -> None:
        """A cron policy has a five-field schedule; no other policy has one."""
        trigger = policy.get("trigger", "event")
        if trigger == "cron":
            if "schedule" not in policy:
                self.bad(p + ("schedule",), "a cron policy needs a schedule: five cron fields like '*/10 * * * *'")
            else:
                why = cron_problem(policy["schedule"])
                if why:
                    self.bad(p + ("schedule",), why)
        elif "schedule" in policy:
            self.bad(p + ("schedule",), f"only a cron policy has a schedule; this one's trigger is {trigger}")

    def check_releases(self) -> None:
        """Releases push an image of the world to a known registry, after the world's start."""
        regs = {r["name"] for r in self.d.get("registries", [])}
        try:
            start: datetime | None = datetime.fromisoformat(self.d["start"].replace(" ", "T").replace("Z", "+00:00"))
        except ValueError:
            start = None  # reported with the other times
        for ri, release in enumerate(self.d.get("releases", [])):
            p = ("releases", ri)
            self.ref(p + ("image",), release["image"], self.images, "image")
            self.ref(p + ("registry",), release["registry"], regs, "registry")
            at = self.check_timestamp(release["at"], p + ("at",))
            if at is not None and start is not None and at <= start:
                self.bad(p + ("at",), f"a release at or before the world's start ({self.d['start']}) never happens")

    def check_registry_counts(self) -> bool:
        """Registries, policies and releases are bounded: whether they are."""
        ok = True
        for section, limit, what in (("registries", MAX_REGISTRIES, "registries"),
                                     ("replication", MAX_POLICIES, "replication policies"),
                                     ("releases", MAX_RELEASES, "releases")):
            n = len(self.d.get(section, []))
            if n > limit:
                self.bad((section,), f"{n:,} {what}; a world may have at most {limit:,}")
                ok = False
        return ok
