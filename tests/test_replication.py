"""Replication on real registries: docker-registry instances on loopback (one with htpasswd, one
behind a token service, one posting notifications to the engine's webhook), through each
topology: a hierarchy of depth 3, an event trigger, a multi-arch index, a dual-master conflict,
and a registry killed in the middle of a copy."""

from __future__ import annotations

import json
import time
import urllib.request

import pytest

from cockpit import world as world_mod
from cockpit.engine.registry_watch import queue
from cockpit.engine.replication import Replicator
from cockpit.engine.seed import ensure_seeded
from cockpit.engine.webhook import WebhookServer
from cockpit.store.db import open_store
from cockpit.store.models import ReplicationRow, ReplicationTaskRow
from tests.conftest import SMALL
from tests.registries import (  # noqa: F401 - fixtures
    PASSWORD,
    USER,
    make_image,
    push_image,
    push_index,
    push_synthetic,
    random_layer,
    registry_factory,
    token_service,
)

pytestmark = pytest.mark.integration

MB = 1024 * 1024


def world_with(registries: str, replication: str = ""):
    text = SMALL.read_text()
    start = text.index("registries:")
    end = text.index("templates:")
    text = text[:start] + registries + "\n" + (replication + "\n" if replication else "") + text[end:]
    return world_mod.loads(text, "w.yaml")


def setup(tmp_path, world, clients, **kw) -> Replicator:
    db = open_store(str(tmp_path / "s.db"))
    ensure_seeded(db, world)
    return Replicator(db, world, clients, spool_dir=tmp_path / "spool", max_attempts=3, backoff_s=0.05, **kw)


def run(rep: Replicator, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while rep.run_once():
        assert time.monotonic() < deadline, "replication did not finish"


def execution(ex_id: int) -> ReplicationRow:
    return ReplicationRow.get_by_id(ex_id)


def tags_of(client, repo: str) -> dict[str, str]:
    return {t: client.manifest(repo, t).digest for t in client.tags(repo)}


def test_a_hierarchy_of_depth_three_moves_each_blob_once_per_registry(tmp_path, registry_factory):
    regs = {n: registry_factory(name=n) for n in ("a", "b", "c", "d")}
    clients = {f"reg-{n}": r.client() for n, r in regs.items()}
    w = world_with("""registries:
  - {name: reg-a, idc: yf, role: master}
  - {name: reg-b, idc: yf, role: slave, replicates_from: reg-a}
  - {name: reg-c, idc: ali, role: slave, replicates_from: reg-b}
  - {name: reg-d, idc: ali, role: slave, replicates_from: reg-c}""")
    assert w.depth("reg-d") == 3
    base = [random_layer(300_000, "base"), random_layer(200_000, "jdk")]  # shared by every image
    images = {}
    for i, repo in enumerate(("feed-web", "user-web", "card-web")):
        image = make_image(base + [random_layer(100_000 + i, repo)], note=repo)
        push_image(clients["reg-a"], repo, "1.0", image, tmp_path / "work")
        images[repo] = image
    rep = setup(tmp_path, w, clients)
    for policy in ("reg-a", "reg-b", "reg-c"):  # each level from the one above
        ex = queue(policy, "manual", "sre", 0, time.time())
        run(rep)
        assert execution(ex).state == "succeeded", execution(ex).error
    for name in ("reg-b", "reg-c", "reg-d"):
        for repo, image in images.items():
            assert tags_of(clients[name], repo) == {"1.0": image.manifest.digest}  # byte-exact: same digest
        uploads = clients[name].stats.uploads
        assert all(n == 1 for n in uploads.values()), uploads  # no blob uploaded twice
    # the base layers went up once per registry: the other repositories mounted them
    assert sum(clients["reg-b"].stats.mounts.values()) >= 4
    # and were fetched once per execution, though three images share them
    assert clients["reg-a"].stats.fetches[images["feed-web"].layers[0]] == 1
    # and the lower hops took them from the engine's spool, not again over the network
    assert sum(clients["reg-b"].stats.fetches.values()) == 0
    assert sum(clients["reg-c"].stats.fetches.values()) == 0


def test_a_later_execution_mounts_a_blob_an_earlier_one_placed_in_another_repository(tmp_path, registry_factory):
    regs = {n: registry_factory(name=n) for n in ("a", "b")}
    clients = {f"reg-{n}": r.client() for n, r in regs.items()}
    w = world_with("""registries:
  - {name: reg-a, idc: yf, role: master}
  - {name: reg-b, idc: ali, role: slave, replicates_from: reg-a}""")
    base = random_layer(300_000, "base")
    images = {repo: make_image([base, random_layer(50_000, repo)], note=repo) for repo in ("feed-web", "user-web")}
    for repo, image in images.items():
        push_image(clients["reg-a"], repo, "1", image, tmp_path / "work")
    shared = images["feed-web"].layers[0]
    rep = setup(tmp_path, w, clients)
    for repo in ("feed-web", "user-web"):  # two executions, as two pushes notified one after the other
        ex = queue("reg-a", "event", "push:reg-a", 0, time.time(), [(repo, "1")])
        run(rep)
        assert execution(ex).state == "succeeded", execution(ex).error
    # the second found the base layer in feed-web (HEAD in user-web says 404) and mounted it
    assert clients["reg-b"].stats.uploads[shared] == 1
    assert clients["reg-b"].stats.mounts[shared] == 1


def test_a_push_notified_to_the_webhook_replicates_that_image(tmp_path, registry_factory):
    token = "hook-token"
    w = world_with("""registries:
  - {name: reg-a, idc: yf, role: master}
  - {name: reg-b, idc: ali, role: slave, replicates_from: reg-a}""")
    b = registry_factory(name="b")
    rep_box: dict = {}
    hook = WebhookServer(("127.0.0.1", 0), token, {"reg-a", "reg-b"},
                         lambda reg, images: rep_box["rep"].on_push(reg, images))
    hook.start()
    try:
        a = registry_factory(name="a", notify_url=f"{hook.url}/registry-events/reg-a",
                             notify_headers={"Authorization": f"Bearer {token}"})
        clients = {"reg-a": a.client(), "reg-b": b.client()}
        rep = setup(tmp_path, w, clients)
        rep_box["rep"] = rep
        image = push_synthetic(clients["reg-a"], "feed-web", "2.5", [50_000, 60_000], tmp_path / "work")
        deadline = time.monotonic() + 20
        while not ReplicationRow.select().where(ReplicationRow.trigger == "event").exists():
            assert time.monotonic() < deadline, "no notification reached the webhook"
            time.sleep(0.05)
        run(rep)
        ex = ReplicationRow.get(ReplicationRow.trigger == "event")
        assert ex.scope == [["feed-web", "2.5"]] and ex.state == "succeeded"
        assert tags_of(clients["reg-b"], "feed-web") == {"2.5": image.manifest.digest}
    finally:
        hook.stop()


def test_the_webhook_refuses_a_wrong_token_and_an_unknown_registry():
    hook = WebhookServer(("127.0.0.1", 0), "right", {"reg-a"}, lambda *a: 0)
    hook.start()
    try:
        def post(path: str, token: str) -> int:
            req = urllib.request.Request(f"{hook.url}{path}", data=json.dumps({"events": []}).encode(),
                                         headers={"Authorization": f"Bearer {token}"}, method="POST")
            try:
                return urllib.request.urlopen(req, timeout=5).status
            except urllib.error.HTTPError as e:
                return e.code
        assert post("/registry-events/reg-a", "wrong") == 401
        assert post("/registry-events/nosuch", "right") == 404
        assert post("/registry-events/reg-a", "right") == 200
    finally:
        hook.stop()


def test_a_multi_arch_index_is_copied_whole_and_byte_exact(tmp_path, registry_factory):
    a, b = registry_factory(name="a"), registry_factory(name="b")
    clients = {"reg-a": a.client(), "reg-b": b.client()}
    w = world_with("""registries:
  - {name: reg-a, idc: yf, role: master}
  - {name: reg-b, idc: ali, role: slave, replicates_from: reg-a}""")
    arm = make_image([random_layer(70_000, "arm")], arch="arm64", note="arm")
    amd = make_image([random_layer(80_000, "amd")], arch="amd64", note="amd")
    index = push_index(clients["reg-a"], "feed-web", "2.5", [amd, arm], tmp_path / "work", fmt="oci")
    rep = setup(tmp_path, w, clients)
    ex = queue("reg-a", "manual", "sre", 0, time.time())
    run(rep)
    assert execution(ex).state == "succeeded", execution(ex).error
    got = clients["reg-b"].manifest("feed-web", "2.5")
    assert got.body == index.body and got.digest == index.digest and got.is_index
    for image in (amd, arm):
        assert clients["reg-b"].manifest("feed-web", image.manifest.digest).body == image.manifest.body


def test_dual_masters_replicate_both_ways_without_ping_pong_and_leave_a_conflict_alone(tmp_path, registry_factory):
    a, b = registry_factory(name="a"), registry_factory(name="b")
    clients = {"reg-a": a.client(), "reg-b": b.client()}
    w = world_with("""registries:
  - {name: reg-a, idc: yf, role: master, replicates_from: reg-b}
  - {name: reg-b, idc: ali, role: master, replicates_from: reg-a}""")
    assert w.dual_peer("reg-a") == "reg-b"
    one = push_synthetic(clients["reg-a"], "feed-web", "1", [40_000], tmp_path / "w")
    two = push_synthetic(clients["reg-b"], "user-web", "1", [40_000], tmp_path / "w")
    rep = setup(tmp_path, w, clients)
    for policy in ("reg-a", "reg-b"):
        run_ex = queue(policy, "manual", "sre", 0, time.time())
        run(rep)
        assert execution(run_ex).state == "succeeded"
    for c in clients.values():
        assert tags_of(c, "feed-web") == {"1": one.manifest.digest} and tags_of(c, "user-web") == {"1": two.manifest.digest}
    # again, both ways: everything is in sync, nothing goes back and forth
    again = [queue(p, "manual", "sre", 0, time.time()) for p in ("reg-a", "reg-b")]
    run(rep)
    assert [execution(x).tasks_total for x in again] == [0, 0]
    # the same tag pushed with other content on each side: a conflict, reported, overwritten nowhere
    left = push_synthetic(clients["reg-a"], "card-web", "1.9", [30_000], tmp_path / "w", seed="left")
    right = push_synthetic(clients["reg-b"], "card-web", "1.9", [30_000], tmp_path / "w", seed="right")
    both = [queue(p, "manual", "sre", 0, time.time()) for p in ("reg-a", "reg-b")]
    run(rep)
    for x in both:
        (t,) = ReplicationTaskRow.select().where(ReplicationTaskRow.execution == x)
        assert t.state == "conflict" and "left alone" in t.error
    assert clients["reg-a"].manifest("card-web", "1.9").digest == left.manifest.digest
    assert clients["reg-b"].manifest("card-web", "1.9").digest == right.manifest.digest


def test_a_registry_killed_mid_copy_fails_cleanly_and_a_retry_uploads_nothing_twice(tmp_path, registry_factory):
    a, b = registry_factory(name="a"), registry_factory(name="b")
    clients = {"reg-a": a.client(), "reg-b": b.client(chunk_threshold=1 * MB, chunk_size=1 * MB)}
    w = world_with("""registries:
  - {name: reg-a, idc: yf, role: master}
  - {name: reg-b, idc: ali, role: slave, replicates_from: reg-a}""", """replication:
  - {name: slow, source: reg-a, destinations: [reg-b], bandwidth_mbps: 40, concurrency: 1}""")
    small = push_synthetic(clients["reg-a"], "aaa-small", "1", [200_000], tmp_path / "w")
    big = push_synthetic(clients["reg-a"], "zzz-big", "1", [12 * MB], tmp_path / "w")
    rep = setup(tmp_path, w, clients)
    ex = queue("slow", "manual", "sre", 0, time.time())
    killer_armed = time.monotonic()
    import threading

    def uploading() -> int:  # bytes of the big blob the registry has received so far (its upload's data)
        try:
            return max([f.stat().st_size for f in b.storage.rglob("zzz-big/_uploads/*/data")] or [0])
        except OSError:  # the upload finished between the listing and the look
            return 0

    def kill_when_big_is_moving() -> None:
        while uploading() < 2 * MB and time.monotonic() - killer_armed < 30:
            time.sleep(0.01)
        b.kill()

    t = threading.Thread(target=kill_when_big_is_moving)
    t.start()
    run(rep)
    t.join()
    failed = execution(ex)
    assert failed.state == "failed"
    (bad,) = ReplicationTaskRow.select().where((ReplicationTaskRow.execution == ex)
                                               & (ReplicationTaskRow.state == "failed"))
    assert bad.repo == "zzz-big" and "CONNECTION" in bad.error and "Traceback" not in bad.error
    assert not list((tmp_path / "spool").rglob("*.part-*"))  # nothing half-written left behind
    b.restart()
    clients["reg-b"] = b.client()
    rep.registries["reg-b"] = clients["reg-b"]
    retry = queue("slow", "manual", "sre", 0, time.time())
    run(rep)
    assert execution(retry).state == "succeeded", execution(retry).error
    assert tags_of(clients["reg-b"], "zzz-big") == {"1": big.manifest.digest}
    assert tags_of(clients["reg-b"], "aaa-small") == {"1": small.manifest.digest}
    assert clients["reg-b"].stats.uploads[small.layers[0]] == 0  # done before the kill: not again


def test_registries_behind_htpasswd_and_tokens_and_a_refusal_that_is_not_retried(tmp_path, registry_factory,
                                                                                  token_service):
    src = registry_factory(name="src", auth="token", token_service=token_service)
    dst = registry_factory(name="dst", auth="htpasswd")
    clients = {"reg-a": src.client(USER, PASSWORD), "reg-b": dst.client(USER, PASSWORD)}
    w = world_with("""registries:
  - {name: reg-a, idc: yf, role: master}
  - {name: reg-b, idc: ali, role: slave, replicates_from: reg-a}""")
    image = push_synthetic(clients["reg-a"], "feed-web", "3", [30_000], tmp_path / "w")
    rep = setup(tmp_path, w, clients)
    ok = queue("reg-a", "manual", "sre", 0, time.time())
    run(rep)
    assert execution(ok).state == "succeeded", execution(ok).error
    assert tags_of(clients["reg-b"], "feed-web") == {"3": image.manifest.digest}
    push_synthetic(clients["reg-a"], "feed-web", "4", [30_000], tmp_path / "w")
    rep.registries["reg-b"] = dst.client(USER, "wrong-password")
    refused = queue("reg-a", "manual", "sre", 0, time.time())
    run(rep)
    tasks = list(ReplicationTaskRow.select().where(ReplicationTaskRow.execution == refused))
    assert tasks and execution(refused).state == "failed"
    for t in tasks:  # each says what the registry answered, once: an auth refusal is not retried blindly
        assert t.state == "failed" and "401" in t.error and "credentials were refused" in t.error and t.attempts == 1
        assert "wrong-password" not in t.error


# --- what the review found: a vanished tag, deletions, bandwidth, the webhook, bytes, a crash -----------

TWO = """registries:
  - {name: reg-a, idc: yf, role: master}
  - {name: reg-b, idc: ali, role: slave, replicates_from: reg-a}"""


class Crash(BaseException):
    """The engine's process dies here (not an error any code of it handles)."""


class Wire:
    """A registry's connection as the tests need it: the real client underneath, with an odd
    answer (`odd`: a method name -> the exception its next call raises) or the process dying
    after `crash_after` blob uploads (every later call dies too)."""

    def __init__(self, client, crash_after: int | None = None):
        self._client, self.crash_after, self.odd = client, crash_after, {}
        self.dead = False

    def __getattr__(self, name):
        attr = getattr(self._client, name)
        if not callable(attr):
            return attr

        def call(*args, **kw):
            if self.dead:
                raise Crash(name)
            if name in self.odd:
                raise self.odd.pop(name)
            out = attr(*args, **kw)
            if name == "push_blob" and self.crash_after is not None \
                    and sum(self._client.stats.uploads.values()) >= self.crash_after:
                self.dead = True
                raise Crash("after an upload")
            return out
        return call


def test_a_tag_deleted_at_the_destination_after_planning_is_copied_not_a_frozen_task(tmp_path, registry_factory):
    a, b = registry_factory(name="a"), registry_factory(name="b")
    clients = {"reg-a": a.client(), "reg-b": b.client()}
    w = world_with(TWO, """replication:
  - {name: ov, source: reg-a, destinations: [reg-b], override: true, trigger: manual}""")
    mine = push_synthetic(clients["reg-a"], "feed-web", "1", [20_000], tmp_path / "w", seed="a")
    theirs = push_synthetic(clients["reg-b"], "feed-web", "1", [20_000], tmp_path / "w", seed="b")
    rep = setup(tmp_path, w, clients)
    ex = queue("ov", "manual", "sre", 0, time.time())
    rep._plan(execution(ex))
    (task,) = ReplicationTaskRow.select().where(ReplicationTaskRow.execution == ex)
    assert task.action == "overwrite"
    clients["reg-b"].delete_manifest("feed-web", theirs.manifest.digest)  # someone deletes it meanwhile
    run(rep)
    assert execution(ex).state == "succeeded", execution(ex).error
    assert tags_of(clients["reg-b"], "feed-web") == {"1": mine.manifest.digest}


def test_an_unexpected_error_from_a_client_fails_its_task_in_one_line_and_replication_goes_on(tmp_path,
                                                                                             registry_factory):
    a, b = registry_factory(name="a"), registry_factory(name="b")
    wire = Wire(b.client())
    clients = {"reg-a": a.client(), "reg-b": wire}
    image = push_synthetic(clients["reg-a"], "feed-web", "1", [20_000], tmp_path / "w")
    rep = setup(tmp_path, world_with(TWO), clients)
    wire.odd["put_manifest"] = KeyError("mediaType")  # an answer the client did not foresee
    first = queue("reg-a", "manual", "sre", 0, time.time())
    second = queue("reg-a", "manual", "sre", 0, time.time())
    run(rep)
    (t,) = ReplicationTaskRow.select().where(ReplicationTaskRow.execution == first)
    assert t.state == "failed" and t.error == "KeyError: 'mediaType'"
    assert execution(first).state == "failed"
    assert execution(second).state == "succeeded"  # not held up behind a task that never ends
    assert tags_of(b.client(), "feed-web") == {"1": image.manifest.digest}


def test_deletions_reach_a_repository_whose_last_tag_the_source_deleted(tmp_path, registry_factory):
    a, b = registry_factory(name="a"), registry_factory(name="b")
    clients = {"reg-a": a.client(), "reg-b": b.client()}
    w = world_with(TWO, """replication:
  - {name: mirror, source: reg-a, destinations: [reg-b], deletions: true, trigger: manual}""")
    keep = push_synthetic(clients["reg-a"], "feed-web", "1", [20_000], tmp_path / "w")
    gone = push_synthetic(clients["reg-a"], "user-web", "1", [20_000], tmp_path / "w")
    rep = setup(tmp_path, w, clients)
    queue("mirror", "manual", "sre", 0, time.time())
    run(rep)
    assert tags_of(clients["reg-b"], "user-web") == {"1": gone.manifest.digest}
    clients["reg-a"].delete_manifest("user-web", gone.manifest.digest)  # its only tag
    ex = queue("mirror", "manual", "sre", 0, time.time())
    run(rep)
    assert execution(ex).state == "succeeded"
    assert clients["reg-b"].tags("user-web") == []
    assert tags_of(clients["reg-b"], "feed-web") == {"1": keep.manifest.digest}


def test_a_deletion_leaves_a_tag_whose_manifest_other_kept_tags_share(tmp_path, registry_factory):
    a, b = registry_factory(name="a"), registry_factory(name="b")
    clients = {"reg-a": a.client(), "reg-b": b.client()}
    w = world_with(TWO, """replication:
  - {name: mirror, source: reg-a, destinations: [reg-b], deletions: true, trigger: manual}""")
    image = push_synthetic(clients["reg-a"], "feed-web", "2026.11.26", [20_000], tmp_path / "w")
    clients["reg-a"].put_manifest("feed-web", "stable", image.manifest)  # the same image under a second tag
    rep = setup(tmp_path, w, clients)
    queue("mirror", "manual", "sre", 0, time.time())
    run(rep)
    # the source drops 2026.11.26 and keeps stable (the distribution API deletes both; stable goes back)
    clients["reg-a"].delete_manifest("feed-web", image.manifest.digest)
    clients["reg-a"].put_manifest("feed-web", "stable", image.manifest)
    ex = queue("mirror", "manual", "sre", 0, time.time())
    run(rep)
    (t,) = ReplicationTaskRow.select().where(ReplicationTaskRow.execution == ex)
    assert t.action == "delete" and t.state == "succeeded"
    assert "share its manifest" in t.error and "stable" in t.error and "only by digest" in t.error
    assert sorted(clients["reg-b"].tags("feed-web")) == ["2026.11.26", "stable"]  # stable is not lost


def test_an_envelope_s_pushes_are_queued_in_one_transaction_and_a_malformed_one_gets_400(tmp_path):
    from contextlib import contextmanager

    from cockpit.engine.lease import LeaseLost

    w = world_with(TWO, """replication:
  - {name: ev, source: reg-a, destinations: [reg-b], trigger: event}""")
    db = open_store(str(tmp_path / "s.db"))
    ensure_seeded(db, w)
    entries, lose = [0], [False]

    @contextmanager
    def fence():
        entries[0] += 1
        with db.atomic():
            yield
            if lose[0]:
                raise LeaseLost("the lease went to another engine")

    rep = Replicator(db, w, {}, fence=fence, spool_dir=tmp_path / "spool")
    hook = WebhookServer(("127.0.0.1", 0), "t", {"reg-a"}, rep.on_push)
    hook.start()

    def post(body: bytes) -> tuple[int, str]:
        req = urllib.request.Request(f"{hook.url}/registry-events/reg-a", data=body, method="POST",
                                     headers={"Authorization": "Bearer t"})
        try:
            with urllib.request.urlopen(req, timeout=5) as resp:
                return resp.status, resp.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    try:
        for body, why in ((b'{"events": [1]}', "events[0] is not an object"),
                          (b'{"events": "x"}', "'events' is not a list"),
                          (b'{"events": [{"action": "push", "target": "x"}]}', "events[0].target is missing or not"),
                          (b'{"events": [{"action": "push", "target": {"tag": "1"}}]}', "target.repository"),
                          (b'[]', "not a JSON object")):
            status, text = post(body)
            assert status == 400 and why in text and "\n" not in text, (body, status, text)
        envelope = json.dumps({"events": [
            {"action": "push", "target": {"repository": "feed-web", "tag": "1"}},
            {"action": "push", "target": {"repository": "feed-web", "digest": "sha256:" + "0" * 64}},  # a blob
            {"action": "pull", "target": {"repository": "x", "tag": "1"}},
            {"action": "push", "target": {"repository": "user-web", "tag": "2"}}]}).encode()
        lose[0] = True
        assert post(envelope)[0] == 503  # the registry sends it again later
        assert ReplicationRow.select().count() == 0  # all or nothing: nothing
        lose[0], entries[0] = False, 0
        assert post(envelope)[0] == 200
        assert entries[0] == 1  # one transaction for the whole envelope
        assert sorted(tuple(r.scope[0]) for r in ReplicationRow.select()) == [("feed-web", "1"), ("user-web", "2")]
    finally:
        hook.stop()


def test_bytes_needed_are_the_blobs_each_destination_lacked(tmp_path, registry_factory):
    a, b, c = registry_factory(name="a"), registry_factory(name="b"), registry_factory(name="c")
    clients = {"reg-a": a.client(), "reg-b": b.client(), "reg-c": c.client()}
    w = world_with("""registries:
  - {name: reg-a, idc: yf, role: master}
  - {name: reg-b, idc: ali, role: slave, replicates_from: reg-a}
  - {name: reg-c, idc: ali, role: slave, replicates_from: reg-a}""")
    base, code = random_layer(300_000, "base"), random_layer(50_000, "code")
    image = make_image([base, code], note="feed")
    push_image(clients["reg-a"], "feed-web", "1", image, tmp_path / "w")
    push_image(b.client(), "feed-web", "0", make_image([base], note="old"), tmp_path / "w")  # b has the base
    rep = setup(tmp_path, w, clients)
    ex = queue("reg-a", "manual", "sre", 0, time.time())
    run(rep)
    sizes = {d: len(x) for d, x in image.blobs.items()}
    lacked_b = sizes[image.config] + len(code)  # the base is there already: found, not sent
    lacked_c = sum(sizes.values())
    got = execution(ex)
    assert got.state == "succeeded"
    assert got.bytes_needed == lacked_b + lacked_c == got.bytes_moved
    assert clients["reg-b"].stats.uploads[image.layers[0]] == 0


def test_a_new_engine_finishes_what_a_crashed_one_left_running_uploading_no_blob_twice(tmp_path, registry_factory):
    a, b = registry_factory(name="a"), registry_factory(name="b")
    clients = {"reg-a": a.client(), "reg-b": b.client()}
    w = world_with(TWO, """replication:
  - {name: one-by-one, source: reg-a, destinations: [reg-b], concurrency: 1, trigger: manual}""")
    images = {repo: push_synthetic(clients["reg-a"], repo, "1", [30_000, 40_000], tmp_path / "w")
              for repo in ("aaa", "bbb", "ccc")}
    wire = Wire(clients["reg-b"], crash_after=4)  # aaa done (3 blobs), bbb's first layer up, then it dies
    first = setup(tmp_path, w, {"reg-a": clients["reg-a"], "reg-b": wire})
    ex = queue("one-by-one", "manual", "sre", 0, time.time())
    with pytest.raises(Crash):
        run(first)
    states = [t.state for t in ReplicationTaskRow.select().where(ReplicationTaskRow.execution == ex)
              .order_by(ReplicationTaskRow.repo)]
    assert states[0] == "succeeded" and "running" in states  # left as a dead engine leaves it
    second = setup(tmp_path, w, clients)  # a new engine on the same store
    second.recover()
    run(second)
    assert execution(ex).state == "succeeded", execution(ex).error
    for repo, image in images.items():
        assert tags_of(clients["reg-b"], repo) == {"1": image.manifest.digest}
    uploads = clients["reg-b"].stats.uploads
    assert uploads and all(n == 1 for n in uploads.values()), uploads  # nothing sent twice


def test_an_execution_of_images_the_policy_does_not_cover_or_the_source_lacks_fails_saying_so(tmp_path,
                                                                                             registry_factory):
    a, b = registry_factory(name="a"), registry_factory(name="b")
    clients = {"reg-a": a.client(), "reg-b": b.client()}
    w = world_with(TWO, """replication:
  - {name: rel, source: reg-a, destinations: [reg-b], tags: {exclude: ["*-rc*"]}, trigger: manual}""")
    push_synthetic(clients["reg-a"], "feed-web", "1", [20_000], tmp_path / "w")
    rep = setup(tmp_path, w, clients)
    ex = queue("rel", "manual", "sre", 0, time.time(), [("feed-web", "2-rc1"), ("feed-web", "9.9")])
    run(rep)
    got = execution(ex)
    assert got.state == "failed" and got.tasks_total == 0
    assert got.error == ("nothing to replicate: feed-web:2-rc1 is not covered by policy rel; "
                         "feed-web:9.9 is not at the source reg-a")


def test_a_slow_execution_does_not_hold_up_another_policy_s(tmp_path, registry_factory):
    a, b, c = registry_factory(name="a"), registry_factory(name="b"), registry_factory(name="c")
    clients = {"reg-a": a.client(), "reg-b": b.client(), "reg-c": c.client()}
    w = world_with("""registries:
  - {name: reg-a, idc: yf, role: master}
  - {name: reg-b, idc: ali, role: slave, replicates_from: reg-a}
  - {name: reg-c, idc: yf, role: slave, replicates_from: reg-a}""", """replication:
  - {name: thin, source: reg-a, destinations: [reg-b], bandwidth_mbps: 4, trigger: manual}
  - {name: wide, source: reg-a, destinations: [reg-c], trigger: manual}""")
    big = push_synthetic(clients["reg-a"], "feed-web", "1", [3 * MB], tmp_path / "w")  # six seconds at 4 Mbit/s
    rep = setup(tmp_path, w, clients)
    slow = queue("thin", "manual", "sre", 0, time.time())
    fast = queue("wide", "manual", "sre", 0, time.time())
    rep.start()
    try:
        deadline = time.monotonic() + 30
        while execution(fast).state != "succeeded":
            assert time.monotonic() < deadline, execution(fast).state
            time.sleep(0.05)
        assert execution(slow).state == "running"  # still on its thin link, and the other did not wait
        while execution(slow).state != "succeeded":
            assert time.monotonic() < deadline, execution(slow).state
            time.sleep(0.05)
    finally:
        rep.stop()
    for reg in ("reg-b", "reg-c"):
        assert tags_of(clients[reg], "feed-web") == {"1": big.manifest.digest}
    # the blob was fetched once for both (the second execution took it from the spool)
    assert clients["reg-a"].stats.fetches[big.layers[0]] == 1


# --- down a hierarchy: the lower hop follows the upper, image by image ---------------------------------

HIERARCHY = """registries:
  - {name: reg-a, idc: yf, role: master}
  - {name: reg-b, idc: yf, role: slave, replicates_from: reg-a}
  - {name: reg-c, idc: ali, role: slave, replicates_from: reg-b}
  - {name: reg-d, idc: ali, role: slave, replicates_from: reg-b}"""


def test_the_lower_hop_copies_an_image_on_as_soon_as_it_lands_uploading_no_blob_twice(tmp_path, registry_factory):
    regs = {n: registry_factory(name=n) for n in ("a", "b", "c", "d")}
    clients = {f"reg-{n}": r.client() for n, r in regs.items()}
    w = world_with(HIERARCHY, """replication:
  - {name: upper, source: reg-a, destinations: [reg-b], concurrency: 1, bandwidth_mbps: 8, trigger: manual}
  - {name: lower, source: reg-b, destinations: [reg-c, reg-d], trigger: manual}""")
    base = random_layer(100_000, "base")  # shared by every image
    images = {repo: make_image([base, random_layer(150_000, repo)], note=repo) for repo in ("aaa", "bbb", "ccc", "ddd")}
    for repo, image in images.items():
        push_image(clients["reg-a"], repo, "1", image, tmp_path / "work")
    rep = setup(tmp_path, w, clients)
    upper = queue("upper", "manual", "sre", 0, time.time())
    lower = queue("lower", "manual", "sre", 0, time.time())  # queued at once: reg-b holds nothing yet
    rep.start()
    try:
        assert rep.wait_over([upper, lower], 60), [execution(x).state for x in (upper, lower)]
    finally:
        rep.stop()
    assert execution(upper).state == execution(lower).state == "succeeded", (execution(upper).error,
                                                                             execution(lower).error)
    assert execution(lower).tasks_total == 8  # every image the upper hop brought, to both
    first_on = min(t.real_started for t in ReplicationTaskRow.select().where(ReplicationTaskRow.execution == lower))
    assert first_on < execution(upper).real_finished  # it did not wait for the whole upper hop
    for name in ("reg-b", "reg-c", "reg-d"):
        for repo, image in images.items():
            assert tags_of(clients[name], repo) == {"1": image.manifest.digest}
        uploads = clients[name].stats.uploads
        assert all(n == 1 for n in uploads.values()), uploads  # no blob uploaded twice
        assert sum(uploads.values()) == 1 + 2 * len(images)  # the base once, then mounted
    assert sum(clients["reg-b"].stats.fetches.values()) == 0  # the lower hop read the spool
    assert sum(clients["reg-a"].stats.fetches.values()) == 1 + 2 * len(images)  # one fetch per blob
    # manifests read once: by the replicator's first scan and by planning, never again by a task
    assert clients["reg-a"].stats.calls["manifest"] == 2 * len(images)
    # reg-b's: the upper hop's checks of each tag before it moved it, and what the lower hop's
    # planning found landed; not by the lower hop's tasks (the upper hop had put them there)
    assert clients["reg-b"].stats.calls["manifest"] <= 2 * len(images)


def test_an_image_whose_copy_into_the_source_fails_fails_in_the_lower_hop_too_saying_why(tmp_path, registry_factory):
    regs = {n: registry_factory(name=n) for n in ("a", "b", "c", "d")}
    clients = {f"reg-{n}": r.client() for n, r in regs.items()}
    w = world_with(HIERARCHY, """replication:
  - {name: upper, source: reg-a, destinations: [reg-b], concurrency: 1, trigger: manual}
  - {name: lower, source: reg-b, destinations: [reg-c, reg-d], trigger: manual}""")
    good = push_synthetic(clients["reg-a"], "aaa", "1", [50_000], tmp_path / "w")
    rotten = push_synthetic(clients["reg-a"], "zzz", "1", [50_000], tmp_path / "w")
    path = regs["a"].blob_file(rotten.layers[0])  # its layer rots on reg-a: the copy to reg-b fails
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    rep = setup(tmp_path, w, clients)
    upper = queue("upper", "manual", "sre", 0, time.time())
    lower = queue("lower", "manual", "sre", 0, time.time())
    for ex in (upper, lower):  # planned before anything moves: the lower one holds both images
        assert rep._plan(execution(ex))
    held = list(ReplicationTaskRow.select().where(ReplicationTaskRow.execution == lower))
    assert len(held) == 4 and all(t.not_before_real > time.time() + 1e6 and "waiting" in t.error for t in held)
    rep.start()
    try:
        assert rep.wait_over([upper, lower], 60), [execution(x).state for x in (upper, lower)]
    finally:
        rep.stop()
    assert execution(upper).state == execution(lower).state == "failed"
    tasks = {(t.repo, t.destination): t
             for t in ReplicationTaskRow.select().where(ReplicationTaskRow.execution == lower)}
    for dest in ("reg-c", "reg-d"):
        assert tasks[("aaa", dest)].state == "succeeded"
        assert tags_of(clients[dest], "aaa") == {"1": good.manifest.digest}
        bad = tasks[("zzz", dest)]
        assert bad.state == "failed" and "not at the source" in bad.error and bad.attempts == 1
        assert clients[dest].tags("zzz") == [] and clients[dest].stats.uploads[rotten.layers[0]] == 0


def test_tasks_held_for_an_image_on_its_way_stay_held_across_a_crash_and_run_once_it_lands(tmp_path,
                                                                                          registry_factory):
    regs = {n: registry_factory(name=n) for n in ("a", "b", "c", "d")}
    clients = {f"reg-{n}": r.client() for n, r in regs.items()}
    w = world_with(HIERARCHY, """replication:
  - {name: upper, source: reg-a, destinations: [reg-b], trigger: manual}
  - {name: lower, source: reg-b, destinations: [reg-c, reg-d], trigger: manual}""")
    images = {repo: push_synthetic(clients["reg-a"], repo, "1", [40_000, 30_000], tmp_path / "w")
              for repo in ("aaa", "bbb")}
    first = setup(tmp_path, w, clients)
    upper = queue("upper", "manual", "sre", 0, time.time())
    lower = queue("lower", "manual", "sre", 0, time.time())
    for ex in (upper, lower):  # planned, then the engine dies before anything moved
        assert first._plan(execution(ex))
    ReplicationTaskRow.update(state="running").where(ReplicationTaskRow.execution == upper).execute()
    second = setup(tmp_path, w, clients)
    second.recover()
    held = ReplicationTaskRow.select().where(ReplicationTaskRow.execution == lower)
    assert [t.state for t in held] == ["pending"] * 4 and all(t.not_before_real > time.time() + 1e6 for t in held)
    run(second)
    assert execution(upper).state == execution(lower).state == "succeeded", execution(lower).error
    for name in ("reg-b", "reg-c", "reg-d"):
        for repo, image in images.items():
            assert tags_of(clients[name], repo) == {"1": image.manifest.digest}
        assert all(n == 1 for n in clients[name].stats.uploads.values())
