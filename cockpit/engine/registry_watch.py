"""What the replicator keeps watching besides its executions: each registry's health, what real
registries hold (a scan now and then), the simulated platform's releases, and pushes notified to
the webhook, which queue the event-triggered executions. Mixed into the Replicator, whose
registries, fence and clocks it uses."""

from __future__ import annotations

import logging
import time

import peewee as pw

from cockpit.backends.base import RegistryError
from cockpit.core.replication import allowed
from cockpit.engine import journal
from cockpit.engine.registries import manifest_row
from cockpit.store.db import get_meta, set_meta
from cockpit.store.models import ManifestRow, RegistryHealthRow, RegistryImageRow, ReplicationRow

log = logging.getLogger(__name__)

HEALTH_S = 5.0  # how often the registries are pinged
SCAN_S = 60.0  # how often real registries are asked what they hold


class RegistryWatch:
    def upkeep(self) -> None:
        """Every few seconds: ping the registries; on the simulated platform, push what its world
        releases at this platform time; real registries are asked what they hold now and then."""
        now = self.real_clock()
        if now - self._health_at >= HEALTH_S:
            self._health_at = now
            self._health()
        if self.simulated:
            self._releases()
        elif now - self._scan_at >= SCAN_S:
            self._scan_at = now
            self.scan()

    def scan(self) -> None:
        """What each real registry holds, every tag of every repository, replaces what the store
        said (the matrix then shows the registries as they are, whatever changed them)."""
        for name, reg in self.registries.items():
            try:
                held = {}
                for repo in reg.catalog():  # outside any transaction
                    for tag in reg.tags(repo):
                        m = reg.manifest(repo, tag)
                        if m is not None:
                            held[(repo, tag)] = m
            except RegistryError as e:
                log.info("scan of %s: %s", name, e)
                continue
            now_t, now_real = self.platform_now(), self.real_clock()
            with self.fence():
                for (repo, tag), m in held.items():
                    ManifestRow.insert(**manifest_row(m)).on_conflict_ignore().execute()
                    saw(name, repo, tag, m.digest, now_t, now_real)
                for row in RegistryImageRow.select().where(RegistryImageRow.registry == name):
                    if (row.repo, row.tag) not in held:
                        RegistryImageRow.delete().where(RegistryImageRow.id == row.id).execute()

    def _health(self) -> None:
        answers = []
        for name, reg in self.registries.items():  # outside any transaction
            start = time.monotonic()
            try:
                reg.ping()
                answers.append((name, True, None, (time.monotonic() - start) * 1000))
            except RegistryError as e:
                answers.append((name, False, f"{e.code}: {e.message}", None))
        if self.backend_health is not None:  # since when it fails, and how old its last answer is
            for name, ok, error, _ in answers:
                self.backend_health.seen("registry", name, error if not ok else None)
        now = self.real_clock()
        with self.fence():
            for name, ok, error, ms in answers:
                RegistryHealthRow.insert(registry=name, ok=ok, error=error, latency_ms=ms, checked_real=now).on_conflict(
                    conflict_target=[RegistryHealthRow.registry],
                    update={RegistryHealthRow.ok: ok, RegistryHealthRow.error: error,
                            RegistryHealthRow.latency_ms: ms, RegistryHealthRow.checked_real: now}).execute()

    def _releases(self) -> None:
        """The world's releases whose time has come: the image appears in its registry, as a push."""
        now_t = self.platform_now()
        done_t = float(get_meta("releases_t") or self.world.start.timestamp())
        due = [r for r in self.world.releases if done_t < r.at.timestamp() <= now_t]
        if not due and done_t >= now_t:
            return
        from cockpit.engine.registries import world_manifest

        pushed = []
        for r in due:  # the simulated registries: in memory, outside any transaction
            m = world_manifest(self.world, r.image, r.variant)
            self.registries[r.registry].hold(r.repo, r.tag, m)  # a push from elsewhere: not over our links
            pushed.append((r, m))
        with self.fence():
            for r, m in pushed:
                repo, tag = r.image.rsplit(":", 1)
                ManifestRow.insert(**manifest_row(m)).on_conflict_ignore().execute()
                saw(r.registry, repo, tag, m.digest, r.at.timestamp(), self.real_clock())
                journal.event(r.at.timestamp(), "info", "registry", r.registry,
                              f"{r.image} pushed to {r.registry}" + (f" ({r.variant})" if r.variant else ""))
                self._on_push(r.registry, repo, tag, r.at.timestamp())
            set_meta("releases_t", str(now_t))
        if pushed:
            self.kick()

    def on_push(self, registry: str, images: list[tuple[str, str]]) -> int:
        """A registry says images were pushed (one notification envelope, at the webhook): the
        policies triggered by events from it replicate them, all queued in one transaction or
        none (the registry sends the envelope again). The number of executions queued."""
        with self.fence():
            n = sum(self._on_push(registry, repo, tag, self.platform_now()) for repo, tag in images)
        self.kick()
        return n

    def _on_push(self, registry: str, repo: str, tag: str, t: float) -> int:
        n = 0
        for p in self.world.replication:
            if (p.source == registry and p.trigger == "event" and allowed(repo, p.repositories.include, p.repositories.exclude)
                    and allowed(tag, p.tags.include, p.tags.exclude)):
                queue(p.name, "event", f"push:{registry}", t, self.real_clock(), [(repo, tag)])
                n += 1
        return n

    def _seen(self, registry: str, contents, keep_manifests: bool) -> None:
        """What a registry was seen to hold, for the matrix (and the source's manifests, for the layers)."""
        now_t, now_real = self.platform_now(), self.real_clock()
        with self.fence():
            for repo, tags in contents.items():
                for tag, (digest, m) in tags.items():
                    saw(registry, repo, tag, digest, now_t, now_real)
                    if keep_manifests:
                        ManifestRow.insert(**manifest_row(m)).on_conflict_ignore().execute()


def saw(registry: str, repo: str, tag: str, digest: str, now_t: float, now_real: float) -> None:
    """A registry holds this digest under this tag; the lag counts from when it first did (one
    statement: an upsert on the row's unique (registry, repo, tag))."""
    R = RegistryImageRow
    same = R.digest == pw.EXCLUDED.digest
    R.insert(registry=registry, repo=repo, tag=tag, digest=digest, since_t=now_t, seen_real=now_real).on_conflict(
        conflict_target=[R.registry, R.repo, R.tag],
        update={R.digest: pw.EXCLUDED.digest, R.seen_real: pw.EXCLUDED.seen_real,
                R.since_t: pw.Case(None, [(same, R.since_t)], pw.EXCLUDED.since_t)}).execute()


def queue(policy: str, trigger: str, actor: str, now_t: float, now_real: float,
          scope: list[tuple[str, str]] | None = None) -> int:
    """An execution to run (the caller's transaction)."""
    return ReplicationRow.insert(policy=policy, trigger=trigger, scope=[list(x) for x in scope] if scope else None,
                                 state="pending", actor=actor, created_t=now_t, real_created=now_real).execute()


def queue_scheduled(policy: str, now_t: float, now_real: float) -> int | None:
    """A cron firing's execution (the caller's transaction), unless the policy already has one
    pending or running: then the firing is skipped, and an event says so. The execution, or None."""
    open_ = (ReplicationRow.select(ReplicationRow.id).where((ReplicationRow.policy == policy)
                                                             & ReplicationRow.state.in_(("pending", "running")))
             .order_by(ReplicationRow.id).first())
    if open_ is not None:
        journal.event(now_t, "info", "registry", f"replication {open_.id}",
                      f"{policy}: the scheduled replication was skipped: replication {open_.id} of it is still open")
        return None
    return queue(policy, "cron", f"cron:{policy}", now_t, now_real)
