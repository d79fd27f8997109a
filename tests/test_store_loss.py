"""The store going away for a while and coming back: a PostgreSQL restarted under a running
engine. The engine says what is wrong while it is away and carries on by itself when it is back;
what an SRE asks meanwhile fails in words and can be asked again."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import peewee as pw
import pytest

from cockpit.store.db import open_store
from cockpit.store.models import ClockRow, TaskRow
from tests import pg
from tests.conftest import SMALL

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
    import os

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


def test_an_action_while_the_store_is_away_fails_in_words_and_can_be_asked_again(cluster, tmp_path):
    import os

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

    url = cluster.url(cluster.new_db())
    cfg = Config(db=url, world=str(SMALL), tick_s=0.2, autoscale=False)
    s = open_session(cfg)
    app = create_app(s.cockpit, cfg, s.make_engine)

    async def until(pilot, predicate, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            assert time.monotonic() < deadline, f"timed out; screen:\n{screen_text(app)}"
            await pilot.pause(0.05)

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
