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
from cockpit.engine.replication import Replicator, queue
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


def test_a_push_notified_to_the_webhook_replicates_that_image(tmp_path, registry_factory):
    token = "hook-token"
    w = world_with("""registries:
  - {name: reg-a, idc: yf, role: master}
  - {name: reg-b, idc: ali, role: slave, replicates_from: reg-a}""")
    b = registry_factory(name="b")
    rep_box: dict = {}
    hook = WebhookServer(("127.0.0.1", 0), token, {"reg-a", "reg-b"},
                         lambda reg, repo, tag: rep_box["rep"].on_push(reg, repo, tag))
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

    def kill_when_big_is_moving() -> None:
        while clients["reg-b"].stats.bytes_pushed < 2 * MB and time.monotonic() - killer_armed < 30:
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
