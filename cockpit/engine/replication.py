"""Replication executions: a policy's images copied from its source to its destinations, moving
only what is missing.

An execution is planned once (outside any transaction: it asks the registries what they hold)
into tasks, one per image and destination, written in a fenced transaction. Tasks then run with
the policy's concurrency: for each blob, HEAD at the destination first, mount it when the
destination holds it in another repository, else fetch it from the source (once per execution,
however many images share it: a spool on disk, kept for the next executions down a hierarchy
and bounded in size), check its digest, and push it; the manifests
last, and the tag only if the destination still holds what it held when planned (otherwise a
conflict, left alone). Answers are recorded in fenced transactions. An engine that dies part-way
is replaced by one that runs the unfinished tasks again: every blob already there is skipped.

Down a hierarchy, an execution follows the older ones still copying into its source: it plans
their images as if they were there already, and each of those tasks is held (not due) until
no copy brings its image any more; the transaction that settles the last one makes it due. So
the lower hop copies an image as soon as it lands, not when the whole upper hop is over.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from pathlib import Path

import peewee as pw

from cockpit.backends.base import Manifest, Registry, RegistryError
from cockpit.core.replication import Step, allowed, plan
from cockpit.domain import World
from cockpit.engine import journal
from cockpit.engine.background import Background
from cockpit.engine.lease import LeaseLost
from cockpit.engine.registry_watch import RegistryWatch, saw
from cockpit.engine.replication_copy import CopyWork
from cockpit.engine.transfer import KnownManifests, Run, Stopped, TokenBucket, Turns, prune_spool
from cockpit.store.models import RegistryImageRow, ReplicationRow, ReplicationTaskRow

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 5  # tries of a task whose registry may come back (a cut connection, a 5xx)
FINAL = ("succeeded", "failed", "stopped", "conflict")
SPOOL_MAX_BYTES = 2 << 30  # verified blobs kept for the next executions; the least recently used go first
MAX_RUNNING = 4  # executions carried forward side by side (a slow link holds up only its own)
OPEN = ("pending", "running")
COPIES = ("copy", "overwrite")
HELD = 1e18  # not_before_real of a task whose image is still on its way to its source


class Replicator(Background, RegistryWatch, CopyWork):
    THREAD = "replicator"

    def __init__(self, db: pw.Database, world: World, registries: dict[str, Registry], *,
                 fence: Callable[[], AbstractContextManager] | None = None,
                 platform_now: Callable[[], float] = time.time, real_clock: Callable[[], float] = time.time,
                 spool_dir: str | Path, sleep: Callable[[float], None] = time.sleep, seed: int = 0,
                 simulated: bool = False, clock: Callable[[], float] = time.monotonic,
                 max_attempts: int = MAX_ATTEMPTS, backoff_s: float = 2.0, spool_max_bytes: int = SPOOL_MAX_BYTES,
                 backend_health=None):
        """`simulated`: the registries are the simulation's, and the world's releases happen in them.
        `sleep` and `clock` time the bandwidth cap (the platform's, for simulated transfers).
        `backend_health`: the engine's memory of its backends (engine/health.py), told each ping."""
        self.db = db
        self.backend_health = backend_health
        self.world = world
        self.registries = registries
        self.fence = fence or db.atomic
        self.platform_now = platform_now
        self.real_clock = real_clock
        self.spool_dir = Path(spool_dir)
        self.spool_max_bytes = spool_max_bytes
        self._sleep = sleep
        self.policies = {p.name: p for p in world.replication}
        self._sources = {p.source for p in world.replication}  # registries an execution may follow copies into
        self._rng = random.Random(seed)
        self.simulated = simulated
        self.clock = clock
        self.max_attempts, self.backoff_s = max_attempts, backoff_s
        self._health_at = 0.0
        self._scan_at = 0.0
        self._turns = Turns()
        # Where this engine has placed each blob at each destination, across executions: where to
        # mount it from next time. A hint only (a mount that fails falls back to HEAD and push).
        self._where: dict[tuple[str, str], set[str]] = {}
        self._where_lock = threading.Lock()
        self._inflight: set[int] = set()  # executions a runner thread is carrying forward
        self._inflight_lock = threading.Lock()
        self._known = KnownManifests()
        self._runs: dict[int, Run] = {}  # what each open execution's transfers share, across its steps
        self._runs_lock = threading.Lock()
        # Bumped when a task ends (and so may have released held ones): a feeder waiting for room
        # or for work looks again.
        self._news = threading.Condition()
        self._news_n = 0
        self._lease_lost = threading.Event()
        super().__init__()

    # --- the thread -------------------------------------------------------------------------------

    def _before_start(self) -> None:
        self.recover()

    def sleep(self, seconds: float) -> None:
        """Wait out a bandwidth cap; a replicator asked to stop does not wait (the transfer ends and
        its task goes back to pending for the next engine)."""
        if self._sleep is time.sleep:
            if self._stop.wait(seconds):
                raise Stopped
        elif self._stop.is_set():
            raise Stopped
        else:
            self._sleep(seconds)

    def _loop(self) -> None:
        """Up to MAX_RUNNING executions at once, oldest first, each on a runner thread with its
        own task pool; an execution waiting out a back-off gives its place up meanwhile."""
        self._lease_lost.clear()
        with ThreadPoolExecutor(MAX_RUNNING, thread_name_prefix="execution") as runners:
            while not self.ending() and not self._lease_lost.is_set():
                try:
                    self.upkeep()
                    for ex_id in self._ready(MAX_RUNNING - len(self._inflight)):
                        with self._inflight_lock:
                            self._inflight.add(ex_id)
                        runners.submit(self._carry, ex_id)
                except LeaseLost:
                    self._lease_lost.set()
                except Exception:  # noqa: BLE001 - the replicator must not die silently in a thread
                    log.exception("replicator")
                self._wake.wait(timeout=1.0)
                self._wake.clear()
            if self._lease_lost.is_set():
                log.warning("replicator stopped: the engine lease is gone")
            self._stop.set()  # the runners end at their next blob

    def _ready(self, room: int) -> list[int]:
        """The oldest open executions that no runner carries and that have something to do now
        (to plan, to stop, a task due, or all settled)."""
        if room <= 0:
            return []
        now = self.real_clock()
        with self._inflight_lock:
            busy = set(self._inflight)
        out = []
        for ex in (ReplicationRow.select().where(ReplicationRow.state.in_(OPEN))
                   .order_by(ReplicationRow.id).limit(room + len(busy) + 200)):
            if ex.id in busy or (ex.state == "pending" and not ex.stop_requested and self._feeder_pending(ex)):
                continue
            open_tasks = ReplicationTaskRow.select().where((ReplicationTaskRow.execution == ex.id)
                                                           & ReplicationTaskRow.state.in_(OPEN))
            due = open_tasks.where((ReplicationTaskRow.state == "pending")
                                   & (ReplicationTaskRow.not_before_real <= now)).exists()
            if ex.state == "pending" or ex.stop_requested or due or not open_tasks.exists():
                out.append(ex.id)
                if len(out) == room:
                    break
        return out

    def _carry(self, ex_id: int) -> None:
        """A runner: the execution forward until it ends or waits out a back-off."""
        try:
            while not self._stop.is_set():
                ex = ReplicationRow.get_or_none(ReplicationRow.id == ex_id)
                if ex is None or ex.state not in ("pending", "running") or not self._step(ex, wait=False):
                    break
        except LeaseLost:
            self._lease_lost.set()
        except Exception:  # noqa: BLE001 - one execution's trouble must not end the runner pool
            log.exception("replication %s", ex_id)
        finally:
            with self._inflight_lock:
                self._inflight.discard(ex_id)
            self.kick()  # its place is free: the next one may start

    def recover(self) -> None:
        """Tasks an engine left running run again (their blobs already there are skipped); back-offs
        timed by another host's clock are over. Tasks held for an image on its way stay held while
        an open copy still brings it."""
        T = ReplicationTaskRow
        with self.fence():
            T.update(state="pending", not_before_real=0.0).where(
                (T.state == "running") | ((T.state == "pending") & (T.not_before_real < HELD))).execute()
            self._release()  # a safety net: held for a copy that is over

    # --- executions --------------------------------------------------------------------------------

    def run_once(self) -> bool:
        """Carry the oldest open execution forward, on this thread (tests and benchmarks; the
        replicator's own thread runs several at once). True when there was one to work on."""
        ex = (ReplicationRow.select().where(ReplicationRow.state.in_(("pending", "running")))
              .order_by(ReplicationRow.id).first())
        if ex is None:
            return False
        self._step(ex, wait=True)
        return True

    def _step(self, ex: ReplicationRow, *, wait: bool) -> bool:
        """Plan the execution if it is new, run its due tasks, finish it when all are settled.
        True when there may be more to do at once (False: it ended, or every open task waits out
        a back-off; `wait` then waits a little on this thread)."""
        if ex.stop_requested:
            self._finish(ex.id)
            return False
        if ex.state == "pending" and (self._feeder_pending(ex) or not self._plan(ex)):
            return False
        ran = self._work(ex)
        if self._stop.is_set():
            return False  # the engine is stopping: what is left is for the next one
        if not self._open(ex.id):
            self._finish(ex.id)
            return False
        if not ran and wait:
            self._stop.wait(0.2)  # all waiting out a back-off
        return ran

    def _open(self, ex_id: int) -> bool:
        return ReplicationTaskRow.select().where((ReplicationTaskRow.execution == ex_id)
                                                 & ReplicationTaskRow.state.in_(("pending", "running"))).exists()

    def _plan(self, ex: ReplicationRow) -> bool:
        """Ask the registries what they hold and write the tasks. False when it could not be planned."""
        policy = self.policies.get(ex.policy)
        if policy is None:
            self._fail(ex.id, f"no replication policy named {ex.policy!r} in the world")
            return False
        source = self._source_of(ex, policy)
        if source is None:
            return False
        dests = {}
        dual = self.world.dual_peer(policy.source) in policy.destinations
        only = [tuple(x) for x in ex.scope] if ex.scope else None
        if only is not None and not self._covered(ex, policy, source, only):
            return False
        # Deletions look at every repository the destination holds: one whose last tag the
        # source deleted is no longer in the source's list.
        everything = policy.deletions and not dual and only is None
        for d in policy.destinations:
            try:
                held = self._contents(d, policy, repos=None if everything else source)
            except RegistryError as e:  # copies are planned; each task then says what the destination answers
                log.info("planning %s: %s", ex.policy, e)
                held = {}
            dests[d] = {r: {t: dg for t, (dg, _) in tags.items()} for r, tags in held.items()}
        self._write_plan(ex, policy, plan(policy, source, dests, dual=dual, only=only))
        return True

    def _source_of(self, ex: ReplicationRow, policy) -> dict[str, dict[str, str]] | None:
        """{repo: {tag: digest}} the source holds, and what older executions are copying into it.
        None when the source could not be listed (the execution failed, saying why)."""
        # Read before the listing: a copy that lands in between is in one or the other.
        coming = self._incoming(ex.id, policy)
        try:
            listed = self._contents(policy.source, policy, record=True)
        except RegistryError as e:
            self._fail(ex.id, f"planning: the source: {e}")
            return None
        except (LeaseLost, pw.PeeweeException):
            raise
        except Exception as e:  # noqa: BLE001 - an odd answer fails this execution, not the replicator
            log.debug("planning replication %s", ex.id, exc_info=True)
            self._fail(ex.id, "planning: the source: " + " ".join(f"{type(e).__name__}: {e}".split()))
            return None
        source = {r: {t: d for t, (d, _) in tags.items()} for r, tags in listed.items()}
        for (repo, tag), digest in coming.items():
            source.setdefault(repo, {})[tag] = digest  # what it will hold when that copy lands
        return source

    def _write_plan(self, ex: ReplicationRow, policy, steps: list[Step]) -> None:
        """The tasks, in one fenced transaction: those of images still on their way to the source
        held (read in that transaction, so the copy that lands one cannot slip by unseen)."""
        now_real = self.real_clock()
        rows = []
        with self.fence():
            coming = self._incoming(ex.id, policy)
            for s in steps:
                conflict = s.action == "conflict"
                held = s.action in COPIES and coming.get((s.repo, s.tag)) == s.digest
                note = (f"{s.destination} holds {s.found} under this tag, {policy.source} {s.digest}: left alone"
                        if conflict else f"waiting for it to land at {policy.source}" if held else None)
                rows.append({"execution": ex.id, "repo": s.repo, "tag": s.tag, "source": policy.source,
                             "destination": s.destination, "digest": s.digest, "found": s.found, "action": s.action,
                             "state": "conflict" if conflict else "pending", "error": note,
                             "not_before_real": HELD if held else 0.0, "real_finished": now_real if conflict else None})
                if conflict:
                    journal.event(self.platform_now(), "warn", "registry", s.destination,
                                  f"conflict: {s.repo}:{s.tag} at {s.destination} is {s.found[:19]}, at "
                                  f"{policy.source} {s.digest[:19]}: left alone")
            for i in range(0, len(rows), 50):  # under SQLite's limit of variables in one statement
                ReplicationTaskRow.insert_many(rows[i:i + 50]).execute()
            ReplicationRow.update(state="running", tasks_total=len(steps), real_started=now_real).where(
                ReplicationRow.id == ex.id).execute()
        self.kick()  # an execution following this one may plan now

    def _incoming(self, ex_id: int, policy) -> dict[tuple[str, str], str]:
        """(repo, tag) -> digest of the images on their way to the policy's source: copies into it
        still open in older executions (none copying back from this policy's destinations, as
        between dual masters), under the policy's filters."""
        T = ReplicationTaskRow
        q = (T.select(T.repo, T.tag, T.digest).where(
            (T.execution < ex_id) & (T.destination == policy.source) & T.state.in_(OPEN) & T.action.in_(COPIES)
            & T.source.not_in(list(policy.destinations))).order_by(T.id))
        rf, tf = policy.repositories, policy.tags
        return {(r, t): d for r, t, d in q.tuples()
                if allowed(r, rf.include, rf.exclude) and allowed(t, tf.include, tf.exclude)}

    def _feeder_pending(self, ex: ReplicationRow) -> bool:
        """An older execution that will copy into this one's source is not planned yet: this one
        plans after it, to follow it."""
        policy = self.policies.get(ex.policy)
        if policy is None:
            return False
        feeders = [p.name for p in self.world.replication
                   if policy.source in p.destinations and p.source not in policy.destinations]
        R = ReplicationRow
        return bool(feeders) and R.select().where(
            (R.id < ex.id) & (R.state == "pending") & R.policy.in_(feeders)).exists()

    def _release(self, source: str | None = None, image: tuple[str, str, str] | None = None) -> int:
        """Held tasks (reading from `source`, of `image` (repo, tag, digest)) whose image no open copy
        in an older execution brings any more: due now. Called in the transaction that settled a
        copy. Each then reads its manifest at its source: one whose copy failed fails, saying so."""
        T, U = ReplicationTaskRow, ReplicationTaskRow.alias("bringing")
        bringing = U.select(U.id).where(
            (U.destination == T.source) & (U.repo == T.repo) & (U.tag == T.tag) & (U.digest == T.digest)
            & (U.execution < T.execution) & U.state.in_(OPEN) & U.action.in_(COPIES))
        q = T.update(not_before_real=0.0, error=None).where(
            (T.state == "pending") & (T.not_before_real >= HELD) & ~pw.fn.EXISTS(bringing))
        if source is not None:
            q = q.where(T.source == source)
        if image is not None:
            q = q.where((T.repo == image[0]) & (T.tag == image[1]) & (T.digest == image[2]))
        return q.execute()

    def _covered(self, ex: ReplicationRow, policy, source, only: list[tuple[str, str]]) -> bool:
        """An execution of some images: at least one is the policy's and at the source. False
        (the execution failed, saying why) when none is."""
        if any(tag in source.get(repo, {}) for repo, tag in only):
            return True
        why = []
        for repo, tag in only[:5]:
            if not (allowed(repo, policy.repositories.include, policy.repositories.exclude)
                    and allowed(tag, policy.tags.include, policy.tags.exclude)):
                why.append(f"{repo}:{tag} is not covered by policy {policy.name}")
            else:
                why.append(f"{repo}:{tag} is not at the source {policy.source}")
        more = f" (and {len(only) - 5} more)" if len(only) > 5 else ""
        self._fail(ex.id, "nothing to replicate: " + "; ".join(why) + more)
        return False

    def _contents(self, name: str, policy, *, record: bool = False, repos=None) -> dict[str, dict[str, tuple[str, Manifest]]]:
        """{repo: {tag: (digest, manifest)}} of a registry, under the policy's filters (the source's
        repositories only, for a destination). The source's manifests are kept for the views; all
        are known to the tasks, which need not read them again."""
        reg = self.registries[name]
        names = sorted(repos) if repos is not None else [
            r for r in reg.catalog() if allowed(r, policy.repositories.include, policy.repositories.exclude)]
        def held(repo: str) -> dict[str, tuple[str, Manifest]]:
            tags = {}
            for tag in reg.tags(repo):
                if allowed(tag, policy.tags.include, policy.tags.exclude):
                    m = reg.manifest(repo, tag)
                    if m is not None:
                        tags[tag] = (m.digest, m)
                        self._known.add(name, repo, m)
            return tags

        # repositories asked about side by side, as many as the policy's transfers
        with ThreadPoolExecutor(max(1, min(policy.concurrency, len(names) or 1)), thread_name_prefix="plan") as pool:
            out = {repo: tags for repo, tags in zip(names, pool.map(held, names)) if tags}
        self._seen(name, out, keep_manifests=record)
        return out

    def _work(self, ex: ReplicationRow) -> bool:
        """Run the execution's due tasks, `concurrency` at a time, taking up those that fall due
        meanwhile (held ones a feeding execution released, back-offs over). False when none was due."""
        policy = self.policies[ex.policy]
        run, room = self._run_of(ex, policy), max(1, policy.concurrency)
        taken: set[int] = set()  # submitted and not over (the store may still say pending)
        queued: deque[ReplicationTaskRow] = deque()
        escaped: list[BaseException] = []  # the store's trouble (a lost lease), or the process dying
        ran = False

        def one(task: ReplicationTaskRow) -> None:
            try:
                self._task(run, task)
            except BaseException as e:
                escaped.append(e)
                raise
            finally:
                with self._news:
                    taken.discard(task.id)
                self._nudge()

        with ThreadPoolExecutor(room, thread_name_prefix="replicate") as pool:
            while True:
                with self._news:
                    seen, busy = self._news_n, len(taken)
                if not self._stop.is_set() and not escaped and busy < room:
                    if not queued:
                        queued.extend(t for t in self._due(ex.id) if t.id not in taken)
                    while queued and busy < room:
                        task = queued.popleft()
                        with self._news:
                            taken.add(task.id)
                        pool.submit(one, task)
                        ran, busy = True, busy + 1
                if busy == 0:
                    if escaped:
                        raise escaped[0]
                    return ran
                with self._news:  # a task of this execution or another ended (and may have released some)
                    self._news.wait_for(lambda: self._news_n != seen, timeout=1.0)

    def _nudge(self) -> None:
        with self._news:
            self._news_n += 1
            self._news.notify_all()

    def wait_over(self, executions: list[int], timeout: float) -> bool:
        """Wait until these executions have ended (True) or `timeout` seconds passed (False),
        looking at the store each time a task or an execution of this replicator ends."""
        deadline = time.monotonic() + timeout
        while True:
            with self._news:
                seen = self._news_n
            if not ReplicationRow.select().where(ReplicationRow.id.in_(executions)
                                                 & ReplicationRow.state.in_(OPEN)).exists():
                return True
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            with self._news:
                self._news.wait_for(lambda: self._news_n != seen, timeout=min(left, 1.0))

    def _due(self, ex_id: int) -> list[ReplicationTaskRow]:
        T = ReplicationTaskRow
        return list(T.select().where((T.execution == ex_id) & (T.state == "pending")
                                     & (T.not_before_real <= self.real_clock())).order_by(T.id))

    def _run_of(self, ex: ReplicationRow, policy) -> Run:
        """What the execution's transfers share, kept across its steps (until it finishes)."""
        with self._runs_lock:
            run = self._runs.get(ex.id)
            if run is None:
                limiter = (TokenBucket(policy.bandwidth_mbps * 1e6 / 8, self.sleep, self.clock)
                           if policy.bandwidth_mbps else None)
                run = self._runs[ex.id] = Run(ex.id, self.spool_dir / "blobs", limiter)
        run.spool.mkdir(parents=True, exist_ok=True)
        return run

    def _task(self, run: Run, task: ReplicationTaskRow) -> None:
        with self.fence():
            ReplicationTaskRow.update(state="running", real_started=self.real_clock(),
                                      attempts=ReplicationTaskRow.attempts + 1).where(
                ReplicationTaskRow.id == task.id).execute()
        try:
            if task.action == "delete":
                moved, needed, outcome = 0, 0, self._delete(task)
            else:
                moved, needed, outcome = self._copy(run, task)
            self._done(task, outcome, moved, needed)
        except Stopped:
            if ReplicationRow.get_by_id(task.execution).stop_requested:
                self._record(task, "stopped", "the execution was stopped")
            else:  # the engine is stopping: the next one runs it again
                self._record(task, "pending", None)
        except RegistryError as e:
            if e.retry and task.attempts + 1 < self.max_attempts:
                wait = min(self.backoff_s * 2.0 ** task.attempts, 60.0) * (0.5 + self._rng.random() / 2)
                self._record(task, "pending", f"{e} (trying again in {wait:.0f} s)", not_before=self.real_clock() + wait)
            else:
                self._record(task, "failed", str(e))
        except OSError as e:  # the spool: a full disk, a file gone
            self._record(task, "failed", f"spool: {e.strerror or e}")
        except (LeaseLost, pw.PeeweeException):
            raise  # the store, not the task: the replicator's loop deals with it
        except Exception as e:  # noqa: BLE001 - an odd answer fails its task, never the whole replication
            log.debug("replication task %s (%s:%s to %s)", task.id, task.repo, task.tag, task.destination,
                      exc_info=True)
            self._record(task, "failed", " ".join(f"{type(e).__name__}: {e}".split()))

    def _stopping(self, run: Run) -> None:
        """Raise Stopped when the engine stops or the execution was asked to (read from the store a
        few times a second, not before each blob: a stop still ends it at its next blob)."""
        if self._stop.is_set():
            raise Stopped
        if run.stop_due(time.monotonic()):
            run.stop_asked = ReplicationRow.get_by_id(run.id).stop_requested
        if run.stop_asked:
            raise Stopped

    # --- recording -----------------------------------------------------------------------------------

    def _done(self, task: ReplicationTaskRow, outcome: str, moved: int, needed: int) -> None:
        """Record a task's outcome: "succeeded", "kept: why" (a deletion left undone, on
        purpose: it succeeded, with the note) or "conflict: why"."""
        now_t, now_real = self.platform_now(), self.real_clock()
        kind, _, note = outcome.partition(": ")
        with self.fence():
            if kind in ("succeeded", "kept"):
                ReplicationTaskRow.update(state="succeeded", bytes_moved=moved, bytes_needed=needed, error=note or None,
                                          real_finished=now_real).where(ReplicationTaskRow.id == task.id).execute()
                if kind == "kept":
                    journal.event(now_t, "info", "registry", task.destination, note)
                elif task.action == "delete":
                    RegistryImageRow.delete().where((RegistryImageRow.registry == task.destination)
                                                    & (RegistryImageRow.repo == task.repo)
                                                    & (RegistryImageRow.tag == task.tag)).execute()
                else:
                    saw(task.destination, task.repo, task.tag, task.digest, now_t, now_real)
                    if self.simulated:  # a real registry notifies its pushes itself (the webhook)
                        self._on_push(task.destination, task.repo, task.tag, now_t)
                ReplicationRow.update(tasks_done=ReplicationRow.tasks_done + 1,
                                      bytes_moved=ReplicationRow.bytes_moved + moved,
                                      bytes_needed=ReplicationRow.bytes_needed + needed).where(
                    ReplicationRow.id == task.execution).execute()
            else:
                ReplicationTaskRow.update(state="conflict", bytes_moved=moved, bytes_needed=needed, error=note,
                                          real_finished=now_real).where(ReplicationTaskRow.id == task.id).execute()
                ReplicationRow.update(bytes_moved=ReplicationRow.bytes_moved + moved,
                                      bytes_needed=ReplicationRow.bytes_needed + needed).where(
                    ReplicationRow.id == task.execution).execute()
                journal.event(now_t, "warn", "registry", task.destination, f"{task.repo}:{task.tag}: {outcome}")
            released = self._landed(task)
        if released:
            self.kick()

    def _record(self, task: ReplicationTaskRow, state: str, error: str | None, not_before: float = 0.0) -> None:
        with self.fence():
            ReplicationTaskRow.update(state=state, error=error, not_before_real=not_before,
                                      real_finished=None if state == "pending" else self.real_clock()).where(
                ReplicationTaskRow.id == task.id).execute()
            released = self._landed(task) if state not in OPEN else 0
        if released:
            self.kick()

    def _landed(self, task: ReplicationTaskRow) -> int:
        """A copy settled (in this transaction): the tasks held for its image, if nothing else brings it."""
        if task.action not in COPIES or task.destination not in self._sources:
            return 0
        return self._release(task.destination, (task.repo, task.tag, task.digest))

    def _fail(self, ex_id: int, why: str) -> None:
        with self.fence():
            ReplicationRow.update(state="failed", error=why, real_finished=self.real_clock()).where(
                ReplicationRow.id == ex_id).execute()
            journal.event(self.platform_now(), "error", "registry", f"replication {ex_id}",
                          f"replication {ex_id} failed: {why}")
        self._nudge()

    def _finish(self, ex_id: int) -> None:
        with self.fence():
            ex = ReplicationRow.get_by_id(ex_id)
            if ex.stop_requested:
                ReplicationTaskRow.update(state="stopped", error="the execution was stopped",
                                          not_before_real=0.0).where(
                    (ReplicationTaskRow.execution == ex_id) & ReplicationTaskRow.state.in_(OPEN)).execute()
            counts = {s: n for s, n in ReplicationTaskRow.select(ReplicationTaskRow.state, pw.fn.COUNT(ReplicationTaskRow.id))
                      .where(ReplicationTaskRow.execution == ex_id).group_by(ReplicationTaskRow.state).tuples()}
            state = ("stopped" if ex.stop_requested else "failed" if counts.get("failed") else "succeeded")
            ReplicationRow.update(state=state, tasks_failed=counts.get("failed", 0),
                                  tasks_conflict=counts.get("conflict", 0), real_finished=self.real_clock()).where(
                ReplicationRow.id == ex_id).execute()
            moved = ex.bytes_moved / 1e6
            journal.event(self.platform_now(), "warn" if state != "succeeded" or counts.get("conflict") else "info",
                          "registry", f"replication {ex_id}",
                          f"replication {ex_id} ({ex.policy}) {state}: {counts.get('succeeded', 0)} copied, "
                          f"{counts.get('failed', 0)} failed, {counts.get('conflict', 0)} conflicts, {moved:,.1f} MB moved")
            released = self._release()  # its stopped copies bring nothing any more
        with self._runs_lock:
            self._runs.pop(ex_id, None)
            waiting = bool(self._runs)  # executions under way, carried or waiting for images
        if released:
            self.kick()
        self._nudge()
        with self._inflight_lock:
            alone = self._inflight <= {ex_id} and not waiting
        if alone:  # another execution under way may be about to push a file of the spool
            prune_spool(self.spool_dir / "blobs", self.spool_max_bytes)



def step_of(row: ReplicationTaskRow) -> Step:
    return Step(row.repo, row.tag, row.destination, row.digest, row.action, row.found)
