"""What one replication task does at the registries: copy an image (its blobs, skipped when
there, mounted from another repository of the destination, else fetched once into the spool and
pushed; then the manifests; the tag last, only if the destination still holds what it held when
planned) or delete a tag (only by digest, so never one that other kept tags share). A mixin of
the Replicator (replication.py), which plans the tasks, runs them and records their answers."""

from __future__ import annotations

import os

from cockpit.backends.base import Manifest, Registry, RegistryError, Spooled
from cockpit.core.images import blobs_of
from cockpit.core.replication import allowed
from cockpit.engine.transfer import Run
from cockpit.store.models import ReplicationRow, ReplicationTaskRow

WHERE_MAX = 200_000  # (destination, blob) pairs remembered as mount sources


class CopyWork:
    """Uses the Replicator's registries, policies, known manifests (`_known`), turns, mount
    hints (`_where`) and `_stopping`."""

    def _manifest(self, name: str, repo: str, digest: str) -> Manifest | None:
        """A manifest by digest at the world's registry `name`: known to be there already (listed
        while planning, or put there by this engine), else read from it."""
        m = self._known.get(name, repo, digest)
        if m is None:
            m = self.registries[name].manifest(repo, digest)
            if m is not None:
                self._known.add(name, repo, m)
        return m

    def _copy(self, run: Run, task: ReplicationTaskRow) -> tuple[int, int, str]:
        """(bytes moved, bytes the destination lacked, outcome)."""
        src, dst = self.registries[task.source], self.registries[task.destination]
        m = self._manifest(task.source, task.repo, task.digest)
        if m is None:
            raise RegistryError(task.source, "MANIFEST_UNKNOWN",
                                f"{task.repo}@{task.digest} is not at the source (gone, or its copy there failed)")
        children = []
        if m.is_index:
            for child in blobs_of(m.media_type, m.body)[1]:
                cm = self._manifest(task.source, task.repo, child)
                if cm is None:
                    raise RegistryError(task.source, "MANIFEST_UNKNOWN", f"{task.repo}@{child} (in an index) is gone")
                children.append(cm)
        blobs = [d for mm in children + ([] if m.is_index else [m]) for d, _ in blobs_of(mm.media_type, mm.body)[0]]
        moved = needed = 0
        for digest in dict.fromkeys(blobs):
            self._stopping(run)
            sent, lacked = self._blob(run, src, dst, task.repo, digest)
            moved, needed = moved + sent, needed + lacked
        for cm in children:
            dst.put_manifest(task.repo, cm.digest, cm)
            self._known.add(task.destination, task.repo, cm)
        # The tag moves only if the destination still holds what it held when this was planned:
        # someone may have pushed there since (the other master, a hand), and that is not ours to
        # overwrite. A tag deleted there since leaves nothing to overwrite.
        now = dst.manifest(task.repo, task.tag)
        if now is not None and now.digest != task.digest and now.digest != task.found:
            return moved, needed, f"conflict: {task.destination} now holds {now.digest} under this tag: left alone"
        if now is None or now.digest != task.digest:  # else already there (another execution, the other master)
            dst.put_manifest(task.repo, task.tag, m)
        self._known.add(task.destination, task.repo, m)  # for the executions that copy on from there
        return moved, needed, "succeeded"

    def _blob(self, run: Run, src: Registry, dst: Registry, repo: str, digest: str) -> tuple[int, int]:
        """One blob to the destination: skipped when there, mounted when in another of its
        repositories, else fetched (once, however many tasks need it) and pushed. (Bytes moved,
        bytes the destination lacked: the size of a blob it had to be sent.)
        Tasks that need one blob at one destination take turns (across executions too): the first
        pushes it, the others then mount it or find it. What this execution placed itself is not
        asked about again."""
        with self._turns.turn(("push", dst.name, digest)):
            with run.lock:
                placed = run.placed.setdefault((dst.name, digest), set())
                if repo in placed:
                    return 0, 0
                other = next(iter(sorted(placed)), None)
            if other is None:  # placed by an earlier or concurrent execution, perhaps
                with self._where_lock:
                    other = next(iter(sorted(self._where.get((dst.name, digest), set()) - {repo})), None)
            if other is not None and dst.mount_blob(repo, digest, other):
                moved = needed = 0
            elif dst.has_blob(repo, digest):
                moved = needed = 0
            else:
                blob = self._fetch(run, src, repo, digest)
                needed = blob.size  # the destination lacked it: known before anything is sent
                dst.push_blob(repo, blob, run.limiter)
                moved = os.path.getsize(blob.path) if blob.path is not None else blob.size
            with run.lock:
                placed.add(repo)
            with self._where_lock:
                if len(self._where) > WHERE_MAX:
                    self._where.clear()  # a hint: forgetting costs a HEAD and a push at worst
                self._where.setdefault((dst.name, digest), set()).add(repo)
            return moved, needed

    def _fetch(self, run: Run, src: Registry, repo: str, digest: str) -> Spooled:
        # Two tasks needing one blob (of this execution or another): the second waits for the
        # first's copy, and takes it from the spool.
        with self._turns.turn(("fetch", digest)):
            have = run.fetched.get(digest)
            if have is None:  # a verified file from an earlier execution is not fetched again
                # The cap is the destination link's: charged on the push only, not twice.
                have = src.fetch_blob(repo, digest, str(run.spool))
                run.fetched[digest] = have
                if have.path is not None:
                    os.utime(have.path)  # recently used: the last to be pruned
            return have

    def _delete(self, task: ReplicationTaskRow) -> str:
        dst = self.registries[task.destination]
        now = dst.manifest(task.repo, task.tag)
        if now is None:
            return "succeeded"
        if now.digest != task.found:
            return f"conflict: {task.destination} now holds {now.digest} under this tag: not deleted"
        kept = self._sharing_tags(task, dst, now.digest)
        if kept:  # deleting the manifest would take those tags with it
            shown = ", ".join(kept[:5]) + (f" and {len(kept) - 5} more" if len(kept) > 5 else "")
            return (f"kept: {task.repo}:{task.tag} left at {task.destination}: other tags kept there share its "
                    f"manifest ({shown}), and the distribution API deletes only by digest")
        dst.delete_manifest(task.repo, now.digest)
        return "succeeded"

    def _sharing_tags(self, task: ReplicationTaskRow, dst: Registry, digest: str) -> list[str]:
        """The destination's other tags on this digest that this policy must keep: the ones the
        source still holds, and the ones outside the policy's filters (not its to delete)."""
        policy = self.policies[ReplicationRow.get_by_id(task.execution).policy]
        at_source = set(self.registries[task.source].tags(task.repo))
        out = []
        for tag in dst.tags(task.repo):
            if tag == task.tag:
                continue
            ours = allowed(tag, policy.tags.include, policy.tags.exclude)
            if ours and tag not in at_source:
                continue  # the source deleted it too: it goes with this one
            m = dst.manifest(task.repo, tag)
            if m is not None and m.digest == digest:
                out.append(tag)
        return out
