"""`:hosts`, `:ecs` and `:costs` driven as an SRE would."""

from __future__ import annotations

import importlib.util
import time
from pathlib import Path

import pytest

from cockpit.engine import journal
from cockpit.identity import os_user
from cockpit.screens.costs import CostsScreen
from cockpit.screens.ecs import EcsScreen
from cockpit.screens.hosts import SORTS, HostsScreen
from cockpit.store.models import AuditRow, EcsOrderRow, HostRow, PoolMoveRow, TaskRow
from cockpit.widgets.describe import HostDescribe
from cockpit.widgets.live_table import LiveTable
from tests.conftest import make_cfg
from tests.screen_text import notices, screen_text
from tests.test_tui import SIZE, open_app, table_keys, until

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def _fixed_user(monkeypatch):
    monkeypatch.setenv("USER", "sre")


async def open_hosts(pilot, app, hosts: int = 2060) -> HostsScreen:
    await pilot.press("colon", *"hosts", "enter")
    await until(pilot, lambda: isinstance(app.screen, HostsScreen) and len(table_keys(app)) == hosts)
    return app.screen


def hosts_table(app) -> LiveTable:
    return app.screen.query_one("#hosts", LiveTable)


def row_of(app, host: str) -> str:
    return next(line for line in screen_text(app).splitlines() if line.startswith(host + " "))


async def test_giving_hosts_back_to_the_shared_pool_from_the_pools_tab(demo_db):
    s, app = open_app(demo_db, engine=True)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: "engine ● active" in screen_text(app))
        await open_hosts(pilot, app)
        await pilot.press("right_square_bracket")
        pools = app.screen.query_one("#pools", LiveTable)
        await until(pilot, lambda: app.focused is pools and "card-web/tucheng" in pools.row_keys)
        pools.move_to_key("card-web/tucheng")
        await pilot.press("B")
        await until(pilot, lambda: "Give hosts back to shared" in screen_text(app))
        await pilot.press("tab", "tab", *"5", "enter")  # pool and IDC come from the row; 5 hosts
        await until(pilot, lambda: "Move hosts between pools?" in screen_text(app))
        await pilot.press("y")
        await until(pilot, lambda: TaskRow.select().where(TaskRow.state == "done").count() == 1, timeout=15)
    assert PoolMoveRow.select().where(PoolMoveRow.to_pool == "shared").count() == 5
    assert HostRow.select().where((HostRow.pool == "card-web") & (HostRow.idc == "tucheng")).count() == 75
    s.close()


async def test_g_and_G_go_to_the_first_and_last_host_and_j_k_move_one(demo_db):
    s, app = open_app(demo_db)
    async with app.run_test(size=SIZE) as pilot:
        await open_hosts(pilot, app)
        table = hosts_table(app)
        assert app.focused is table
        await pilot.press("G")
        assert table.cursor_row == 2059 and "yf-user-old-0160" in screen_text(app)
        await pilot.press("k", "k", "j")
        assert table.cursor_row == 2058
        await pilot.press("g")
        assert table.cursor_row == 0
        assert not [n for n in notices(app) if "Give" in n]  # g is no longer give-back
    s.close()


async def test_bracket_keys_switch_the_hosts_tabs_and_focus_lands_on_the_tabs_table(demo_db):
    s, app = open_app(demo_db)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_hosts(pilot, app)
        tabs = screen.query_one("TabbedContent")
        for key, tab, table in (("right_square_bracket", "tab-pools", "#pools"),
                                ("right_square_bracket", "tab-moves", "#moves"),
                                ("right_square_bracket", "tab-hosts", "#hosts"),
                                ("left_square_bracket", "tab-moves", "#moves"),
                                ("left_square_bracket", "tab-pools", "#pools")):
            await pilot.press(key)
            await until(pilot, lambda tab=tab, table=table: tabs.active == tab
                        and app.focused is screen.query_one(table, LiveTable))
        pools = screen.query_one("#pools", LiveTable)
        await pilot.press("j", "j")  # the keys go to the pools table
        assert pools.cursor_row == 2
        await pilot.press("slash", *"shared", "enter")  # after the filter, focus is back on the table
        await until(pilot, lambda: len(pools.row_keys) == 3 and app.focused is pools)
    s.close()


async def test_columns_at_80_keep_what_an_sre_needs_and_whole_labels(demo_db):
    s, app = open_app(demo_db)
    async with app.run_test(size=SIZE) as pilot:
        await open_hosts(pilot, app)
        await pilot.press("slash", *"tc-hadoop-0001", "enter")
        await until(pilot, lambda: table_keys(app) == ["tc-hadoop-0001"])
        text = screen_text(app)
        assert "Host" in text and "IDC" in text and "Pool" in text and "CPU" in text and "St" in text
        row = row_of(app, "tc-hadoop-0001")
        for cell in ("tucheng", "hadoop", "75%", "up", "disk=hdd gen=new role=bigdata"):  # the widest labels, whole
            assert cell in row, row
        assert "…" not in row
        await pilot.press("right_square_bracket")
        await until(pilot, lambda: "Cluster" in screen_text(app))
        assert "Pool     Cluster  Kind    IDC" in screen_text(app) and "Init" in screen_text(app)
    s.close()


async def test_at_60x20_hosts_pools_and_moves_still_read(demo_db):
    s, app = open_app(demo_db, engine=True)
    async with app.run_test(size=(60, 20)) as pilot:
        await until(pilot, lambda: "active" in screen_text(app))
        await open_hosts(pilot, app)
        s.cockpit.move_hosts(to_pool="shared", hosts=["yf-card-old-0001"], reason="give back")
        row = row_of(app, "ali-feed-0001")
        for cell in ("feed-web", "up", "disk=ssd gen=new role=web"):
            assert cell in row, row
        assert all(len(line) <= 60 for line in screen_text(app).splitlines())
        await pilot.press("right_square_bracket")
        await until(pilot, lambda: "card-web" in screen_text(app) and "Up/all" in screen_text(app))
        assert "Init" in screen_text(app) and "80/80" in row_of(app, "card-web")
        await pilot.press("right_square_bracket")
        await until(pilot, lambda: "yf-card-old-0001" in screen_text(app), timeout=15)
        moved = row_of_any(app, "yf-card-old-0001")
        assert "card-web" in moved and "shared" in moved and "give back" in moved
    s.close()


def row_of_any(app, word: str) -> str:
    return next(line for line in screen_text(app).splitlines() if word in line)


async def test_enter_describes_the_host_with_containers_and_history_and_esc_or_enter_closes(demo_db, demo_world):
    s, app = open_app(demo_db)
    start = demo_world.start.timestamp()
    journal.event(start + 600, "warn", "host", "yf-rpc-new-0001",
                  "host yf-rpc-new-0001 (yongfeng/user-rpc) down; repair in ~20 min")
    journal.event(start + 1800, "info", "host", "yf-rpc-new-0001", "host yf-rpc-new-0001 (yongfeng/user-rpc) back")
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_hosts(pilot, app)
        await pilot.press("slash", *"yf-rpc-new-0001", "enter")
        await until(pilot, lambda: table_keys(app) == ["yf-rpc-new-0001"] and app.focused is hosts_table(app))
        await pilot.press("enter")
        pane = screen.query_one(HostDescribe)
        await until(pilot, lambda: "Containers (1)" in screen_text(app) and app.focused is pane)
        text = screen_text(app)
        for what in ("yf-rpc-new-0001", "yongfeng", "user-rpc", "new: 32 cores, 32 GB, 1,200 GB disk", "Address",
                     "disk=ssd gen=new role=rpc", "up", "initialisation ready", "owned: 1,400.00 a month",
                     "relation", ":9090", "running",
                     "26 Nov 12:20  host yf-rpc-new-0001 (yongfeng/user-rpc) back",  # newest first, platform time
                     "26 Nov 12:00  host yf-rpc-new-0001 (yongfeng/user-rpc) down"):
            assert what in text, what
        assert "Host             IDC" not in text  # the pane takes the table's place
        await pilot.press("escape")
        await until(pilot, lambda: "Containers (1)" not in screen_text(app) and app.focused is hosts_table(app))
        assert table_keys(app) == ["yf-rpc-new-0001"]  # esc closed the pane, the filter stays
        await pilot.press("d")
        await until(pilot, lambda: "Containers (1)" in screen_text(app))
        await pilot.press("enter")
        await until(pilot, lambda: "Containers (1)" not in screen_text(app) and app.focused is hosts_table(app))
    s.close()


async def test_the_describe_pane_shows_a_pool_move_and_opens_from_the_moves_tab(demo_db):
    s, app = open_app(demo_db, engine=True)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: "engine ● active" in screen_text(app))
        outcome = s.cockpit.move_hosts(to_pool="shared", hosts=["tc-card-old-0007"], reason="give back")
        assert outcome.ok, outcome.message
        await until(pilot, lambda: PoolMoveRow.select().count() == 1, timeout=15)
        screen = await open_hosts(pilot, app)
        await pilot.press("right_square_bracket", "right_square_bracket")
        moves = screen.query_one("#moves", LiveTable)
        await until(pilot, lambda: moves.row_count == 1 and app.focused is moves)
        await pilot.press("enter")
        await until(pilot, lambda: "History (1" in screen_text(app))
        text = screen_text(app)
        assert "tc-card-old-0007" in text and f"pool card-web → shared (give back, by {os_user().name}" in text
        assert "pool shared" in text
    s.close()


async def test_hosts_are_read_again_only_when_the_store_changed(demo_db, monkeypatch):
    import cockpit.screens.hosts as hosts_mod

    monkeypatch.setattr(hosts_mod, "CHECK_S", 0.0)
    s, app = open_app(demo_db)
    async with app.run_test(size=SIZE) as pilot:
        # read ahead once the cockpit started: the first :hosts shows it, with no read of its own
        await until(pilot, lambda: hosts_mod._LAST.get(s.cockpit) is not None)
        screen = await open_hosts(pilot, app)
        assert screen.reads == 0 and len(table_keys(app)) == 2060
        for _ in range(5):  # nothing changed: a look at the fingerprint, no read
            screen.reload()
            await until(pilot, lambda: not screen._loading)
        assert screen.reads == 0
        HostRow.update(alive=False).where(HostRow.name == "tc-feed-new-0042").execute()  # as the engine writes it
        screen.reload()
        await until(pilot, lambda: screen.reads == 1)
        # only the hosts' states were read again; what the view holds is what a full read gives
        assert screen.shown.data.hosts == {h.name: h for h in s.cockpit.hosts()}
        await pilot.press("slash", *"tc-feed-new-0042", "enter")
        await until(pilot, lambda: table_keys(app) == ["tc-feed-new-0042"])
        assert "DOWN" in row_of(app, "tc-feed-new-0042") and "1 down" in screen_text(app)
        await pilot.press("escape", "escape")  # the filter, then the view
        await until(pilot, lambda: not isinstance(app.screen, HostsScreen))
        await pilot.press("colon", *"hosts", "enter")  # opened again: the last read at once, no new read
        await until(pilot, lambda: isinstance(app.screen, HostsScreen) and app.screen is not screen
                    and len(table_keys(app)) == 2060)
        await pilot.pause(0.3)
        assert app.screen.reads == 0 and "DOWN" in screen_text(app) or app.screen.reads == 0
    s.close()


async def test_sort_cycles_and_keeps_the_cursor_on_its_host(demo_db):
    s, app = open_app(demo_db)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_hosts(pilot, app)
        table = hosts_table(app)
        table.move_to_key("yf-hadoop-0003")
        for sort in ("alloc", "containers", "down first", "name"):
            await pilot.press("s")
            await until(pilot, lambda sort=sort: screen.shown.sort == sort and f"sorted by {sort}" in screen_text(app))
            want = [h.name for h in sorted(screen.shown.data.hosts.values(), key=SORTS[sort])]
            assert table.row_keys == want
            assert table.current_key() == "yf-hadoop-0003"
    s.close()


def test_the_hosts_read_agrees_with_the_planners_table_on_sqlite_and_postgres(demo_url, demo_world):
    """`Cockpit.hosts()` reads rows and counts containers in SQL for speed; it must say what the
    planner's table (built from every container row) says, host for host."""
    from cockpit.core.placement import MIB, MILLI
    from cockpit.engine.state import current_table
    from cockpit.session import open_session

    s = open_session(make_cfg(demo_url), world=demo_world)
    try:
        hosts = s.cockpit.hosts()
        table, _, rows = current_table()
        assert [h.name for h in hosts] == [r["name"] for r in rows] and len(hosts) == 2060
        for i, (h, r) in enumerate(zip(hosts, rows)):
            per = {table.services[j]: int(n) for j, n in enumerate(table.counts[i]) if n}
            assert (h.labels, h.alive, h.status, h.services, h.containers) == (
                r["labels"], r["alive"], r["status"], per, sum(per.values()))
            assert (h.cpu_alloc, h.mem_alloc, h.disk_alloc) == (
                int(table.cpu_used[i]) / MILLI, int(table.mem_used[i]) / MIB, int(table.disk_used[i]) / MIB)
        before = s.cockpit.hosts_version()
        assert s.cockpit.hosts_version() == before
        HostRow.update(alive=False).where(HostRow.name == "yf-rpc-new-0001").execute()
        assert s.cockpit.hosts_version() != before
        d = s.cockpit.host_detail("yf-rpc-new-0001")
        assert d is not None and not d.alive and [c.service for c in d.containers] == ["relation"]
        assert d.containers[0].ports == [[9090, 9090]] and d.cpu_alloc == 12
        assert s.cockpit.host_detail("no-such-host") is None
    finally:
        s.close()


def _gen_world():
    spec = importlib.util.spec_from_file_location("gen_world", ROOT / "data" / "gen_world.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


async def test_opening_sorting_filtering_and_moving_do_not_stall_at_6000_hosts(tmp_path):
    """The reviewer saw 12 s to open, 2-7 s per sort or filter and 4.5 s cursor stalls at 5,960
    hosts. The bounds here are loose (a loaded test machine); bench/tui.py measures the frames."""
    from cockpit import world
    from cockpit.app import create_app
    from cockpit.session import open_session

    path = tmp_path / "hosts_6000.yaml"
    _gen_world().generate(6000, path)
    w = world.load(path)
    assert w.host_count == 6000 and w.name == "hosts_6000"
    cfg = make_cfg(str(tmp_path / "big.db"))
    s = open_session(cfg, world=w)
    app = create_app(s.cockpit, cfg, None)

    async def timed(pilot, keys, done, bound) -> None:
        t0 = time.monotonic()
        await pilot.press(*keys)
        await until(pilot, done, timeout=10)
        took = time.monotonic() - t0
        assert took < bound, f"{keys}: {took:.2f} s"

    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: table_keys(app))
        await timed(pilot, ("colon", *"hosts", "enter"),
                    lambda: isinstance(app.screen, HostsScreen) and len(table_keys(app)) == 6000, 3.0)
        screen = app.screen
        await timed(pilot, ("s",), lambda: screen.shown.sort == "alloc", 1.5)
        await timed(pilot, ("slash", *"tc-h"), lambda: screen.shown.query == "tc-h", 1.5)
        assert all(k.startswith("tc-h") for k in table_keys(app)) and len(table_keys(app)) == 291
        await pilot.press("escape")
        await until(pilot, lambda: len(table_keys(app)) == 6000)
        table = hosts_table(app)
        table.focus()
        for _ in range(20):
            row = table.cursor_row
            await timed(pilot, ("j",), lambda row=row: table.cursor_row == row + 1, 0.5)
    s.close()


def test_the_world_generator_refuses_bad_arguments_in_one_line(tmp_path, capsys):
    gen = _gen_world()
    assert gen.main(["--hosts", "6000", "--out", str(tmp_path / "nowhere" / "w.yaml")]) == 2
    assert capsys.readouterr().err.strip().endswith(f"no such directory {tmp_path / 'nowhere'}")
    with pytest.raises(SystemExit) as exit_:
        gen.main(["--hosts", "12", "--out", str(tmp_path / "w.yaml")])
    assert exit_.value.code == 2
    assert "expected 100 to 100000 hosts, got 12" in capsys.readouterr().err
    assert not (tmp_path / "w.yaml").exists()


def test_hosts_at_80x24(demo_db, snap_compare):
    s, app = open_app(demo_db)

    async def opened(pilot):
        await until(pilot, lambda: table_keys(app))
        await open_hosts(pilot, app)
        await pilot.press("j", "j")
        await pilot.pause(0.1)

    assert snap_compare(app, terminal_size=SIZE, run_before=opened)
    s.close()


def test_hosts_describe_pane_at_80x24(demo_db, demo_world, snap_compare):
    s, app = open_app(demo_db)
    journal.event(demo_world.start.timestamp() + 600, "warn", "host", "yf-rpc-new-0001",
                  "host yf-rpc-new-0001 (yongfeng/user-rpc) down; repair in ~20 min")

    async def described(pilot):
        await until(pilot, lambda: table_keys(app))
        await open_hosts(pilot, app)
        await pilot.press("slash", *"yf-rpc-new-0001", "enter")
        await until(pilot, lambda: table_keys(app) == ["yf-rpc-new-0001"])
        await pilot.press("enter")
        await until(pilot, lambda: "History (1" in screen_text(app))
        await pilot.pause(0.1)

    assert snap_compare(app, terminal_size=SIZE, run_before=described)
    s.close()


async def test_ordering_ecs_hosts_shows_the_cost_then_the_progress_and_fallback(demo_db):
    s, app = open_app(demo_db, engine=True, backends={"cloud": {"kind": "sim", "latency_ms": 20}})
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: "engine ● active" in screen_text(app))
        await pilot.press("colon", *"ecs", "enter")
        await until(pilot, lambda: isinstance(app.screen, EcsScreen))
        await pilot.press("o")
        await until(pilot, lambda: "Order ECS hosts" in screen_text(app))
        await pilot.press("tab", *"60", "enter")
        await until(pilot, lambda: "Cost: 228.00 an hour, 166,440 a month." in screen_text(app))
        await pilot.press("y")
        await until(pilot, lambda: EcsOrderRow.select().where(EcsOrderRow.state == "done").count() == 1, timeout=20)
        await until(pilot, lambda: "60/60" in screen_text(app))
        text = screen_text(app)
        assert "██████" in text and "done" in text  # the Done bar, full
        assert "fallback: cn-beijing-h" in text and "OperationDenied.NoStock" in text
    audit = AuditRow.get(AuditRow.action == "ecs.order")
    assert audit.details["cost_per_month"] == 166440.0
    s.close()


async def test_costs_list_expiring_hosts_and_renew_one(demo_db):
    s, app = open_app(demo_db, engine=True)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: "engine ● active" in screen_text(app))
        await pilot.press("colon", *"costs", "enter")
        await until(pilot, lambda: isinstance(app.screen, CostsScreen) and "expiring within 7 days: 40" in screen_text(app))
        assert "aliyun" in screen_text(app) and "yongfeng" in screen_text(app)
        expiring = app.screen.query_one("#expiring", LiveTable)
        expiring.focus()
        await pilot.press("n")
        await until(pilot, lambda: "Renew prepaid hosts?" in screen_text(app))
        await pilot.press("y")
        await until(pilot, lambda: TaskRow.select().where((TaskRow.kind == "renew") & (TaskRow.state == "done")).count() == 1,
                    timeout=15)
    renewed = TaskRow.get(TaskRow.kind == "renew").progress["renewed"]
    assert renewed == ["ali-shared-0001"]
    s.close()
