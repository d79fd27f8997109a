"""What a replication must do, decided without a registry: only what is missing, conflicts left
alone (always between dual masters), deletions only when asked, the matrix, layer sharing."""

from __future__ import annotations

from dataclasses import dataclass

from cockpit.core.images import blobs_of, docker_manifest, world_image
from cockpit.core.replication import allowed, matrix, plan, sharing


@dataclass(frozen=True)
class F:
    include: tuple[str, ...] = ("*",)
    exclude: tuple[str, ...] = ()


@dataclass(frozen=True)
class P:
    destinations: tuple[str, ...] = ("b",)
    repositories: F = F()
    tags: F = F()
    override: bool = False
    deletions: bool = False


SRC = {"feed-web": {"2.4": "sha256:a", "2.5": "sha256:b"}, "user-web": {"3.0": "sha256:c"}, "tmp-test": {"1": "sha256:t"}}


def test_only_what_is_missing_is_copied():
    steps = plan(P(), SRC, {"b": {"feed-web": {"2.4": "sha256:a"}}})
    assert [(s.repo, s.tag, s.action) for s in steps] == [
        ("feed-web", "2.5", "copy"), ("tmp-test", "1", "copy"), ("user-web", "3.0", "copy")]


def test_filters_include_and_exclude_repositories_and_tags_by_glob():
    p = P(repositories=F(("*-web",), ("user-*",)), tags=F(("2.*",), ("2.4",)))
    assert [(s.repo, s.tag) for s in plan(p, SRC, {"b": {}})] == [("feed-web", "2.5")]
    assert allowed("feed-web", ("*",), ()) and not allowed("feed-web", ("*",), ("feed*",))


def test_a_different_digest_under_a_tag_is_a_conflict_unless_override_and_never_between_dual_masters():
    dest = {"b": {"feed-web": {"2.5": "sha256:other"}}}
    (s,) = [x for x in plan(P(), SRC, dest) if x.tag == "2.5"]
    assert (s.action, s.found) == ("conflict", "sha256:other")
    (s,) = [x for x in plan(P(override=True), SRC, dest) if x.tag == "2.5"]
    assert s.action == "overwrite"
    (s,) = [x for x in plan(P(override=True), SRC, dest, dual=True) if x.tag == "2.5"]
    assert s.action == "conflict"


def test_deletions_only_when_the_policy_says_and_never_for_an_event():
    dest = {"b": {"feed-web": {"2.3": "sha256:old"}}}
    assert not [s for s in plan(P(), SRC, dest) if s.action == "delete"]
    (d,) = [s for s in plan(P(deletions=True), SRC, dest) if s.action == "delete"]
    assert (d.repo, d.tag, d.found) == ("feed-web", "2.3", "sha256:old")
    assert not [s for s in plan(P(deletions=True), SRC, dest, only=[("feed-web", "2.5")]) if s.action == "delete"]


def test_an_event_replicates_only_the_image_pushed():
    steps = plan(P(destinations=("b", "c")), SRC, {}, only=[("feed-web", "2.5")])
    assert [(s.destination, s.repo, s.tag) for s in steps] == [("b", "feed-web", "2.5"), ("c", "feed-web", "2.5")]


def test_dual_masters_in_sync_plan_nothing_so_there_is_no_ping_pong():
    same = {"feed-web": {"2.5": "sha256:b"}}
    assert plan(P(), same, {"b": same}, dual=True) == []


def test_the_matrix_says_source_in_sync_behind_with_its_lag_failed_and_conflict():
    held = {"a": {"feed-web": {"2.5": "sha256:b"}}, "b": {"feed-web": {"2.5": "sha256:b"}},
            "d": {"feed-web": {"2.5": "sha256:x"}}}
    truth = {("feed-web", "2.5"): ("a", "sha256:b", 1000.0)}
    cells = matrix([("feed-web", "2.5")], ["a", "b", "c", "d", "e"], truth, held,
                   {("feed-web", "2.5", "e"): "b: UNAUTHORIZED: ..."}, now=1600.0)[("feed-web", "2.5")]
    assert cells["a"].state == "source" and cells["b"].state == "in_sync"
    assert cells["c"].state == "behind" and cells["c"].lag_s == 600.0
    assert cells["d"].state == "conflict" and cells["e"].state == "failed"


def test_shared_layers_are_stored_and_moved_once():
    base, jdk, web = ("sha256:base", 200), ("sha256:jdk", 180), ("sha256:web", 30)
    s = sharing({"feed-web:2.5": [base, jdk, ("sha256:f", 60)], "user-web:3.0": [base, jdk, web],
                 "card-web:1.9": [base, ("sha256:c", 50)]})
    assert s.stored == 200 + 180 + 60 + 30 + 50
    assert s.unshared == 3 * 200 + 2 * 180 + 60 + 30 + 50
    assert s.saved_storage == s.saved_transfer == 2 * 200 + 180
    assert s.layers[0].digest == "sha256:base" and len(s.layers[0].images) == 3


def test_world_images_have_stable_digests_and_variants_differ():
    layers = [("base", 200), ("jdk8", 180)]
    blobs, body, digest = world_image("feed-web:2.5", layers)
    assert world_image("feed-web:2.5", layers)[2] == digest
    assert world_image("feed-web:2.5", layers, "hotfix")[2] != digest
    assert blobs_of("application/vnd.docker.distribution.manifest.v2+json", body)[0] == blobs
    assert docker_manifest(blobs[0], blobs[1:])[1] == digest
