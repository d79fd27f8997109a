"""`:services` driven as an SRE would: each service's containers per IDC (running, starting,
stopping, on how many hosts) as the store holds them, the selected service's containers, what
discovery holds against what runs, and a flow started for the selected service (expand queued;
a shrink of more than the IDC runs sent back to the form with why; refused in read-only mode)."""

from __future__ import annotations

from textual.widgets import Input, Static

from cockpit.screens.confirm import ConfirmScreen
from cockpit.screens.form import FormScreen
from cockpit.screens.services import ServicesScreen
from cockpit.store.models import AuditRow, ContainerRow, HostRow, TaskRow
from tests.screen_text import cell, keys, notices, screen_text, table
from tests.test_tui import SIZE, open_app, until

ENGINE_UP_S = 30


async def open_services(pilot, app) -> ServicesScreen:
    await until(pilot, lambda: app.last_snapshot is not None)
    await pilot.press("colon", *"services", "enter")
    await until(pilot, lambda: isinstance(app.screen, ServicesScreen) and keys(app, "services")
                and keys(app, "containers"))
    return app.screen


def per_idc(service: str) -> dict[str, tuple[int, int]]:
    """IDC -> (containers running, hosts they are on), from the store."""
    out: dict[str, tuple[int, set]] = {}
    for idc, state, host in ContainerRow.select(ContainerRow.idc, ContainerRow.state, ContainerRow.host).where(
            ContainerRow.service == service).tuples():
        n, hosts = out.get(idc, (0, set()))
        out[idc] = (n + (state == "running"), hosts | {host})
    return {idc: (n, len(hosts)) for idc, (n, hosts) in out.items()}


def words(app) -> str:
    """The words of the dialog on top (its title, note, labels, body), one space apart, however they wrap."""
    return " ".join(" ".join(getattr(w.content, "plain", str(w.content)) for w in app.screen.query(Static)).split())


async def test_each_service_shows_its_containers_per_idc_as_the_store_holds_them(demo_db, demo_world):
    s, app = open_app(demo_db)
    async with app.run_test(size=SIZE) as pilot:
        await open_services(pilot, app)
        assert keys(app, "services") == sorted(x.name for x in demo_world.services)
        for svc in demo_world.services:
            held = per_idc(svc.name)
            for idc in (i.name for i in demo_world.idcs):
                want = f"{held[idc][0]} on {held[idc][1]}" if idc in held else "—"
                assert cell(app, "services", svc.name, idc) == want, (svc.name, idc)
        assert cell(app, "services", "feed", "yongfeng") == "2200 on 560"  # the demo's feed in yongfeng
        assert cell(app, "services", "etl", "health") == "- batch"  # no discovery for a batch service
        assert cell(app, "services", "feed", "health") == "- not asked"  # no engine here: no discovery store
        table(app, "services").move_to_key("relation")
        rows = (ContainerRow.select().where(ContainerRow.service == "relation")
                .order_by(ContainerRow.idc, ContainerRow.host))
        await until(pilot, lambda: len(keys(app, "containers")) == rows.count())
        first = rows.first()
        assert cell(app, "containers", first.name, "host") == HostRow.get_by_id(first.host).name
        assert cell(app, "containers", first.name, "address") == f"{first.address}:{first.ports[0][1]}"
        total = ContainerRow.select().where(ContainerRow.state == "running").count()
        assert f"5 services · {total} containers running" in screen_text(app)
    s.close()


async def test_discovery_health_says_what_discovery_lacks_against_what_runs(demo_db):
    s, app = open_app(demo_db, engine=True)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: "engine ● active" in screen_text(app), timeout=ENGINE_UP_S)
        await open_services(pilot, app)
        running = list(ContainerRow.select().where((ContainerRow.service == "card")
                                                   & (ContainerRow.state == "running")))
        await until(pilot, lambda: cell(app, "services", "card", "health") == "✓ in sync")
        assert cell(app, "services", "card", "disc") == str(len(running))
        # one upstream member lost from the engine's discovery store: the container runs, nobody sends it requests
        c = running[0]
        s.cockpit.engine.discovery.remove_member("card", c.address, c.ports[0][1])
        await until(pilot, lambda: cell(app, "services", "card", "health") == "✗ 1 missing")
        assert cell(app, "services", "card", "disc") == str(len(running) - 1)
        text = screen_text(app)
        assert "discovery off for card" in text
        assert "discovery: ✗ 1 running containers are not in discovery" in text  # card is the first, selected
    s.close()


async def test_an_rpc_service_shows_who_answers_a_caller_in_each_idc_and_failover(demo_db):
    s, app = open_app(demo_db, engine=True)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: "engine ● active" in screen_text(app), timeout=ENGINE_UP_S)
        await open_services(pilot, app)
        table(app, "services").move_to_key("relation")
        per = per_idc("relation")
        await until(pilot, lambda: "callers " in screen_text(app))
        text = screen_text(app)
        assert f"yongfeng: own {per['yongfeng'][0]}" in text
        # aliyun runs no relation instance: its callers fail over, in name order, to tucheng
        assert f"aliyun: → tucheng {per['tucheng'][0]}" in text
        # tucheng's instances leave discovery: its callers fail over too
        d = s.cockpit.engine.discovery
        for inst in d.instances("relation"):
            if inst.idc == "tucheng":
                d.deregister("relation", inst.id)
        await until(pilot, lambda: f"tucheng: → yongfeng {per['yongfeng'][0]}" in screen_text(app)
                    and f"aliyun: → yongfeng {per['yongfeng'][0]}" in screen_text(app))
    s.close()


async def test_expand_from_the_view_queues_a_flow_for_the_selected_service(demo_db):
    s, app = open_app(demo_db)
    async with app.run_test(size=SIZE) as pilot:
        await open_services(pilot, app)
        table(app, "services").move_to_key("user")
        await pilot.press("plus")
        await until(pilot, lambda: isinstance(app.screen, FormScreen))
        form = app.screen
        prefilled = {f: form.query_one(f"#{f}", Input).value for f in ("kind", "service", "count", "idc")}
        assert prefilled == {"kind": "expand", "service": "user", "count": "1", "idc": "tucheng"}  # where it runs most
        form.query_one("#count", Input).value = "4"
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        assert "user +4 in tucheng (620 running there now)" in words(app)
        await pilot.press("y")
        await until(pilot, lambda: TaskRow.select().where(TaskRow.kind == "expand").count() == 1)
        flow = TaskRow.get(TaskRow.kind == "expand")
        assert (flow.state, flow.spec["service"], flow.spec["count"], flow.spec["idc"]) == \
            ("queued", "user", 4, "tucheng")
        await until(pilot, lambda: f"flow {flow.id} started from here: :tasks follows it" in screen_text(app))
        assert AuditRow.get(AuditRow.action == "flow.start").outcome == "done"
    s.close()


async def test_a_shrink_of_more_than_the_idc_runs_goes_back_to_the_form_with_why(demo_db):
    s, app = open_app(demo_db)
    async with app.run_test(size=SIZE) as pilot:
        await open_services(pilot, app)
        table(app, "services").move_to_key("feed")
        await pilot.press("minus")
        await until(pilot, lambda: isinstance(app.screen, FormScreen))
        app.screen.query_one("#idc", Input).value = "aliyun"
        app.screen.query_one("#count", Input).value = "999"
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, FormScreen)
                    and "feed runs 240 containers in aliyun; 999 cannot be stopped there" in words(app))
        assert app.screen.query_one("#count", Input).value == "999"  # as typed, to correct
        app.screen.query_one("#count", Input).value = "many"
        await pilot.press("enter")
        await until(pilot, lambda: "containers: a whole number from 1 to 10000, got 'many'" in words(app))
        await pilot.press("escape")
        await until(pilot, lambda: isinstance(app.screen, ServicesScreen))
    assert TaskRow.select().where(TaskRow.kind.in_(("expand", "shrink"))).count() == 0
    s.close()


async def test_expand_is_refused_in_read_only_mode_in_place(demo_db):
    s, app = open_app(demo_db, readonly=True)
    async with app.run_test(size=SIZE) as pilot:
        await open_services(pilot, app)
        assert "Expand" not in screen_text(app).splitlines()[-1]
        await pilot.press("plus")
        refused = "Start an expansion flow (scale out or in): read-only mode: no changes"
        await until(pilot, lambda: refused in notices(app))
        assert isinstance(app.screen, ServicesScreen)
        await until(pilot, lambda: AuditRow.select().where(AuditRow.outcome == "refused").count() == 1)
    s.close()
