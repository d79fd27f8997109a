"""The store going away for a while and coming back: a PostgreSQL restarted under a running
engine, a SQLite file another process holds locked, a full disk. The engine says what is wrong
while it is away and carries on by itself when it is back; what an SRE asks meanwhile fails in
words and can be asked again."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import peewee as pw
import pytest

from cockpit.store.db import open_store
from cockpit.store.models import ClockRow, EcsOrderRow, TaskRow
from tests import pg
from tests.conftest import DEMO, SMALL
from tests.lab import needs_root

pytestmark = pytest.mark.integration


@pytest.fixture
def cluster() -> Iterator[pg.Cluster]:
    c = pg.start()  # its own: restarting the tests' shared cluster would drop other tests' connections
    yield c
    c.stop()


def _wait(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if predicate():
                return
        except Exception:  # noqa: BLE001 - the store may be away a moment longer
            pass
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def _cli(url: str, env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cockpit", *args, "--db", url, "--world", str(SMALL), "--yes"],
                          capture_output=True, text=True, env=env, timeout=60)


def test_a_postgresql_restart_under_a_running_engine_is_got_over_by_itself(cluster, tmp_path):
    url = cluster.url(cluster.new_db())
    env = {**os.environ, "XDG_DATA_HOME": str(tmp_path), "XDG_CONFIG_HOME": str(tmp_path), "PYTHONUNBUFFERED": "1"}
    engine = subprocess.Popen([sys.executable, "-m", "cockpit", "engine", "--db", url, "--world", str(SMALL)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    errors: list[str] = []
    threading.Thread(target=lambda: errors.extend(engine.stderr), daemon=True).start()
    try:
        assert engine.stdout.readline().strip() == "engine active"
        db = open_store(url)
        before = ClockRow.get_by_id(1).tick
        cluster.restart()
        # the engine's own connections were dropped: it ticks on once the server is back
        _wait(lambda: ClockRow.get_by_id(1).tick > before + 3, 30, "the engine to tick again")
        assert engine.poll() is None
        # and what is asked after the restart is done (this process's connection got over it too)
        r = _cli(url, env, "scale-in", "--service", "user", "--count", "1")
        assert r.returncode == 0, r.stderr
        tid = int(r.stdout.split()[2])
        _wait(lambda: TaskRow.get_by_id(tid).state == "done", 30, "the scale-in")
        db.close()
    finally:
        engine.terminate()
        engine.wait(15)
    said = "".join(errors)
    assert "terminating connection" in said or "connection" in said  # it said what went wrong meanwhile


def test_every_worker_of_an_engine_that_kept_its_lease_through_a_restart_works_on(cluster, tmp_path):
    """A PostgreSQL restart shorter than the lease: the engine stays active, and so must each of
    its workers: an ECS order placed after the restart is drained (the drainer once ended for
    good on the first store error it met)."""
    url = cluster.url(cluster.new_db())
    env = {**os.environ, "XDG_DATA_HOME": str(tmp_path), "XDG_CONFIG_HOME": str(tmp_path), "PYTHONUNBUFFERED": "1"}
    demo = str(DEMO)
    engine = subprocess.Popen([sys.executable, "-m", "cockpit", "engine", "--db", url, "--world", demo],
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
    try:
        assert engine.stdout.readline().strip() == "engine active"
        time.sleep(1.0)  # the drainer is at work on the store (it looks for calls every poll)
        cluster.restart()
        db = open_store(url)
        r = subprocess.run([sys.executable, "-m", "cockpit", "ecs", "order", "--template", "101", "--count", "2",
                            "--db", url, "--world", demo, "--yes"], capture_output=True, text=True, env=env, timeout=60)
        assert r.returncode == 0, r.stderr
        _wait(lambda: EcsOrderRow.get(EcsOrderRow.created >= 0).state == "done", 60, "the order drained")
        assert EcsOrderRow.get().created == 2
        db.close()
    finally:
        engine.terminate()
        engine.wait(15)


def test_host_statuses_met_by_a_restart_are_written_once_the_store_is_back(cluster):
    """The one writer of host statuses meets a PostgreSQL restart: what it was writing is kept
    and written once the server answers, not dropped (a host would stay initialising for good
    under an engine that kept its lease)."""
    from cockpit import world
    from cockpit.backends.base import InitEvent
    from cockpit.engine.init import StatusWriter
    from cockpit.engine.seed import ensure_seeded
    from cockpit.store.models import HostRow

    url = cluster.url(cluster.new_db())
    db = open_store(url)
    ensure_seeded(db, world.load(SMALL))
    writer = StatusWriter(db)
    try:
        host = HostRow.select().order_by(HostRow.id).first().name
        writer.put(InitEvent(host, "initialising", "ntp"))
        writer.flush()  # the writer's connection is made, and then dropped by the restart
        cluster.restart()
        writer.put(InitEvent(host, "ready", "docker"))
        writer.flush()
        _wait(lambda: HostRow.get(HostRow.name == host).status == "ready", 10, "the status written")
    finally:
        writer.stop()
        db.close()


def test_an_action_while_the_store_is_away_fails_in_words_and_can_be_asked_again(cluster, tmp_path):
    url = cluster.url(cluster.new_db())
    env = {**os.environ, "XDG_DATA_HOME": str(tmp_path), "XDG_CONFIG_HOME": str(tmp_path)}
    assert _cli(url, env, "scale-in", "--service", "user", "--count", "1").returncode == 0
    cluster.down()
    try:
        r = _cli(url, env, "scale-in", "--service", "user", "--count", "1")
        assert r.returncode == 2 and r.stderr.startswith("cockpit: store ") and len(r.stderr.splitlines()) == 1, r.stderr
    finally:
        cluster.up()
    r = _cli(url, env, "scale-in", "--service", "user", "--count", "1")
    assert r.returncode == 0, r.stderr
    db = open_store(url)
    assert TaskRow.select().where(TaskRow.kind == "scale_in").count() == 2  # the one that failed never landed
    db.close()



async def test_an_action_that_did_not_take_while_the_store_was_away_is_kept_and_asked_again(cluster):
    from cockpit.app import create_app
    from cockpit.config import Config
    from cockpit.session import open_session
    from tests.screen_text import notices, screen_text
    from tests.test_hung_backends import until

    url = cluster.url(cluster.new_db())
    cfg = Config(db=url, world=str(SMALL), tick_s=0.2, autoscale=False)
    s = open_session(cfg)
    app = create_app(s.cockpit, cfg, s.make_engine)

    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: "engine ● active" in screen_text(app))
        cluster.down()
        try:
            await pilot.press("space")  # pause the platform clock: it cannot be written
            await until(pilot, lambda: app.not_done)
            assert any(n.startswith("not done: Pause or resume the platform clock:") for n in notices(app))
        finally:
            cluster.up()
        await pilot.press("ctrl+p")
        await pilot.press(*"Retry")
        await pilot.press("enter")
        def paused() -> bool:
            try:  # this thread's own connection meets the restart once, as every client does
                return ClockRow.get_by_id(1).paused
            except pw.OperationalError:
                return False

        await until(pilot, lambda: not app.not_done and paused(), timeout=30)
        # an action kept as not done whose audit entry shows it took after all is not asked again
        from cockpit.app import NotDone

        calls = []
        item = NotDone("sim.pause", "pause", lambda: calls.append(1), "lost answer", time.time() - 30)
        app.not_done = [item]
        app.retry(item)
        await until(pilot, lambda: any("was done after all" in n for n in notices(app)))
        assert calls == [] and not app.not_done
    s.close()


# Another process holding the SQLite store's write lock (a backup tool, a hand-run sqlite3 shell):
# it says "locked" once it holds it, and lets go after the seconds given.
HOLD_LOCK = """
import sqlite3, sys, time
con = sqlite3.connect(sys.argv[1], isolation_level=None)
con.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
con.execute("ROLLBACK")
"""


async def test_a_sqlite_store_locked_by_another_process_keeps_the_action_that_did_not_take(tmp_path):
    """The store's file locked for longer than a writer waits: the UI goes on answering keys, the
    action the SRE took fails in words and is kept; once the lock is let go, Retry does it and the
    engine carries on by itself."""
    from cockpit.app import create_app
    from cockpit.config import Config
    from cockpit.session import open_session
    from cockpit.store.db import BUSY_TIMEOUT_MS
    from tests.screen_text import screen_text
    from tests.test_hung_backends import assert_answered, key_times, until

    path = tmp_path / "small.db"
    cfg = Config(db=str(path), world=str(SMALL), tick_s=0.2, autoscale=False)
    s = open_session(cfg)
    app = create_app(s.cockpit, cfg, s.make_engine)

    try:
        async with app.run_test(size=(100, 30)) as pilot:
            await until(pilot, lambda: "engine ● active" in screen_text(app))
            hold_s = BUSY_TIMEOUT_MS / 1000 + 4
            locker = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(path), str(hold_s)],
                                      stdout=subprocess.PIPE, text=True)
            try:
                assert locker.stdout.readline().strip() == "locked"
                await pilot.press("space")  # pause the platform clock: a write, which waits on the lock
                assert_answered(await key_times(pilot, ["j", "k", "j", ":", *"hosts", "enter", "j", "escape"]),
                                "the store's file locked")
                await until(pilot, lambda: app.not_done, timeout=BUSY_TIMEOUT_MS / 1000 + 10)
                (kept,) = app.not_done  # said in a notice too, which may be gone by now on a loaded machine
                # the engine could not write meanwhile: the header says so, and why
                await until(pilot, lambda: "store database is locked" in screen_text(app).splitlines()[0], timeout=3)
                assert "engine stale" in screen_text(app).splitlines()[0]
                assert kept.action_id == "sim.pause" and "locked" in kept.why, kept
            finally:
                locker.wait(timeout=hold_s + 10)
            assert not ClockRow.get_by_id(1).paused
            await pilot.press("ctrl+p")
            await pilot.press(*"Retry")
            await pilot.press("enter")
            await until(pilot, lambda: not app.not_done and ClockRow.get_by_id(1).paused, timeout=30)
            await until(pilot, lambda: "engine ● active" in screen_text(app), timeout=30)  # its lease again
    finally:
        s.close()


# Run in a private mount namespace: a small tmpfs over $DISK, checked to be there before anything
# is written (without it the filler would fill the disk the tests run on), and a bounded filler.
FULL_DISK = """
set -u
mount -t tmpfs -o size=8m tmpfs "$DISK" || exit 97
mountpoint -q "$DISK" || exit 98
cp "$SEED" "$DISK/small.db"
run() { "$PY" -m cockpit scale-in --service user --count 1 --db "$DISK/small.db" --world "$WORLD" --yes 2>"$OUT/err$1"; echo "rc=$?"; }
fill() { dd if=/dev/zero of="$DISK/fill" bs=64k count=256 2>/dev/null; }
run 1
fill
run 2
rm "$DISK/fill"
run 3
"$PY" -c "$TUI" "$DISK"
cp "$DISK"/small.db* "$OUT/"
"""

# A Cockpit that was running when the disk filled: the action it takes is not done, said as a
# full disk, kept; with room again, Retry takes it.
TUI = """
import asyncio, os, subprocess, sys, time
from cockpit.app import create_app
from cockpit.config import Config
from cockpit.session import open_session
from cockpit.store.models import ClockRow

disk = sys.argv[1]

async def until(pilot, predicate, timeout=30.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        await pilot.pause(0.05)

async def main():
    cfg = Config(db=f"{disk}/small.db", world=os.environ["WORLD"], tick_s=0.2, autoscale=False)
    s = open_session(cfg)
    app = create_app(s.cockpit, cfg, None)
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: app.last_snapshot is not None)
        subprocess.run(["dd", "if=/dev/zero", f"of={disk}/fill", "bs=64k", "count=256"], capture_output=True)
        await pilot.press("space")  # pause the platform clock
        await until(pilot, lambda: app.not_done)
        print("KEPT", app.not_done[0].action_id, app.not_done[0].why, flush=True)
        os.remove(f"{disk}/fill")
        await pilot.press("ctrl+p", *"Retry", "enter")
        await until(pilot, lambda: not app.not_done and ClockRow.get_by_id(1).paused)
        print("RETRIED paused", flush=True)
    s.close()

asyncio.run(main())
"""


@needs_root  # mounts a small tmpfs in a private mount namespace
def test_a_full_disk_fails_an_action_in_words_and_the_store_takes_it_once_there_is_room(tmp_path):
    """The store's disk full (a real one: a small tmpfs, in a mount namespace of the test's own).
    The CLI: the action fails in one line, exit 2, and leaves nothing half-written; with room again
    the same action is taken. A running Cockpit: the action is kept, said as a full disk, and Retry
    takes it once there is room. The store is whole after it all."""
    from cockpit import world
    from cockpit.engine.seed import ensure_seeded

    if subprocess.run(["unshare", "--mount", "--propagation", "private", "true"]).returncode != 0:
        pytest.skip("no private mount namespace here")
    seed, disk, out = tmp_path / "seed.db", tmp_path / "disk", tmp_path / "out"
    disk.mkdir()
    out.mkdir()
    db = open_store(str(seed))
    ensure_seeded(db, world.load(SMALL))
    db.execute_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    env = {**os.environ, "DISK": str(disk), "SEED": str(seed), "OUT": str(out), "PY": sys.executable,
           "WORLD": str(SMALL), "TUI": TUI}
    r = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", FULL_DISK],
                       capture_output=True, text=True, env=env, timeout=180)
    assert r.returncode == 0, (r.returncode, r.stdout, r.stderr)
    codes = [line for line in r.stdout.splitlines() if line.startswith("rc=")]
    assert codes == ["rc=0", "rc=2", "rc=0"], (r.stdout, r.stderr)
    said = (out / "err2").read_text().splitlines()
    assert len(said) == 1 and said[0].startswith("cockpit: store ") and ": the disk is full (" in said[0], said
    kept = next(line for line in r.stdout.splitlines() if line.startswith("KEPT "))
    assert kept.startswith("KEPT sim.pause ") and "the disk is full (" in kept, kept
    assert "RETRIED paused" in r.stdout
    db = open_store(str(out / "small.db"))
    try:
        assert db.execute_sql("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert TaskRow.select().where(TaskRow.kind == "scale_in").count() == 2  # the one that failed never landed
        assert ClockRow.get_by_id(1).paused
    finally:
        db.close()
