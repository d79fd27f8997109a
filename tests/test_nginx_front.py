"""The front door: a real nginx (its own prefix, free ports on 127.0.0.1) in front of small HTTP
servers that answer their own name, its members changed through the admin location (lua mode)
or upstream files and reloads (file mode), and followed from discovery by UpstreamSync."""

from __future__ import annotations

import http.server
import json
import socket
import threading
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cockpit.backends.discovery import DiscoveryError, Member, Members
from cockpit.backends.nginx_front import FrontError, NginxFront, front_conf
from cockpit.backends.upstream_sync import UpstreamSync
from cockpit.lab import procs

SERVICES = ["web", "api.v2"]


# --- what the tests stand on -----------------------------------------------------------------------


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = self.server.label.encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class _Server6(http.server.ThreadingHTTPServer):
    address_family = socket.AF_INET6


class Backend:
    """An HTTP server on 127.0.0.1 (or ::1) answering its own name to every GET."""

    def __init__(self, label: str, address: str = "127.0.0.1"):
        self.address = address
        self.server = (_Server6 if ":" in address else http.server.ThreadingHTTPServer)((address, 0), _Handler)
        self.server.daemon_threads = True
        self.server.label = label
        self.label, self.port = label, self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()

    def member(self, **kw) -> Member:
        return Member(self.address, self.port, **kw)

    def close(self) -> None:
        """Gone: the port refuses connections from now on."""
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def backends():
    made: list[Backend] = []

    def make(*labels: str) -> list[Backend]:
        new = [Backend(label) for label in labels]
        made.extend(new)
        return new

    yield make
    for b in made:
        b.close()


class Front:
    """A running nginx front and the NginxFront that drives it."""

    def __init__(self, prefix: Path, mode: str):
        self.prefix, self.mode = prefix, mode
        self.port, self.admin_port = procs.free_port(), procs.free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.nginx: procs.Nginx | None = None
        self.http = httpx.Client(timeout=5)  # keep-alive: a client's requests meet one worker
        self.start()
        self.api = NginxFront(f"http://127.0.0.1:{self.admin_port}", prefix, mode)

    def start(self) -> None:
        conf = front_conf(self.prefix, f"127.0.0.1:{self.port}", self.admin_port, SERVICES, self.mode)
        self.nginx = procs.start_nginx(self.prefix, conf, self.port)

    def get(self, path: str) -> httpx.Response:
        return self.http.get(self.url + path)

    def stop_nginx(self) -> None:
        if self.nginx is not None:
            self.nginx.stop()
            self.nginx = None

    def close(self) -> None:
        self.http.close()
        self.api.close()
        self.stop_nginx()

    def labels(self, service: str, n: int) -> Counter:
        return Counter(self.get(f"/{service}/x").text for _ in range(n))

    def workers(self) -> set[int]:
        """The master's children, read from /proc."""
        pid = self.nginx.pid
        return {int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()}


@pytest.fixture
def lua_front(tmp_path):
    f = Front(tmp_path / "nginx", "lua")
    yield f
    f.close()


@pytest.fixture
def file_front(tmp_path):
    f = Front(tmp_path / "nginx", "file")
    yield f
    f.close()


def near(counts: Counter, want: dict[str, int], slack: int = 2) -> bool:
    """Each worker keeps its own round robin: per label, within `slack` of the ideal share."""
    return set(counts) == set(want) and all(abs(counts[k] - n) <= slack for k, n in want.items())


def eventually(check, timeout_s: float = 3.0, what: str = "the condition"):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return time.monotonic()
        time.sleep(0.02)
    raise AssertionError(f"{what} did not hold within {timeout_s} s")


class MemDiscovery:
    """A test double of an external discovery store (the members part of the `Discovery`
    Protocol): a dict, an index and a condition variable; `go_away()` makes every call fail as
    an unreachable store does."""

    name = "memdisc"

    def __init__(self):
        self._members: dict[str, dict[str, Member]] = {}
        self._changed: dict[str, int] = {}
        self._index = 1
        self._cond = threading.Condition()
        self.up = True

    def _check(self) -> None:
        if not self.up:
            raise DiscoveryError(self.name, "connection refused", transient=True)

    def _now(self, service: str) -> Members:
        return Members(service, tuple(self._members.get(service, {}).values()), self._index)

    def set_member(self, service: str, member: Member) -> None:
        with self._cond:
            self._check()
            self._members.setdefault(service, {})[member.key] = member
            self._index += 1
            self._changed[service] = self._index
            self._cond.notify_all()

    def remove_member(self, service: str, address: str, port: int) -> None:
        with self._cond:
            self._check()
            self._members.get(service, {}).pop(f"{address}:{port}", None)
            self._index += 1
            self._changed[service] = self._index
            self._cond.notify_all()

    def members(self, service: str) -> Members:
        with self._cond:
            self._check()
            return self._now(service)

    def wait_members(self, service: str, index: int, wait_s: float) -> Members:
        deadline = time.monotonic() + wait_s
        with self._cond:
            self._check()
            while self.up and self._changed.get(service, 0) <= index and (left := deadline - time.monotonic()) > 0:
                self._cond.wait(left)
            self._check()
            return self._now(service)

    def go_away(self) -> None:
        with self._cond:
            self.up = False
            self._cond.notify_all()

    def come_back(self) -> None:
        self.up = True


# --- lua mode --------------------------------------------------------------------------------------


@pytest.mark.integration
def test_lua_requests_reach_exactly_the_members_set_through_the_admin_location(lua_front, backends):
    a, b, c = backends("a", "b", "c")
    lua_front.api.set_members("web", [a.member(), b.member()])
    assert lua_front.api.members("web") == [a.member(), b.member()]
    assert near(lua_front.labels("web", 20), {"a": 10, "b": 10})
    lua_front.api.set_members("web", [c.member()])
    assert lua_front.labels("web", 5) == {"c": 5}
    # the other service is untouched, and the /<service> prefix does not reach the member
    assert lua_front.get("/api.v2/").status_code == 503
    assert lua_front.api.members("api.v2") == []


@pytest.mark.integration
def test_lua_member_changes_under_load_lose_no_request_and_keep_the_same_workers(lua_front, backends):
    a, b, c = backends("a", "b", "c")
    lua_front.api.set_members("web", [a.member(), b.member(), c.member()])
    workers = lua_front.workers()
    seen: list[tuple[float, int, str]] = []
    stop = threading.Event()

    def load():
        with httpx.Client(timeout=5) as client:
            while not stop.is_set():
                r = client.get(f"{lua_front.url}/web/x")
                seen.append((time.monotonic(), r.status_code, r.text))

    t = threading.Thread(target=load)
    t.start()
    try:
        time.sleep(0.4)
        lua_front.api.set_members("web", [a.member(), c.member()])  # b leaves the list...
        b_removed = time.monotonic()
        b.close()  # ...then goes away
        time.sleep(0.4)
        c.close()  # c goes away while still listed: requests that meet it go to another member
        time.sleep(0.4)
        lua_front.api.set_members("web", [a.member()])
        time.sleep(0.3)
    finally:
        stop.set()
        t.join()
    assert len(seen) > 100
    assert [s for s in seen if s[1] != 200] == []
    assert not [s for s in seen if s[0] > b_removed + 0.05 and s[2] == "b"]
    assert {s[2] for s in seen} == {"a", "b", "c"}
    assert lua_front.workers() == workers  # no reload, no restart


@pytest.mark.integration
def test_lua_weights_are_honoured_and_a_down_member_gets_nothing(lua_front, backends):
    a, b, c = backends("a", "b", "c")
    lua_front.api.set_members("web", [a.member(weight=3), b.member(), c.member(down=True)])
    assert near(lua_front.labels("web", 40), {"a": 30, "b": 10})


@pytest.mark.integration
def test_lua_backup_member_serves_only_when_no_other_is_up(lua_front, backends):
    a, spare = backends("a", "spare")
    lua_front.api.set_members("web", [a.member(), spare.member(backup=True)])
    assert lua_front.labels("web", 10) == {"a": 10}
    lua_front.api.set_members("web", [a.member(down=True), spare.member(backup=True)])
    assert lua_front.labels("web", 5) == {"spare": 5}
    lua_front.api.set_members("web", [a.member(), spare.member(backup=True)])
    a.close()  # a refuses: the request moves on to the backup
    assert lua_front.labels("web", 5) == {"spare": 5}


@pytest.mark.integration
def test_lua_service_without_a_live_member_answers_503_at_once(lua_front, backends):
    (a,) = backends("a")
    for members in ([], [a.member(down=True)]):
        lua_front.api.set_members("web", members)
        t0 = time.monotonic()
        r = lua_front.get("/web/anything")
        assert time.monotonic() - t0 < 0.5
        assert r.status_code == 503
        assert "no live member for service web" in r.text


@pytest.mark.integration
def test_lua_admin_refuses_a_bad_list_in_one_line_and_keeps_the_old_one(lua_front, backends):
    (a,) = backends("a")
    lua_front.api.set_members("web", [a.member()])
    for bad, why in ([Member("127.0.0.1", a.port, weight=0)], "weight is not a whole number from 1"), \
                    ([Member("backend.example", 80)], "not an IP address"), \
                    ([a.member(), a.member(weight=2)], "listed twice"):
        with pytest.raises(FrontError, match=why) as e:
            lua_front.api.set_members("web", bad)
        assert not e.value.transient and "\n" not in str(e.value)
    with pytest.raises(FrontError, match="no service nope"):
        lua_front.api.set_members("nope", [])
    r = httpx.post(f"http://127.0.0.1:{lua_front.admin_port}/upstreams/web", content=b'{"members": [{"address": ')
    assert r.status_code == 400 and "not JSON" in r.text
    assert lua_front.api.members("web") == [a.member()]
    assert lua_front.labels("web", 3) == {"a": 3}


@pytest.mark.integration
def test_lua_admin_unreachable_is_a_transient_front_error(lua_front):
    lua_front.stop_nginx()
    with pytest.raises(FrontError, match=f"127.0.0.1:{lua_front.admin_port}") as e:
        lua_front.api.members("web")
    assert e.value.transient


members_st = st.lists(
    st.builds(Member, address=st.sampled_from(["127.0.0.1", "127.0.0.2", "::1"]),
              port=st.integers(1, 65535), weight=st.integers(1, 1000), max_fails=st.integers(0, 1000),
              fail_timeout=st.integers(0, 86400), down=st.booleans(), backup=st.booleans()),
    max_size=8, unique_by=lambda m: m.key)


@pytest.mark.integration
def test_lua_admin_gives_back_exactly_the_members_it_was_given_and_survives_any_body(tmp_path):
    front = Front(tmp_path / "nginx", "lua")
    try:
        @settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
        @given(members_st)
        def round_trip(members):
            front.api.set_members("web", members)
            assert front.api.members("web") == members

        json_values = st.recursive(
            st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
            lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
            max_leaves=20)

        @settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
        @given(st.one_of(json_values.map(lambda v: json.dumps(v).encode()),
                         json_values.map(lambda v: {"members": v}).map(lambda v: json.dumps(v).encode()),
                         st.binary(max_size=60)))
        def any_body(body):
            r = httpx.post(f"http://127.0.0.1:{front.admin_port}/upstreams/web", content=body, timeout=5)
            assert r.status_code in (200, 400), r.text
            assert front.get("/api.v2/").status_code == 503  # the workers still serve

        round_trip()
        any_body()
    finally:
        front.close()


@pytest.mark.integration
@pytest.mark.parametrize("mode", ["lua", "file"])
def test_an_ipv6_member_is_reached(tmp_path, mode):
    six = Backend("six", "::1")
    front = Front(tmp_path / "nginx", mode)
    try:
        front.api.set_members("web", [six.member()])
        assert front.labels("web", 3) == {"six": 3}
    finally:
        front.close()
        six.close()


# --- file mode -------------------------------------------------------------------------------------


@pytest.mark.integration
def test_file_set_members_renders_reloads_and_requests_follow(file_front, backends):
    a, b, c = backends("a", "b", "c")
    assert file_front.get("/web/").status_code == 503  # the empty file front_conf wrote
    file_front.api.set_members("web", [a.member()])
    assert file_front.labels("web", 4) == {"a": 4}
    file_front.api.set_members("web", [b.member(weight=2), c.member(), a.member(down=True)])
    assert near(file_front.labels("web", 12), {"b": 8, "c": 4})
    assert file_front.api.members("web") == [b.member(weight=2), c.member(), a.member(down=True)]
    file_front.api.set_members("web", [])
    r = file_front.get("/web/")
    assert r.status_code == 503 and "no live member for service web" in r.text


@pytest.mark.integration
def test_file_config_nginx_rejects_raises_and_the_old_one_keeps_serving(file_front, backends):
    a, b = backends("a", "b")
    file_front.api.set_members("web", [a.member()])
    before = (file_front.prefix / "upstreams" / "web.conf").read_text()
    with pytest.raises(FrontError, match="nginx rejected the config") as e:
        file_front.api.set_members("web", [b.member(weight=0)])
    assert not e.value.transient and "\n" not in str(e.value)
    assert (file_front.prefix / "upstreams" / "web.conf").read_text() == before
    assert file_front.api.members("web") == [a.member()]
    assert file_front.labels("web", 3) == {"a": 3}


@pytest.mark.integration
def test_file_front_without_nginx_is_a_transient_error_and_changes_nothing(file_front, backends):
    (a,) = backends("a")
    file_front.stop_nginx()
    with pytest.raises(FrontError, match="no nginx runs") as e:
        file_front.api.set_members("web", [a.member()])
    assert e.value.transient
    assert file_front.api.members("web") == []


# --- the config ------------------------------------------------------------------------------------


def test_front_settings_name_the_setting_that_is_wrong(tmp_path):
    (tmp_path / "nginx.conf").write_text("")
    ok = NginxFront.from_settings({"kind": "nginx", "mode": "lua", "admin_url": "http://127.0.0.1:9000",
                                   "url": "http://127.0.0.1:8080"})
    assert (ok.mode, ok.admin_url, ok.url) == ("lua", "http://127.0.0.1:9000", "http://127.0.0.1:8080")
    assert NginxFront.from_settings({"kind": "nginx", "mode": "file", "prefix": str(tmp_path)}).prefix == tmp_path
    for settings_, where in (({"kind": "haproxy"}, "backends.front.kind"),
                             ({"mode": "reload"}, "backends.front.mode"),
                             ({"mode": "lua"}, "backends.front.admin_url"),
                             ({"mode": "lua", "admin_url": "http://10.0.0.5:9000"}, "backends.front.admin_url: .*loopback"),
                             ({"mode": "lua", "admin_url": "http://127.0.0.1:99999"}, "backends.front.admin_url"),
                             ({"mode": "lua", "admin_url": "http://127.0.0.1:9", "prefix": 7}, "backends.front.prefix"),
                             ({"mode": "lua", "admin_url": "http://127.0.0.1:9", "pid": 1}, "backends.front.pid"),
                             ({"mode": "file"}, "backends.front.prefix"),
                             ({"mode": "file", "prefix": str(tmp_path / "none")}, "backends.front.prefix"),
                             ({"mode": "lua", "admin_url": "http://127.0.0.1:9", "url": "ftp://x"}, "backends.front.url")):
        with pytest.raises(ValueError, match=where):
            NginxFront.from_settings(settings_)


def test_front_conf_refuses_what_nginx_could_misread(tmp_path):
    for services, listen, match in ((["web;x"], "127.0.0.1:80", "service"), (["web", "web"], "127.0.0.1:80", "twice"),
                                    ([], "127.0.0.1:80", "no services"), (["web"], "127.0.0.1:80; x", "listen"),
                                    (["web"], "127.0.0.1:70000", "listen")):
        with pytest.raises(ValueError, match=match):
            front_conf(tmp_path, listen, 9000, services, "lua")
    with pytest.raises(ValueError, match="quote"):
        front_conf(tmp_path / 'a"b', "127.0.0.1:80", 9000, ["web"], "file")


# --- following discovery ---------------------------------------------------------------------------


@pytest.mark.integration
def test_sync_a_change_in_discovery_reaches_nginx_within_a_second(lua_front, backends):
    a, b = backends("a", "b")
    disc = MemDiscovery()
    with UpstreamSync(disc, lua_front.api, SERVICES) as sync:
        eventually(lambda: sync.status()["web"].applied_at is not None, what="the first (empty) list applied")
        for change, want in ((lambda: disc.set_member("web", a.member()), {"a"}),
                             (lambda: disc.set_member("web", b.member()), {"a", "b"}),
                             (lambda: disc.remove_member("web", "127.0.0.1", a.port), {"b"})):
            t0 = time.monotonic()
            change()
            took = eventually(lambda: set(lua_front.labels("web", 4)) == want, what=f"nginx reaching {want}") - t0
            assert took < 1.0
        count, applied_at, error = sync.status()["web"]
        assert (count, error) == (1, None) and time.time() - applied_at < 2
        count, applied_at, error = sync.status()["api.v2"]
        assert (count, error) == (0, None) and applied_at is not None  # its empty list, applied


@pytest.mark.integration
def test_sync_keeps_nginx_serving_the_last_list_while_discovery_is_away(lua_front, backends):
    a, b = backends("a", "b")
    disc = MemDiscovery()
    disc.set_member("web", a.member())
    sync = UpstreamSync(disc, lua_front.api, ["web"], max_backoff_s=0.5).start()
    try:
        eventually(lambda: lua_front.get("/web/").text == "a", what="a served")
        disc.go_away()
        eventually(lambda: sync.status()["web"].error is not None, what="the error reported")
        assert "memdisc: connection refused" in sync.status()["web"].error
        assert sync.status()["web"].members == 1
        assert lua_front.labels("web", 5) == {"a": 5}
        assert lua_front.api.members("web") == [a.member()]
        disc.come_back()
        disc.set_member("web", b.member())
        eventually(lambda: set(lua_front.labels("web", 4)) == {"a", "b"}, what="the change after the outage")
        eventually(lambda: sync.status()["web"].error is None, what="the error cleared")
    finally:
        t0 = time.monotonic()
        sync.stop()
        assert time.monotonic() - t0 < 1.1


@pytest.mark.integration
def test_sync_dump_lets_a_fresh_sync_give_nginx_its_members_with_discovery_down(tmp_path, backends):
    a, b = backends("a", "b")
    disc = MemDiscovery()
    disc.set_member("web", a.member())
    disc.set_member("web", b.member(weight=2))
    first = Front(tmp_path / "first", "lua")
    try:
        with UpstreamSync(disc, first.api, ["web"], dump_dir=tmp_path / "dump") as sync:
            eventually(lambda: sync.status()["web"].members == 2, what="the members applied")
    finally:
        first.close()
    disc.go_away()
    second = Front(tmp_path / "second", "lua")  # a fresh nginx: its members live only in memory
    try:
        with UpstreamSync(disc, second.api, ["web"], dump_dir=tmp_path / "dump") as sync:
            eventually(lambda: sync.status()["web"].members == 2, what="the dumped members applied")
            assert "connection refused" in sync.status()["web"].error
            assert near(second.labels("web", 12), {"a": 4, "b": 8})
    finally:
        second.close()


@pytest.mark.integration
def test_sync_ignores_a_damaged_dump_in_one_line_and_leaves_nginx_as_it_is(tmp_path, lua_front, backends, caplog):
    (a,) = backends("a")
    lua_front.api.set_members("web", [a.member()])
    (tmp_path / "dump").mkdir()
    (tmp_path / "dump" / "web.json").write_text('{"service": "web", "members": {"nohost": {}}}')
    disc = MemDiscovery()
    disc.go_away()
    with caplog.at_level("INFO", logger="cockpit.upstream_sync"):
        with UpstreamSync(disc, lua_front.api, ["web"], dump_dir=tmp_path / "dump") as sync:
            eventually(lambda: sync.status()["web"].error is not None, what="the error reported")
            time.sleep(0.5)
            assert sync.status()["web"][:1] == (0,)
    dump_lines = [r.getMessage() for r in caplog.records if "dump" in r.getMessage()]
    assert len(dump_lines) == 1 and "web.json is unusable" in dump_lines[0] and "nohost" in dump_lines[0]
    assert lua_front.labels("web", 3) == {"a": 3}


@pytest.mark.integration
def test_sync_refills_a_front_that_restarted_empty(lua_front, backends):
    (a,) = backends("a")
    disc = MemDiscovery()
    disc.set_member("web", a.member())
    with UpstreamSync(disc, lua_front.api, ["web"], resync_s=0.3, max_backoff_s=0.5) as sync:
        eventually(lambda: lua_front.get("/web/").text == "a", what="a served")
        lua_front.stop_nginx()
        eventually(lambda: sync.status()["web"].error is not None, what="the front's error reported")
        assert "nginx:" in sync.status()["web"].error
        lua_front.start()
        eventually(lambda: lua_front.get("/web/").text == "a", timeout_s=8, what="a served after the restart")


@pytest.mark.integration
def test_sync_a_member_set_in_real_etcd_reaches_nginx(tmp_path, lua_front, backends):
    from cockpit.backends.discovery_etcd import EtcdDiscovery

    (a,) = backends("a")
    etcd = procs.start_etcd(tmp_path / "etcd")
    disc = EtcdDiscovery(etcd.url, prefix="/front-test")
    try:
        with UpstreamSync(disc, lua_front.api, ["web"]) as sync:
            eventually(lambda: sync.status()["web"].applied_at is not None, what="the first list applied")
            t0 = time.monotonic()
            disc.set_member("web", a.member(weight=5))
            took = eventually(lambda: lua_front.get("/web/").text == "a", what="a served") - t0
            assert took < 1.0
            assert lua_front.api.members("web") == [a.member(weight=5)]
    finally:
        disc.close()
        etcd.stop()
