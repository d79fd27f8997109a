"""`:registry` driven as an SRE would: the topology and its health, the policies, executions that
move on the wall clock, the matrix of images x registries (behind, FAILED, CONFLICT), an image's
layers, and starting or stopping a replication (asked, audited, refused in read-only mode).

Most tests run no engine: executions are queued through the facade, and what an engine would
have written (a registry's new tag, a failed or conflicting copy) is written into the test's own
store as rows: test data, not a mock. One test runs the engine, on the simulated registries."""

from __future__ import annotations

import time

from cockpit.engine.registries import manifest_row, world_manifest
from cockpit.identity import os_user
from cockpit.screens.registry import RegistryScreen
from cockpit.store.models import (
    AuditRow,
    ClockRow,
    ManifestRow,
    RegistryHealthRow,
    RegistryImageRow,
    ReplicationRow,
    ReplicationTaskRow,
)
from tests.conftest import SMALL
from tests.screen_text import cell, keys, notices, screen_text, table
from tests.test_tui import SIZE, open_app, until

NARROW = (60, 20)
TABS = {"Topology": "tab-topology", "Policies": "tab-policies", "Executions": "tab-executions", "Matrix": "tab-matrix"}


async def open_registry(pilot, app) -> RegistryScreen:
    await until(pilot, lambda: app.last_snapshot is not None)
    await pilot.press("colon", *"registry", "enter")
    await until(pilot, lambda: isinstance(app.screen, RegistryScreen) and keys(app, "topology")
                and app.screen.shown is not None and app.screen.shown.cells)
    return app.screen


async def to_tab(pilot, app, name: str) -> None:
    for _ in range(len(TABS)):
        if app.screen.query_one("#tabs").active == TABS[name]:
            return
        await pilot.press("right_square_bracket")
        await pilot.pause(0.05)
    assert app.screen.query_one("#tabs").active == TABS[name]


def world_images(world) -> list[str]:
    later = {r.image for r in world.releases}
    return sorted(i.ref for i in world.images if i.ref not in later)


def now_t() -> float:
    return ClockRow.get_by_id(1).t


def digest_at(registry: str, image: str) -> str:
    repo, tag = image.rsplit(":", 1)
    return RegistryImageRow.get((RegistryImageRow.registry == registry) & (RegistryImageRow.repo == repo)
                                & (RegistryImageRow.tag == tag)).digest


def spread_trouble(world) -> dict[str, str]:
    """What an engine would have left: a new image pushed to the master 4 minutes ago, still
    behind in tucheng (and its sub-IDC), whose copy to aliyun failed; another tag holding other
    content in aliyun (a conflict, met by a copy). Returns the images used."""
    t = now_t()
    card = next(i for i in world_images(world) if i.startswith("card-web:"))
    new = world_manifest(world, "feed-web:2026.11.26")  # the demo's release, as the simulated registry holds it
    ManifestRow.insert(**manifest_row(new)).on_conflict_ignore().execute()
    RegistryImageRow.insert(registry="reg-yongfeng", repo="feed-web", tag="2026.11.26", digest=new.digest,
                            since_t=t - 240, seen_real=time.time()).execute()
    ex = ReplicationRow.insert(policy="release", trigger="event", state="failed", actor="engine", tasks_total=3,
                               tasks_done=1, tasks_failed=1, tasks_conflict=1, created_t=t - 230,
                               real_created=time.time()).execute()
    ReplicationTaskRow.insert(execution=ex, repo="feed-web", tag="2026.11.26", source="reg-yongfeng",
                              destination="reg-aliyun", digest=new.digest, action="copy", state="failed", attempts=5,
                              error="reg-aliyun: UNAUTHORIZED: authentication required (HTTP 401): "
                                    "not retried; check the credentials of reg-aliyun in the config").execute()
    repo, tag = card.rsplit(":", 1)
    source, other = digest_at("reg-yongfeng", card), "sha256:" + "f" * 64
    RegistryImageRow.update(digest=other).where((RegistryImageRow.registry == "reg-aliyun")
                                                & (RegistryImageRow.repo == repo) & (RegistryImageRow.tag == tag)).execute()
    ReplicationTaskRow.insert(execution=ex, repo=repo, tag=tag, source="reg-yongfeng", destination="reg-aliyun",
                              digest=source, found=other, action="conflict", state="conflict",
                              error=f"reg-aliyun holds {other[:19]} under {card}: left alone").execute()
    return {"new": "feed-web:2026.11.26", "conflict": card}


# --- reading ---------------------------------------------------------------------------------------


async def test_the_demo_topology_is_a_tree_with_health_and_images_held(demo_db, demo_world):
    s, app = open_app(demo_db)
    async with app.run_test(size=SIZE) as pilot:
        await open_registry(pilot, app)
        order = keys(app, "topology")
        assert sorted(order) == sorted(r.name for r in demo_world.registries) and order[0] == "reg-yongfeng"
        assert cell(app, "topology", "reg-yongfeng", "name") == "reg-yongfeng"  # the top: no tree lines
        assert order.index("reg-tucheng-b") == order.index("reg-tucheng") + 1  # right under the one it copies
        assert cell(app, "topology", "reg-tucheng-b", "name").endswith("  └─ reg-tucheng-b")  # one level deeper
        assert cell(app, "topology", "reg-tucheng", "name")[:3] in ("├─ ", "└─ ")
        assert cell(app, "topology", "reg-tucheng", "role") == "slave"
        n = len(world_images(demo_world))
        assert all(cell(app, "topology", r, "images") == str(n) for r in keys(app, "topology"))
        assert cell(app, "topology", "reg-yongfeng", "health") == "not asked yet"  # no engine has pinged it
        text = screen_text(app)
        assert f"{n} images all in sync · no replications under way · 4 registries" in text
        assert "reg-yongfeng in yongfeng, master: the top of its tree" in text
    s.close()


async def test_a_dual_master_pair_is_shown_as_such_with_its_slaves_below(tmp_path):
    text = SMALL.read_text()
    registries = text[text.index("registries:"):text.index("templates:")]
    path = tmp_path / "dual.yaml"
    path.write_text(text.replace(registries, """registries:
  - {name: reg-yf, idc: yf, role: master, replicates_from: reg-ali}
  - {name: reg-ali, idc: ali, role: master, replicates_from: reg-yf}
  - {name: reg-yf-b, idc: yf, role: slave, replicates_from: reg-yf}
"""))
    s, app = open_app(str(tmp_path / "dual.db"), world=str(path))
    async with app.run_test(size=SIZE) as pilot:
        await open_registry(pilot, app)
        assert keys(app, "topology") == ["reg-yf", "reg-yf-b", "reg-ali"]
        assert cell(app, "topology", "reg-yf", "name") == "reg-yf ⇄ reg-ali"
        assert cell(app, "topology", "reg-ali", "name") == "reg-ali ⇄ reg-yf"
        assert cell(app, "topology", "reg-yf-b", "name") == "└─ reg-yf-b"
        assert cell(app, "topology", "reg-ali", "role") == "dual master"
        assert "dual master with reg-ali: each replicates the other's pushes" in screen_text(app)
        await to_tab(pilot, app, "Policies")  # no policies in the file: one each way, and one to the slave
        assert cell(app, "policies", "reg-yf", "route") == "reg-yf → reg-ali, reg-yf-b"
        assert cell(app, "policies", "reg-ali", "route") == "reg-ali → reg-yf"
    s.close()


async def test_health_shows_up_with_latency_and_down_with_the_error(demo_db):
    s, app = open_app(demo_db)  # the session opens the store the rows below go into
    RegistryHealthRow.insert(registry="reg-yongfeng", ok=True, latency_ms=12.4, checked_real=time.time()).execute()
    RegistryHealthRow.insert(registry="reg-aliyun", ok=False, error="CONNECTION: connection refused (127.0.0.1:5003)",
                             checked_real=time.time()).execute()
    async with app.run_test(size=SIZE) as pilot:
        await open_registry(pilot, app)
        await until(pilot, lambda: cell(app, "topology", "reg-aliyun", "health").startswith("DOWN"))
        assert cell(app, "topology", "reg-yongfeng", "health") == "up 12 ms"
        assert cell(app, "topology", "reg-aliyun", "health") == "DOWN: CONNECTION: connection refused (127.0.0.1:5003)"
        assert screen_text(app).splitlines()[1].strip().startswith("1 registry DOWN · ")
    s.close()


async def test_the_policies_tab_lists_route_trigger_and_limits(demo_db):
    s, app = open_app(demo_db)
    async with app.run_test(size=SIZE) as pilot:
        await open_registry(pilot, app)
        await to_tab(pilot, app, "Policies")
        assert keys(app, "policies") == ["release", "tucheng-sub"]
        assert cell(app, "policies", "release", "route") == "reg-yongfeng → reg-tucheng, reg-aliyun"
        assert cell(app, "policies", "tucheng-sub", "bandwidth") == "100 Mb/s"
        assert cell(app, "policies", "release", "trigger") == "event"
        text = screen_text(app)
        assert "tags: * except *-rc*, *-snapshot" in text  # the selected policy in full, below
        assert "override: no (another digest there is a conflict, left alone)" in text
    s.close()


# --- executions ------------------------------------------------------------------------------------


async def test_a_replication_queued_through_the_facade_shows_in_executions(demo_db):
    s, app = open_app(demo_db)
    outcome = s.cockpit.replicate("release", ["feed-web:2026.11.20"])
    assert outcome.ok, outcome.message
    async with app.run_test(size=SIZE) as pilot:
        await open_registry(pilot, app)
        await to_tab(pilot, app, "Executions")
        await until(pilot, lambda: keys(app, "executions") == ["1"])
        assert cell(app, "executions", "1", "policy") == "release"
        assert cell(app, "executions", "1", "state") == "pending"
        assert cell(app, "executions", "1", "trigger") == "manual"
        assert "feed-web:2026.11.20" in screen_text(app)  # its scope, in the details below
    s.close()


async def test_a_replication_started_from_the_view_runs_on_the_engine_to_the_end(demo_db):
    s, app = open_app(demo_db, engine=True)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: "engine ● active" in screen_text(app), timeout=30)
        await open_registry(pilot, app)
        await to_tab(pilot, app, "Matrix")
        image = keys(app, "matrix")[0]
        await pilot.press("r")
        await until(pilot, lambda: "Start a replication" in screen_text(app))
        await pilot.press("enter")
        await until(pilot, lambda: "Start a replication?" in screen_text(app))
        await pilot.press("y")
        await to_tab(pilot, app, "Executions")
        await until(pilot, lambda: keys(app, "executions") == ["1"]
                    and cell(app, "executions", "1", "state") == "succeeded", timeout=30)
        assert cell(app, "executions", "1", "bar") == "█" * 10  # in sync everywhere: nothing left to copy
        assert f"manual by {os_user().name}" in screen_text(app) and image in screen_text(app)
    s.close()


async def test_progress_moves_on_the_wall_clock_while_the_platform_clock_is_paused(demo_db):
    s, app = open_app(demo_db)
    ClockRow.update(paused=True).where(ClockRow.id == 1).execute()
    ex = ReplicationRow.insert(policy="release", trigger="manual", state="running", actor="sre", tasks_total=4,
                               created_t=now_t(), real_created=time.time(), real_started=time.time()).execute()
    async with app.run_test(size=SIZE) as pilot:
        await open_registry(pilot, app)
        await to_tab(pilot, app, "Executions")
        await until(pilot, lambda: cell(app, "executions", str(ex), "tasks") == "0/4")
        assert cell(app, "executions", str(ex), "bar") == "░" * 10
        ReplicationRow.update(tasks_done=2, bytes_moved=84_000_000).where(ReplicationRow.id == ex).execute()
        await until(pilot, lambda: cell(app, "executions", str(ex), "tasks") == "2/4")
        assert cell(app, "executions", str(ex), "bar") == "█" * 5 + "░" * 5
        assert cell(app, "executions", str(ex), "mb") == "84.0"
        assert cell(app, "executions", str(ex), "rate")  # a throughput, MB a second while it ran
        assert ClockRow.get_by_id(1).paused
    s.close()


async def test_a_failed_task_shows_its_error_in_full_below(demo_db, demo_world):
    s, app = open_app(demo_db)
    spread_trouble(demo_world)
    async with app.run_test(size=SIZE) as pilot:
        await open_registry(pilot, app)
        await to_tab(pilot, app, "Executions")
        await until(pilot, lambda: len(keys(app, "tasks")) == 2)
        assert cell(app, "executions", "1", "failed") == "1" and cell(app, "executions", "1", "conflict") == "1"
        text = screen_text(app)
        assert "feed-web:2026.11.26 → reg-aliyun: copy failed, 5 attempts" in text
        flat = " ".join(text.split())  # the error wraps: read whole
        assert "not retried; check the credentials of reg-aliyun in the config" in flat
    s.close()


async def test_stop_asks_is_audited_and_asks_the_engine_to_stop(demo_db):
    s, app = open_app(demo_db)
    assert s.cockpit.replicate("release").ok
    async with app.run_test(size=SIZE) as pilot:
        await open_registry(pilot, app)
        await to_tab(pilot, app, "Executions")
        await until(pilot, lambda: keys(app, "executions") == ["1"])
        await pilot.press("x")
        await until(pilot, lambda: "Stop a replication?" in screen_text(app))
        assert "Stop replication 1 (release" in screen_text(app)
        await pilot.press("y")
        await until(pilot, lambda: ReplicationRow.get_by_id(1).stop_requested)
        await until(pilot, lambda: any("replication 1: stopping" in n for n in notices(app)))
    done = [(a.action, a.outcome, a.details) for a in AuditRow.select().where(AuditRow.action == "registry.stop")]
    assert done == [("registry.stop", "done", {"execution": 1})]
    s.close()


# --- the matrix ------------------------------------------------------------------------------------


async def test_the_matrix_has_a_row_per_image_and_a_column_per_registry(demo_db, demo_world):
    s, app = open_app(demo_db)
    async with app.run_test(size=SIZE) as pilot:
        await open_registry(pilot, app)
        await to_tab(pilot, app, "Matrix")
        assert keys(app, "matrix") == world_images(demo_world)
        assert [c.key for c in table(app, "matrix").columns][1:] == [r.name for r in demo_world.registries]
        image = keys(app, "matrix")[0]
        assert cell(app, "matrix", image, "reg-yongfeng") == "source"
        assert cell(app, "matrix", image, "reg-tucheng-b") == "in sync"
        header = screen_text(app).splitlines()[4]
        assert "▸yongfeng" in header and "tucheng-b" in header and "reg-" not in header  # short names
    s.close()


async def test_the_matrix_shows_behind_failed_and_conflict_and_the_cell_in_full(demo_db, demo_world, monkeypatch):
    monkeypatch.setenv("NO_COLOR", "1")  # the words say it all without colour
    s, app = open_app(demo_db)
    used = spread_trouble(demo_world)
    async with app.run_test(size=SIZE) as pilot:
        await open_registry(pilot, app)
        await to_tab(pilot, app, "Matrix")
        await until(pilot, lambda: used["new"] in keys(app, "matrix"))
        new, card = used["new"], used["conflict"]
        assert cell(app, "matrix", new, "reg-yongfeng") == "source"
        assert cell(app, "matrix", new, "reg-tucheng") == "behind 4m"
        assert cell(app, "matrix", new, "reg-aliyun") == "FAILED"
        assert cell(app, "matrix", card, "reg-aliyun") == "CONFLICT"
        assert cell(app, "matrix", card, "reg-tucheng") == "in sync"
        text = screen_text(app)
        for word in ("behind 4m", "FAILED", "CONFLICT"):
            assert word in text
        assert "2 behind, 1 FAILED, 1 CONFLICT" in text  # tucheng and tucheng-b are behind on the new image
        # the selected cell in full: move to the new image, then right to reg-aliyun
        table(app, "matrix").move_to_key(new)
        await pilot.press("right", "right")  # file order: yongfeng, tucheng, aliyun
        await until(pilot, lambda: "at reg-aliyun: FAILED" in " ".join(screen_text(app).split()))
        assert "UNAUTHORIZED" in screen_text(app)
        await pilot.press("left")
        await until(pilot, lambda: "at reg-tucheng: behind 4m" in screen_text(app))
        assert "reg-yongfeng is its source and has had it for 4 min" in " ".join(screen_text(app).split())
    s.close()


async def test_slash_keeps_the_matrix_rows_in_a_state_and_esc_brings_back_all(demo_db, demo_world):
    s, app = open_app(demo_db)
    used = spread_trouble(demo_world)
    async with app.run_test(size=SIZE) as pilot:
        await open_registry(pilot, app)
        await to_tab(pilot, app, "Matrix")
        await until(pilot, lambda: used["new"] in keys(app, "matrix"))
        await pilot.press("slash", *"conflict", "enter")
        await until(pilot, lambda: keys(app, "matrix") == [used["conflict"]])
        await pilot.press("escape")
        await until(pilot, lambda: len(keys(app, "matrix")) == len(world_images(demo_world)) + 1)
    s.close()


async def test_enter_on_a_matrix_row_opens_its_layers_and_what_sharing_saves(demo_db, demo_world):
    s, app = open_app(demo_db)
    async with app.run_test(size=SIZE) as pilot:
        await open_registry(pilot, app)
        await to_tab(pilot, app, "Matrix")
        feed = next(i for i in keys(app, "matrix") if i.startswith("feed-web:"))
        table(app, "matrix").move_to_key(feed)
        await pilot.press("enter")
        await until(pilot, lambda: keys(app, "blobs"))
        image = next(i for i in demo_world.images if i.ref == feed)
        assert len(keys(app, "blobs")) == len(image.layers) + 1  # the config, then each layer
        text = screen_text(app)
        assert f"{feed} at reg-yongfeng" in text
        flat = " ".join(text.split())
        assert "Sharing saves" in flat and "of storage" in flat
        shared = [cell(app, "blobs", k, "shared") for k in keys(app, "blobs")]
        assert any("user-web:" in x for x in shared)  # the base layers are in the other web images too
        assert "only this image" in shared  # its own code layer
        await pilot.press("escape")
        await until(pilot, lambda: not app.screen.has_class("-layers"))
        assert isinstance(app.screen, RegistryScreen) and app.screen.focused is table(app, "matrix")
    s.close()


# --- starting a replication ------------------------------------------------------------------------


async def test_replicate_from_a_matrix_row_asks_then_queues_that_image_and_audits(demo_db, demo_world):
    s, app = open_app(demo_db)
    async with app.run_test(size=SIZE) as pilot:
        await open_registry(pilot, app)
        await to_tab(pilot, app, "Matrix")
        user = next(i for i in keys(app, "matrix") if i.startswith("user-web:"))
        table(app, "matrix").move_to_key(user)
        await pilot.press("r")
        await until(pilot, lambda: "Start a replication" in screen_text(app))
        assert app.screen.query_one("#images").value == user
        assert app.screen.query_one("#policy").value == "release"
        await pilot.press("enter")
        await until(pilot, lambda: "Start a replication?" in screen_text(app))
        assert f"Replicate {user} with policy release" in " ".join(screen_text(app).split())
        await pilot.press("y")
        await until(pilot, lambda: any("replication 1 queued" in n for n in notices(app)))
    ex = ReplicationRow.get_by_id(1)
    assert (ex.policy, ex.trigger, ex.actor, ex.state) == ("release", "manual", os_user().name, "pending")
    assert ex.scope == [user.rsplit(":", 1)]
    audit = [(a.action, a.outcome, a.target) for a in AuditRow.select().where(AuditRow.action == "registry.replicate")]
    assert audit == [("registry.replicate", "done", "release")]
    s.close()


async def test_replicate_backed_out_of_changes_nothing(demo_db):
    s, app = open_app(demo_db)
    async with app.run_test(size=SIZE) as pilot:
        await open_registry(pilot, app)
        await pilot.press("r")
        await until(pilot, lambda: "Start a replication" in screen_text(app))
        await pilot.press("enter")
        await until(pilot, lambda: "Start a replication?" in screen_text(app))
        assert "Replicate every image it covers with policy release" in " ".join(screen_text(app).split())
        await pilot.press("n")
        await until(pilot, lambda: isinstance(app.screen, RegistryScreen))
    assert ReplicationRow.select().count() == 0
    assert AuditRow.select().where(AuditRow.action == "registry.replicate").count() == 0
    s.close()


async def test_the_form_refuses_what_is_not_an_image_or_not_covered_by_the_policy(demo_db):
    s, app = open_app(demo_db)
    async with app.run_test(size=SIZE) as pilot:
        await open_registry(pilot, app)
        for typed, why in (("feedweb", "'feedweb' is not an image NAME:TAG"),
                           ("feed-web:2.6-rc1", "policy release does not cover feed-web:2.6-rc1 (repositories: *; "
                                                "tags: * except *-rc*, *-snapshot)"),
                           ("feed-web:9.9", "reg-yongfeng does not hold feed-web:9.9 (as last seen), so policy release "
                                            "has nothing of it to replicate")):
            await pilot.press("r")
            await until(pilot, lambda: "Start a replication" in screen_text(app))
            await pilot.press("tab", *typed, "enter")
            await until(pilot, lambda why=why: why in notices(app))
            assert isinstance(app.screen, RegistryScreen)  # nothing to confirm
    assert ReplicationRow.select().count() == 0
    assert AuditRow.select().where(AuditRow.action == "registry.replicate").count() == 0
    s.close()


async def test_replicate_is_refused_in_read_only_mode_with_the_reason_and_audited(demo_db):
    s, app = open_app(demo_db, readonly=True)
    async with app.run_test(size=SIZE) as pilot:
        await open_registry(pilot, app)
        assert "Replicate" not in screen_text(app).splitlines()[-1]  # not offered in the footer
        await pilot.press("r")
        await until(pilot, lambda: "Start a replication: read-only mode: no changes" in notices(app))
        assert isinstance(app.screen, RegistryScreen)  # no form for an action that is refused
        await until(pilot, lambda: AuditRow.select().where(AuditRow.outcome == "refused").count() == 1)
    refused = [(a.action, a.outcome) for a in AuditRow.select()]
    assert refused == [("registry.replicate", "refused")]
    assert ReplicationRow.select().count() == 0
    s.close()


async def test_a_viewer_role_is_refused_with_the_role_it_needs(demo_db):
    s, app = open_app(demo_db, role="viewer")
    assert s.cockpit.replicate("release").ok is False
    async with app.run_test(size=SIZE) as pilot:
        await open_registry(pilot, app)
        await pilot.press("r")
        await until(pilot, lambda: any("needs role operator" in n for n in notices(app)))
    assert ReplicationRow.select().count() == 0
    s.close()


# --- sizes -----------------------------------------------------------------------------------------


async def test_every_tab_reads_at_60x20(demo_db, demo_world):
    s, app = open_app(demo_db)
    spread_trouble(demo_world)
    async with app.run_test(size=NARROW) as pilot:
        await open_registry(pilot, app)
        text = screen_text(app)
        assert "reg-tucheng-b" in text and "not asked yet" in text
        await to_tab(pilot, app, "Policies")
        assert "release" in screen_text(app) and "reg-yongfeng → reg-tucheng" in screen_text(app)
        await to_tab(pilot, app, "Executions")
        await until(pilot, lambda: "failed" in screen_text(app))
        header = screen_text(app).splitlines()[4]
        for column in ("#", "Policy", "State", "Progress", "Tasks", "Fail", "Conf"):  # what an SRE needs stays
            assert column in header, column
        await to_tab(pilot, app, "Matrix")
        await until(pilot, lambda: "FAILED" in screen_text(app) and "CONFLICT" in screen_text(app))
        header = screen_text(app).splitlines()[4]
        assert "yongfeng" in header and "aliyun" in header and "tucheng-b" not in header  # the deepest goes first
        assert "(hidden at this width: reg-tucheng-b)" in " ".join(screen_text(app).split())
    s.close()


def test_the_topology_at_80x24(demo_db, snap_compare):
    s, app = open_app(demo_db)

    async def opened(pilot):
        await open_registry(pilot, app)
        await pilot.press("j")
        await pilot.pause(0.1)

    assert snap_compare(app, terminal_size=SIZE, run_before=opened)
    s.close()


def test_the_matrix_at_80x24(demo_db, demo_world, snap_compare):
    s, app = open_app(demo_db)
    used = spread_trouble(demo_world)

    async def opened(pilot):
        await open_registry(pilot, app)
        await to_tab(pilot, app, "Matrix")
        await until(pilot, lambda: used["new"] in keys(app, "matrix"))
        table(app, "matrix").move_to_key(used["new"])
        await pilot.press("right")
        await until(pilot, lambda: "at reg-tucheng: behind" in screen_text(app))
        await pilot.pause(0.1)

    assert snap_compare(app, terminal_size=SIZE, run_before=opened)
    s.close()
