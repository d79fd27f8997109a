"""The facade's registry layer: the topology with each registry's health, the policies, the
executions and their tasks, the matrix of images x registries, an image's layers; starting and
stopping a replication. Reads come from the store only (the engine keeps it up to date)."""

from __future__ import annotations

import time
from dataclasses import dataclass

import peewee as pw

from cockpit.core.replication import Cell, Sharing, matrix, sharing
from cockpit.engine.actions import Outcome
from cockpit.engine.requests import requestable
from cockpit.store.models import ManifestRow, RegistryHealthRow, RegistryImageRow, ReplicationRow, ReplicationTaskRow

ACTIVE = ("pending", "running")
MAX_IMAGES = 500  # images named in one replication


@dataclass(frozen=True)
class RegistryNode:
    name: str
    idc: str
    role: str
    depth: int  # 0 for a master; a slave one more than the registry it replicates from
    parent: str | None
    peer: str | None  # the other master of a dual-master pair
    link_mbps: float
    images: int  # tags it holds
    ok: bool | None  # None: not asked yet
    error: str | None
    latency_ms: float | None
    checked_real: float | None


@dataclass(frozen=True)
class PolicyView:
    name: str
    source: str
    destinations: tuple[str, ...]
    trigger: str
    schedule: str | None
    repositories: str  # "include ... except ..."
    tags: str
    override: bool
    deletions: bool
    bandwidth_mbps: float | None
    concurrency: int


@dataclass(frozen=True)
class ExecutionView:
    id: int
    policy: str
    trigger: str
    state: str
    actor: str
    scope: list | None
    tasks_total: int
    tasks_done: int
    tasks_failed: int
    tasks_conflict: int
    bytes_moved: int
    bytes_needed: int  # the sizes of the blobs each destination lacked (what had to move)
    created_t: float
    real_started: float | None
    real_finished: float | None
    throughput_bps: float  # bytes a second while it ran
    error: str | None

    @property
    def settled(self) -> int:
        return self.tasks_done + self.tasks_failed + self.tasks_conflict


@dataclass(frozen=True)
class ReplicationTaskView:
    id: int
    repo: str
    tag: str
    source: str
    destination: str
    action: str
    state: str
    bytes_moved: int
    attempts: int
    error: str | None


@dataclass(frozen=True)
class MatrixView:
    registries: list[str]
    rows: list[tuple[str, dict[str, Cell]]]  # ("repo:tag", registry -> cell)


@dataclass(frozen=True)
class LayersView:
    image: str
    registry: str
    digest: str
    media_type: str
    blobs: list[tuple[str, int, tuple[str, ...]]]  # (digest, size, the other images that share it)
    sharing: Sharing  # over every image the registry holds


def _filter_text(f) -> str:
    text = ", ".join(f.include)
    return text + (f" except {', '.join(f.exclude)}" if f.exclude else "")


class RegistryFacade:
    """Mixed into engine.facade.Cockpit (self.cfg, self.world, self._act, self.clock ...)."""

    def registry_tree(self) -> list[RegistryNode]:
        """The registries, each after the one it replicates from (a tree; a dual pair side by side)."""
        w = self.world
        health = {h.registry: h for h in RegistryHealthRow.select()}
        held = dict(RegistryImageRow.select(RegistryImageRow.registry, pw.fn.COUNT(RegistryImageRow.id))
                    .group_by(RegistryImageRow.registry).tuples())
        out: list[RegistryNode] = []
        seen: set[str] = set()

        def visit(name: str, depth: int) -> None:
            if name in seen:
                return
            seen.add(name)
            r, h = w.registry(name), health.get(name)
            peer = w.dual_peer(name)
            out.append(RegistryNode(r.name, r.idc, r.role, depth, None if peer else r.replicates_from, peer,
                                    r.link_mbps, int(held.get(name, 0)), h.ok if h else None, h.error if h else None,
                                    h.latency_ms if h else None, h.checked_real if h else None))
            for child in w.children(name):
                visit(child.name, depth + 1)

        for top in w.topology_roots():  # a master, or a dual-master pair side by side
            for r in top:
                visit(r.name, 0)
        for r in w.registries:  # anything the walk did not reach (cannot happen in a checked world)
            visit(r.name, 0)
        return out

    def replication_policies(self) -> list[PolicyView]:
        return [PolicyView(p.name, p.source, tuple(p.destinations), p.trigger, p.schedule, _filter_text(p.repositories),
                           _filter_text(p.tags), p.override, p.deletions, p.bandwidth_mbps, p.concurrency)
                for p in self.world.replication]

    def replications(self, limit: int = 200) -> list[ExecutionView]:
        now = time.time()
        out = []
        for r in ReplicationRow.select().order_by(ReplicationRow.id.desc()).limit(limit):
            ran = ((r.real_finished or now) - r.real_started) if r.real_started else 0.0
            out.append(ExecutionView(r.id, r.policy, r.trigger, r.state, r.actor, r.scope, r.tasks_total, r.tasks_done,
                                     r.tasks_failed, r.tasks_conflict, r.bytes_moved, r.bytes_needed, r.created_t,
                                     r.real_started,
                                     r.real_finished, r.bytes_moved / ran if ran > 0 else 0.0, r.error))
        return out

    def replication_tasks(self, execution: int, limit: int = 2000) -> list[ReplicationTaskView]:
        q = (ReplicationTaskRow.select().where(ReplicationTaskRow.execution == execution)
             .order_by(ReplicationTaskRow.id).limit(limit))
        return [ReplicationTaskView(t.id, t.repo, t.tag, t.source, t.destination, t.action, t.state, t.bytes_moved,
                                    t.attempts, t.error) for t in q]

    def registry_matrix(self) -> MatrixView:
        """Every image x every registry: source, in sync, behind (with the lag), failed, conflict."""
        names = [n.name for n in self.registry_tree()]
        depth = {n.name: n.depth for n in self.registry_tree()}
        held: dict[str, dict[str, dict[str, str]]] = {}
        first: dict[tuple[str, str], tuple[int, float, str, str]] = {}
        for reg, repo, tag, digest, since in RegistryImageRow.select(
                RegistryImageRow.registry, RegistryImageRow.repo, RegistryImageRow.tag, RegistryImageRow.digest,
                RegistryImageRow.since_t).tuples():
            held.setdefault(reg, {}).setdefault(repo, {})[tag] = digest
            key = (depth.get(reg, 99), since, reg, digest)
            if (repo, tag) not in first or key < first[(repo, tag)]:
                first[(repo, tag)] = key
        truth = {img: (reg, digest, since) for img, (_, since, reg, digest) in first.items()}
        failed, conflicts = self._last_outcomes()
        cells = matrix(sorted(first), names, truth, held, failed, self.clock().t, conflicts)
        return MatrixView(names, [(f"{repo}:{tag}", row) for (repo, tag), row in cells.items()])

    def _last_outcomes(self) -> tuple[dict, dict]:
        """The last task of each (image, destination): failed, or a conflict (with why)."""
        last: dict[tuple[str, str, str], ReplicationTaskRow] = {}
        for t in ReplicationTaskRow.select().where(ReplicationTaskRow.state.in_(("failed", "conflict", "succeeded"))
                                                    ).order_by(ReplicationTaskRow.id):
            last[(t.repo, t.tag, t.destination)] = t
        failed = {k: t.error or "failed" for k, t in last.items() if t.state == "failed"}
        conflicts = {k: t.error or "conflict" for k, t in last.items() if t.state == "conflict"}
        return failed, conflicts

    def image_layers(self, image: str, registry: str | None = None) -> LayersView | None:
        """An image's blobs, which other images share each, and what sharing saves at that registry."""
        repo, _, tag = image.rpartition(":")
        q = RegistryImageRow.select().where((RegistryImageRow.repo == repo) & (RegistryImageRow.tag == tag))
        rows = {r.registry: r for r in q}
        if not rows:
            return None
        reg = registry if registry in rows else sorted(rows, key=lambda n: rows[n].since_t)[0]
        everything = {f"{r.repo}:{r.tag}": r.digest for r in
                      RegistryImageRow.select().where(RegistryImageRow.registry == reg)}
        manifests = {m.digest: m for m in ManifestRow.select().where(ManifestRow.digest.in_(set(everything.values())))}
        blobs_of_image = {ref: _all_blobs(manifests, d) for ref, d in everything.items()}
        share = sharing(blobs_of_image)
        users = {x.digest: x.images for x in share.layers}
        mine = rows[reg].digest
        m = manifests.get(mine)
        blobs = [(d, n, tuple(i for i in users.get(d, ()) if i != image)) for d, n in blobs_of_image.get(image, [])]
        return LayersView(image, reg, mine, m.media_type if m else "?", blobs, share)

    # --- actions ------------------------------------------------------------------------------------

    def replication_refusal(self, policy: str, images: list[str] | None = None) -> str | None:
        """Why a replication of these images (None: every image) with this policy cannot start,
        in one line, or None: an unknown policy, what is not an image NAME:TAG, an image the
        policy's filters leave out, or one its source does not hold (as the store last saw it)."""
        p = next((x for x in self.world.replication if x.name == policy), None)
        if p is None:
            return (f"no replication policy named {policy!r} "
                    f"(policies: {', '.join(x.name for x in self.world.replication) or 'none'})")
        images = images or []
        if len(images) > MAX_IMAGES:
            return (f"at most {MAX_IMAGES} images in one replication, got {len(images)}: name none for every image "
                    "the policy covers")
        bad = next((i for i in images if not all(i.rpartition(":")[::2]) or "/" in i.rpartition(":")[2]), None)
        if bad is not None:
            return f"{bad!r} is not an image NAME:TAG"
        outside = next((i for i in images if not (p.repositories.allows(i.rpartition(":")[0])
                                                  and p.tags.allows(i.rpartition(":")[2]))), None)
        if outside is not None:
            return (f"policy {p.name} does not cover {outside} (repositories: {_filter_text(p.repositories)}; "
                    f"tags: {_filter_text(p.tags)})")
        held = {(r, t) for r, t in RegistryImageRow.select(RegistryImageRow.repo, RegistryImageRow.tag).where(
            RegistryImageRow.registry == p.source).tuples()}
        if held:  # known: the store has seen what the source holds
            absent = next((i for i in images if tuple(i.rsplit(":", 1)) not in held), None)
            if absent is not None:
                return (f"{p.source} does not hold {absent} (as last seen), so policy {p.name} has nothing of it "
                        "to replicate")
        return None

    @requestable
    def replicate(self, policy: str, images: list[str] | None = None) -> Outcome:
        """Start a policy's replication now (of some images, or all it covers)."""
        from cockpit.engine.registry_watch import queue

        why = self.replication_refusal(policy, images)
        if why is not None:
            return Outcome(False, why)
        scope = [tuple(i.rsplit(":", 1)) for i in images] if images else None
        now = self.clock().t

        def do() -> str:
            ex = queue(policy, "manual", self.cfg.user, now, time.time(), scope)
            return f"replication {ex} queued: {policy}" + (f" ({', '.join(images)})" if images else "")

        outcome = self._act("registry.replicate", policy, {"policy": policy, "images": images}, do)
        self._kick_replicator()
        return outcome

    @requestable
    def stop_replication(self, execution: int) -> Outcome:
        row = ReplicationRow.get_or_none(ReplicationRow.id == execution)
        if row is None:
            return Outcome(False, f"no replication {execution}")

        def do() -> str:
            now = ReplicationRow.get_by_id(execution)
            if now.state not in ACTIVE:
                raise ValueError(f"replication {execution} is {now.state}: there is nothing to stop")
            ReplicationRow.update(stop_requested=True).where(ReplicationRow.id == execution).execute()
            return f"replication {execution}: stopping (the copies under way end first)"

        outcome = self._act("registry.stop", f"replication {execution}", {"execution": execution}, do)
        self._kick_replicator()
        return outcome

    def _kick_replicator(self) -> None:
        engine = getattr(self, "engine", None)
        if engine is not None and getattr(engine, "replicator", None) is not None:
            engine.replicator.kick()


def _all_blobs(manifests: dict, digest: str) -> list[tuple[str, int]]:
    m = manifests.get(digest)
    if m is None:
        return []
    if m.children:
        out: list[tuple[str, int]] = []
        for child in m.children:
            cm = ManifestRow.get_or_none(ManifestRow.digest == child)
            out += [tuple(b) for b in (cm.blobs if cm else [])]
        return out
    return [tuple(b) for b in m.blobs]
