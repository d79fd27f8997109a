"""A backend that hangs: the UI keeps answering keys, says which backend is not answering and how
old what it shows is, and work goes on by itself when the backend is back.

Keys are timed as Pilot lets each one through the app (its handlers run and the app is idle
again): the median must be under 200 ms, and none may come near the hung backend's own wait (a
UI that waited on it would take 3 s for the cloud, 8 s for the store) — under 1 s. The median,
not each key: this 2-core machine runs the suite's tests side by side. Real things throughout: a PostgreSQL store whose clock table another session holds locked, the cloud API's
port taken by a server that accepts and never answers, then `cockpit serve cloud` on that port;
a hung etcd, then a real one; a hung registry, then docker-registry; a lab host's real dockerd
stopped with SIGSTOP (its socket takes connections, nothing answers), then continued."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest

from cockpit.app import create_app
from cockpit.session import open_session
from cockpit.store.models import ClockRow, EcsOrderRow
from tests.conftest import make_cfg
from tests.lab import needs_root
from tests.screen_text import screen_text
from tests.test_tui import until as tui_until

pytestmark = pytest.mark.integration

SIZE = (100, 30)
KEY_MEDIAN_S = 0.2
KEY_WORST_S = 1.0
WALK = [":", *"hosts", "enter", "j", "j", "k", "s", "s", ":", *"backends", "enter", "j", "k",
        ":", *"dashboard", "enter"]


async def until(pilot, predicate, timeout: float = 20.0) -> None:
    """The TUI tests' wait, with the longer default a backend coming back needs."""
    await tui_until(pilot, predicate, timeout)


def flat(app) -> str:
    """The screen's words, lines joined (a long line wraps in the detail pane)."""
    return " ".join(screen_text(app).split())


async def key_times(pilot, keys=WALK) -> list[tuple[float, str]]:
    """Each key pressed and let through the app: how long each took, slowest first."""
    out = []
    for k in keys:
        started = time.monotonic()
        await pilot.press(k)
        out.append((time.monotonic() - started, k))
    return sorted(out, reverse=True)


async def said_while_hung(pilot, header: str, detail: str, what: str, timeout: float = 30) -> None:
    """The header names the backend; keys are answered meanwhile; `:backends` says it in words."""
    app = pilot.app
    await until(pilot, lambda: header in flat(app), timeout=timeout)
    assert_answered(await key_times(pilot), what)
    for k in (":", *"backends", "enter"):
        await pilot.press(k)
    await until(pilot, lambda: detail in flat(app))
    said = flat(app)  # with ages: how long it has not answered, and how old what it last said is
    assert re.search(rf"{re.escape(detail)} for \d+ (s|min)", said), said
    assert re.search(r"what it last said is \d+ (s|min) old|no answer since the engine started", said), said


def assert_answered(times: list[tuple[float, str]], what: str) -> None:
    median = times[len(times) // 2][0]
    worst, key = times[0]
    assert median < KEY_MEDIAN_S, f"keys took {median * 1000:.0f} ms (median) with {what}"
    assert worst < KEY_WORST_S, f"key {key!r} took {worst * 1000:.0f} ms with {what}"


class HungServer:
    """Takes connections on a loopback port and never says a word: a backend that hangs."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.held: list[socket.socket] = []
        self._stop = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._stop:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.held.append(conn)

    def close(self) -> None:
        """Let go of the port (shut down first: a close alone leaves accept() holding it)."""
        self._stop = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
        for c in self.held:
            c.close()


def _lock_clock(cluster, db: str, seconds: float) -> threading.Thread:
    """Another session holding the clock table exclusively (a DBA's migration, say): every read of
    it waits, the UI's and the engine's alike."""
    import psycopg

    conn = psycopg.connect(host=cluster.sockdir, port=cluster.port, dbname=db, user="postgres")
    conn.execute("LOCK TABLE clock IN ACCESS EXCLUSIVE MODE")

    def hold() -> None:
        time.sleep(seconds)
        conn.commit()
        conn.close()

    t = threading.Thread(target=hold, daemon=True)
    t.start()
    return t


async def test_a_store_that_does_not_answer_leaves_the_ui_answering_and_says_so(pg_cluster, pg_demo_template):
    db = pg_cluster.new_db(template=pg_demo_template)
    cfg = make_cfg(pg_cluster.url(db))
    s = open_session(cfg)
    app = create_app(s.cockpit, cfg, s.make_engine)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: "engine ● active" in screen_text(app))
        locker = _lock_clock(pg_cluster, db, 10)
        try:
            await until(pilot, lambda: "store not answering" in screen_text(app) and "data stale" in screen_text(app),
                        timeout=10)
            assert_answered(await key_times(pilot), "the store away")
        finally:
            locker.join(30)
        # back by itself: the header clears and the engine ticks on
        await until(pilot, lambda: "engine ● active" in screen_text(app).splitlines()[0]
                    and "store" not in screen_text(app).splitlines()[0], timeout=30)
        tick = ClockRow.get_by_id(1).tick
        await until(pilot, lambda: ClockRow.get_by_id(1).tick > tick, timeout=15)
    s.close()


def _serve_cloud(port: int, env: dict) -> subprocess.Popen:
    p = subprocess.Popen([sys.executable, "-m", "cockpit", "serve", "cloud", "--port", str(port), "--latency-ms", "50"],
                         stdout=subprocess.PIPE, text=True, env=env)
    assert f":{port}" in p.stdout.readline()
    return p


async def test_a_cloud_api_that_hangs_is_said_and_orders_go_on_when_it_is_back(demo_db, tmp_path, monkeypatch):
    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_ID", "hung-test-key")
    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_SECRET", "hung-test-secret")
    hung = HungServer()
    server = None
    cfg = make_cfg(demo_db, backends={"cloud": {"kind": "aliyun", "endpoint": f"127.0.0.1:{hung.port}",
                                                "timeout_s": 3, "batch": 5, "max_in_flight": 2}})
    s = open_session(cfg)
    try:
        assert s.cockpit.order_hosts(103, 4).ok
        app = create_app(s.cockpit, cfg, s.make_engine)
        async with app.run_test(size=SIZE) as pilot:
            await said_while_hung(pilot, "cloud cn-beijing down", "cloud API cn-beijing: not answering",
                                  "the cloud hanging")
            assert "ECS orders wait and are retried" in flat(app)
            hung.close()
            server = _serve_cloud(hung.port, {**os.environ, "XDG_DATA_HOME": str(tmp_path)})
            await until(pilot, lambda: EcsOrderRow.get_by_id(1).state == "done", timeout=60)
            await until(pilot, lambda: "cloud API cn-beijing: answering" in flat(app))
            await until(pilot, lambda: "down" not in screen_text(app).splitlines()[0])
    finally:
        hung.close()
        if server is not None:
            server.terminate()
            server.wait(10)
        s.close()


def test_the_hung_server_really_hangs():
    hung = HungServer()
    try:
        with socket.create_connection(("127.0.0.1", hung.port), timeout=1) as c:
            c.sendall(b"GET / HTTP/1.0\r\n\r\n")
            c.settimeout(0.3)
            with pytest.raises(socket.timeout):
                c.recv(1)
    finally:
        hung.close()


async def test_a_discovery_store_that_hangs_is_said_and_the_managers_come_back_with_it(demo_db, tmp_path):
    from cockpit.lab import procs

    hung = HungServer()
    etcd = None
    cfg = make_cfg(demo_db, backends={"discovery": {"kind": "etcd", "url": f"http://127.0.0.1:{hung.port}",
                                                    "timeout_s": 2, "lock_ttl_s": 4}})
    s = open_session(cfg)
    try:
        app = create_app(s.cockpit, cfg, s.make_engine)
        async with app.run_test(size=SIZE) as pilot:
            await said_while_hung(pilot, f"discovery etcd at http://127.0.0.1:{hung.port} down",
                                  f"discovery store etcd at http://127.0.0.1:{hung.port}: not answering",
                                  "the discovery store hanging")
            assert "flows and scheduling managers wait" in flat(app)
            hung.close()
            etcd = procs.start_etcd(tmp_path / "etcd", client_port=hung.port)
            await until(pilot, lambda: f"discovery store etcd at http://127.0.0.1:{hung.port}: answering" in flat(app),
                        timeout=30)
            await until(pilot, lambda: "down" not in screen_text(app).splitlines()[0])
            assert s.cockpit.engine.managers.held == {i.name for i in s.world.idcs}  # managing every IDC again
    finally:
        hung.close()
        if etcd is not None:
            procs.stop_pid(etcd.pid, 10)
        s.close()


async def test_a_registry_that_hangs_is_said_and_answers_again_when_it_is_back(tmp_path):
    from tests.conftest import SMALL
    from tests.registries import DockerRegistry

    hung = HungServer()
    yf = DockerRegistry(tmp_path / "reg-yf", name="reg-yf").start()
    ali = None
    cfg = make_cfg(str(tmp_path / "small.db"), world=str(SMALL), backends={"registry": {"kind": "oci", "registries": {
        "reg-yf": {"url": yf.url}, "reg-ali": {"url": f"http://127.0.0.1:{hung.port}"}}}})
    s = open_session(cfg)
    try:
        app = create_app(s.cockpit, cfg, s.make_engine)
        async with app.run_test(size=SIZE) as pilot:
            await said_while_hung(pilot, "registry reg-ali down", "registry reg-ali: not answering",
                                  "a registry hanging", timeout=60)
            hung.close()
            ali = DockerRegistry(tmp_path / "reg-ali", name="reg-ali", port=hung.port).start()
            await until(pilot, lambda: "registry reg-ali: answering" in flat(app) or
                        ("reg-ali" in flat(app) and "not answering" not in flat(app)), timeout=60)
    finally:
        hung.close()
        for r in (yf, ali):
            if r is not None:
                r.stop()
        s.close()


def test_a_container_engine_that_hangs_is_said_within_its_timeout_and_its_host_marked():
    """The engine watch asks every host's dockerd side by side, each call bounded: a dockerd that
    takes the connection and never answers costs one timeout, says so, and marks only its host."""
    from cockpit.backends.docker_engine import DockerRuntime
    from cockpit.engine.engine_watch import EngineWatch
    from cockpit.engine.health import Health

    hung = HungServer()
    try:
        rt = DockerRuntime.from_settings({"kind": "docker", "timeout_s": 1,
                                          "hosts": {"yf-web-0001": f"tcp://127.0.0.1:{hung.port}"},
                                          "registries": {"yf-web-0001": "127.0.0.1:5000"}})
        health = Health()
        watch = EngineWatch(rt, lambda: ["yf-web-0001"], health=health)
        started = time.monotonic()
        watch.round()
        assert time.monotonic() - started < 5
        assert not watch.seen["yf-web-0001"].ok
        (b,) = health.states()
        assert (b.kind, b.name, b.ok) == ("engine", "yf-web-0001", False)
        said = b.describe(time.time())
        assert said.startswith("container engine yf-web-0001: not answering") and "does not answer" in said
        assert "check dockerd on it" in said
    finally:
        hung.close()


@needs_root
async def test_a_container_engine_that_hangs_is_said_its_host_marked_and_both_come_back_with_it():
    """A host's dockerd stopped (SIGSTOP: its socket still takes connections, nothing answers)
    on the lab's real engines: the UI keeps answering, the header and `:backends` name it, its
    host goes down; continued, it answers again and its host is back, with no one's help."""
    from cockpit import config
    from cockpit.store.models import HostRow
    from tests.lab import lab_up, short_dir

    with short_dir() as d:
        st = lab_up(d, hosts=2)
        dockerd = st.of("dockerd")[0]
        host = dockerd.name
        cfg = config.load(str(d / "cockpit.yaml"))
        cfg.autoscale = False
        s = open_session(cfg)
        try:
            app = create_app(s.cockpit, cfg, s.make_engine)
            async with app.run_test(size=SIZE) as pilot:
                await until(pilot, lambda: "engine ● active" in flat(app), timeout=60)
                os.kill(dockerd.pid, signal.SIGSTOP)
                try:
                    await said_while_hung(pilot, f"engine {host} down", f"container engine {host}: not answering",
                                          "a container engine hanging", timeout=60)
                    await until(pilot, lambda: not HostRow.get(HostRow.name == host).alive, timeout=60)
                finally:
                    os.kill(dockerd.pid, signal.SIGCONT)
                await until(pilot, lambda: f"container engine {host}: answering" in flat(app), timeout=60)
                await until(pilot, lambda: HostRow.get(HostRow.name == host).alive, timeout=60)
                await until(pilot, lambda: "down" not in screen_text(app).splitlines()[0], timeout=30)
        finally:
            s.close()
