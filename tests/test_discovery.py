"""Service discovery: one contract suite run against both backends (a real etcd started here;
Consul through py-consul against tests/consul_double.py, since no Consul server can be installed),
the Consul-only token handling, opening a store from the config, the Consul double's own
faithfulness, and the caller's view of an RPC service (property tests)."""

from __future__ import annotations

import json
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from cockpit.backends.discovery import Discovery, DiscoveryError, Member, RpcInstance
from cockpit.backends.discovery_consul import ConsulDiscovery
from cockpit.backends.discovery_etcd import EtcdDiscovery
from cockpit.backends.discovery_open import open_discovery
from cockpit.core.discovery import caller_view, failover_order
from cockpit.lab import procs
from tests.consul_double import ConsulDouble
from tests.etcd import etcd_server, raw_keys  # noqa: F401 (fixture)

TTL_S = 2.0  # locks' TTL in these tests: etcd's shortest lease
FAST_SESSIONS = 0.5  # the double's session_ttl_min_s: a Consul configured with session_ttl_min = "500ms"


@dataclass
class Backend:
    """A Discovery under test and a way to read its raw keys (what nginx-upsync-module reads)."""

    kind: str
    d: Discovery
    root: str  # where `upstreams/` starts in the raw key space
    raw: Callable[[str], dict[str, str]]


@pytest.fixture(params=[pytest.param("etcd", marks=pytest.mark.integration), "consul"])
def backend(request) -> Iterator[Backend]:
    if request.param == "etcd":
        etcd = request.getfixturevalue("etcd_server")
        prefix = f"/t{uuid.uuid4().hex[:8]}"  # one etcd per module: each test its own prefix
        d = EtcdDiscovery(etcd.url, prefix=prefix)
        yield Backend("etcd", d, f"{prefix}/", lambda p: raw_keys(etcd.url, p))
    else:
        double = ConsulDouble(session_ttl_min_s=FAST_SESSIONS).start()
        d = ConsulDiscovery(double.url)

        def raw(p: str) -> dict[str, str]:
            return {k: (v or b"").decode() for k, v in double.keys(p).items()}

        yield Backend("consul", d, "", raw)
        double.stop()
    d.close()


def wait_until(check: Callable[[], bool], timeout_s: float, what: str, every_s: float = 0.05) -> float:
    """Seconds until `check` held; fails the test naming `what` after `timeout_s`."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout_s:
        if check():
            return time.monotonic() - t0
        time.sleep(every_s)
    pytest.fail(f"{what}: not within {timeout_s:g} s")


# --- upstream members ------------------------------------------------------------------------------


def test_members_are_kept_in_nginx_upsync_layout(backend):
    d = backend.d
    a, b = Member("10.0.0.1", 8080, weight=3), Member("10.0.0.2", 8080, backup=True)
    d.set_member("web", a)
    d.set_member("web", b)
    d.set_member("api", Member("10.0.9.9", 9000))
    d.set_member("web", Member("10.0.0.1", 8080, weight=5, down=True))  # an update in place
    got = d.members("web")
    assert got.service == "web" and got.index > 0
    assert got.members == (Member("10.0.0.1", 8080, weight=5, down=True), b)

    raw = backend.raw(f"{backend.root}upstreams/")
    assert sorted(raw) == [f"{backend.root}upstreams/api/10.0.9.9:9000", f"{backend.root}upstreams/web/10.0.0.1:8080",
                           f"{backend.root}upstreams/web/10.0.0.2:8080"]
    # the values nginx-upsync-module parses: its parameters, down and backup as 0/1
    assert json.loads(raw[f"{backend.root}upstreams/web/10.0.0.1:8080"]) == {
        "weight": 5, "max_fails": 2, "fail_timeout": 10, "down": 1, "backup": 0}

    d.remove_member("web", "10.0.0.1", 8080)
    d.remove_member("web", "10.0.0.1", 8080)  # gone already: done
    d.remove_member("nothing", "10.0.0.7", 80)
    assert d.members("web").members == (b,)
    assert d.members("nothing").members == ()
    assert d.members("web").index > got.index


def test_wait_members_returns_promptly_on_a_change(backend):
    d = backend.d
    d.set_member("web", Member("10.0.0.1", 80))
    before = d.members("web")
    threading.Timer(0.3, d.set_member, ("web", Member("10.0.0.2", 80))).start()
    t0 = time.monotonic()
    after = d.wait_members("web", before.index, 10.0)
    took = time.monotonic() - t0
    assert 0.2 < took < 2.0, took
    assert [m.address for m in after.members] == ["10.0.0.1", "10.0.0.2"]
    assert after.index > before.index
    # a change that happened before the wait began is seen at once
    d.remove_member("web", "10.0.0.1", 80)
    t0 = time.monotonic()
    assert [m.address for m in d.wait_members("web", after.index, 10.0).members] == ["10.0.0.2"]
    assert time.monotonic() - t0 < 1.0


def test_wait_members_returns_after_wait_s_without_a_change_to_its_service(backend):
    d = backend.d
    d.set_member("web", Member("10.0.0.1", 80))
    before = d.members("web")
    # changes to another service do not end the wait
    threading.Timer(0.2, d.set_member, ("api", Member("10.0.5.5", 80))).start()
    t0 = time.monotonic()
    after = d.wait_members("web", before.index, 1.0)
    took = time.monotonic() - t0
    assert 0.85 < took < 2.5, took
    assert after.members == before.members
    t0 = time.monotonic()
    assert d.wait_members("web", 0, 5.0).members == before.members  # index 0: no waiting
    assert time.monotonic() - t0 < 0.5


@pytest.mark.integration
def test_etcd_wait_resynchronises_after_a_compaction_or_a_restore(etcd_server):
    d = EtcdDiscovery(etcd_server.url, prefix=f"/t{uuid.uuid4().hex[:8]}")
    d.set_member("web", Member("10.0.0.1", 80))
    old = d.members("web")
    d.set_member("web", Member("10.0.0.2", 80))
    now = d.members("web")
    d.call("/v3/kv/compaction", {"revision": str(now.index)})
    t0 = time.monotonic()
    assert d.wait_members("web", old.index - 1, 5.0) == now  # its history is gone: the members as they are
    assert d.wait_members("web", now.index + 1000, 5.0) == now  # an index from another store's past
    assert time.monotonic() - t0 < 1.0
    d.close()


# --- RPC instances ----------------------------------------------------------------------------------


def test_rpc_instances_register_deregister_and_list_with_idc_and_tags(backend):
    d = backend.d
    a1 = RpcInstance("orders", "idc-a", "orders-0-1", "10.1.0.1", 9000, ("v2", "grpc"), True, {"build": "41"})
    a2 = RpcInstance("orders", "idc-a", "orders-0-2", "10.1.0.2", 9000, (), False)
    b1 = RpcInstance("orders", "idc-b", "orders-0-3", "10.2.0.1", 9000, ("v2",), True)
    for inst in (a1, a2, b1, RpcInstance("billing", "idc-a", "billing-0-1", "10.1.0.9", 7000)):
        d.register(inst)
    got = d.instances("orders")
    assert got == [a1, a2, b1]
    assert got[0].meta == {"build": "41"} and got[0].tags == ("v2", "grpc")

    # registering again replaces: the instance got healthy and lost a tag
    a2_up = RpcInstance("orders", "idc-a", "orders-0-2", "10.1.0.2", 9000, ("v2",), True)
    d.register(a2_up)
    d.deregister("orders", "orders-0-3")
    d.deregister("orders", "orders-0-3")  # gone already: done
    d.deregister("orders", "never-there")
    assert d.instances("orders") == [a1, a2_up]
    assert d.instances("nothing") == []
    assert [i.id for i in d.instances("billing")] == ["billing-0-1"]


def test_a_caller_fails_over_when_its_idc_has_no_healthy_instance(backend):
    d = backend.d
    d.register(RpcInstance("orders", "idc-a", "orders-0-1", "10.1.0.1", 9000, (), False))
    d.register(RpcInstance("orders", "idc-b", "orders-0-2", "10.2.0.1", 9000, (), True))
    d.register(RpcInstance("orders", "idc-c", "orders-0-3", "10.3.0.1", 9000, (), True))
    view = caller_view(d.instances("orders"), "idc-a", preference=["idc-c"])
    assert (view.idc, view.failed_over, [i.id for i in view.instances]) == ("idc-c", True, ["orders-0-3"])
    assert "failed over to 1 healthy instance in idc-c" in view.describe("orders")
    d.register(RpcInstance("orders", "idc-a", "orders-0-1", "10.1.0.1", 9000, (), True))
    view = caller_view(d.instances("orders"), "idc-a", preference=["idc-c"])
    assert (view.idc, view.failed_over) == ("idc-a", False)


def test_names_that_would_break_the_key_layout_are_refused(backend):
    d = backend.d
    with pytest.raises(ValueError, match="service 'a/b'"):
        d.set_member("a/b", Member("10.0.0.1", 80))
    with pytest.raises(ValueError, match="address"):
        d.set_member("web", Member("10.0.0.1/24", 80))
    with pytest.raises(ValueError, match="IDC"):
        d.register(RpcInstance("orders", "../x", "o-1", "10.0.0.1", 80))
    for bad in ("a/../b", "/a", "a//b", "a b"):
        with pytest.raises(ValueError, match="lock"):
            d.lock(bad, "me", TTL_S)
    assert backend.raw(backend.root) == {}


# --- locks ---------------------------------------------------------------------------------------


def test_a_lock_held_by_one_is_refused_to_another_until_released(backend):
    d = backend.d
    a, b = d.lock("scheduler", "engine-a", TTL_S), d.lock("scheduler", "engine-b", TTL_S)
    assert d.lock_holder("scheduler") is None
    other = d.lock("scheduler/idc-a", "engine-b", TTL_S)  # the managers' names: another lock
    assert other.acquire() and d.lock_holder("scheduler/idc-a") == "engine-b"
    assert a.acquire()
    assert not b.acquire()
    assert a.acquire()  # ours already
    assert a.renew() and not b.renew()
    assert d.lock_holder("scheduler") == "engine-a"
    a.release()
    assert d.lock_holder("scheduler") is None
    assert b.acquire()  # at once: a release starts no lock-delay
    assert d.lock_holder("scheduler") == "engine-b"
    assert not a.renew()
    b.release()
    b.release()  # twice: done


def test_a_lock_is_taken_over_once_its_holder_stops_renewing(backend):
    d = backend.d
    a, b = d.lock("scheduler", "engine-a", TTL_S), d.lock("scheduler", "engine-b", TTL_S)
    assert a.acquire()
    # renewing keeps it, well past its TTL
    t0 = last = time.monotonic()
    while time.monotonic() - t0 < TTL_S + 0.5:
        assert a.renew()
        last = time.monotonic()
        assert not b.acquire()
        time.sleep(TTL_S / 4)
    wait_until(b.acquire, 3 * TTL_S, "the other holder takes the lock", every_s=0.1)
    took = time.monotonic() - last
    assert took > 0.9 * TTL_S, f"taken {took:.2f} s after the last renewal: before its TTL"
    assert d.lock_holder("scheduler") == "engine-b"
    assert not a.renew()
    b.release()


# --- a store that is down ------------------------------------------------------------------------


def _calls(d: Discovery) -> list[Callable[[], object]]:
    return [lambda: d.members("web"), lambda: d.set_member("web", Member("10.0.0.1", 80)),
            lambda: d.instances("orders"), lambda: d.lock("x", "me", TTL_S).acquire(),
            lambda: d.wait_members("web", 5, 3.0), d.ping]


@pytest.mark.parametrize("kind", [pytest.param("etcd", marks=pytest.mark.integration), "consul"])
def test_a_stopped_store_gives_a_transient_error_at_once(kind, tmp_path):
    if kind == "etcd":
        etcd = procs.start_etcd(tmp_path / "etcd")
        url, d = etcd.url, EtcdDiscovery(etcd.url)
        d.set_member("web", Member("10.0.0.1", 80))
        etcd.stop()
    else:
        double = ConsulDouble().start()
        url, d = double.url, ConsulDiscovery(double.url)
        d.set_member("web", Member("10.0.0.1", 80))
        double.stop()
    for call in _calls(d):
        t0 = time.monotonic()
        with pytest.raises(DiscoveryError) as e:
            call()
        assert time.monotonic() - t0 < 1.0
        assert e.value.transient
        assert str(e.value).startswith(f"{kind} at {url}: ") and "\n" not in str(e.value)
    d.close()


@pytest.mark.parametrize("kind", ["etcd", "consul"])
def test_a_store_that_never_answers_times_out_as_transient(kind):
    with socket.socket() as s:  # accepts connections (the kernel's backlog) and never answers
        s.bind(("127.0.0.1", 0))
        s.listen(16)
        url = f"http://127.0.0.1:{s.getsockname()[1]}"
        d = EtcdDiscovery(url, timeout_s=0.3) if kind == "etcd" else ConsulDiscovery(url, timeout_s=0.3)
        for call in (lambda: d.members("web"), lambda: d.register(RpcInstance("o", "a", "o-1", "10.0.0.1", 80))):
            t0 = time.monotonic()
            with pytest.raises(DiscoveryError, match="no answer within 0.3 s") as e:
                call()
            assert e.value.transient and time.monotonic() - t0 < 1.5
        d.close()


@pytest.mark.integration
def test_an_etcd_refusal_is_not_transient(etcd_server):
    d = EtcdDiscovery(etcd_server.url)
    with pytest.raises(DiscoveryError, match=r"/v3/kv/put: 400 ") as e:
        d.call("/v3/kv/put", {"key": 5})
    assert not e.value.transient
    with pytest.raises(DiscoveryError, match="requested lease not found") as e:
        d.call("/v3/kv/put", {"key": "eA==", "value": "", "lease": "12345"})
    assert not e.value.transient
    d.close()


# --- Consul: the token, and what a stock Consul refuses ----------------------------------------------


def test_consul_token_reaches_the_agent_and_the_config_choice_wins(monkeypatch):
    monkeypatch.setenv("CONSUL_HTTP_TOKEN", "from-the-default-variable")  # py-consul would prefer it
    monkeypatch.setenv("COCKPIT_CONSUL_TOKEN", "s3cret-t0ken")
    with ConsulDouble(token="s3cret-t0ken", session_ttl_min_s=FAST_SESSIONS) as double:
        d = open_discovery({"kind": "consul", "url": double.url, "token_env": "COCKPIT_CONSUL_TOKEN"})
        d.set_member("web", Member("10.0.0.1", 80))
        d.register(RpcInstance("orders", "idc-a", "orders-0-1", "10.1.0.1", 9000))
        lock = d.lock("scheduler", "engine-a", TTL_S)
        assert lock.acquire()
        lock.release()
        assert [m.address for m in d.members("web").members] == ["10.0.0.1"]
        assert len(double.requests) >= 6
        assert {token for _, _, token in double.requests} == {"s3cret-t0ken"}
        assert "s3cret" not in repr(d)
        d.close()


def test_consul_wrong_token_is_refused_with_a_clear_error(monkeypatch):
    monkeypatch.setenv("COCKPIT_CONSUL_TOKEN", "not-the-token")
    with ConsulDouble(token="s3cret-t0ken") as double:
        d = open_discovery({"kind": "consul", "url": double.url, "token_env": "COCKPIT_CONSUL_TOKEN"})
        with pytest.raises(DiscoveryError) as e:
            d.set_member("web", Member("10.0.0.1", 80))
        assert str(e.value) == (f"consul at {double.url}: PUT upstreams/web/10.0.0.1:80: refused: ACL not found "
                                "(the token in $COCKPIT_CONSUL_TOKEN)")
        assert not e.value.transient
        monkeypatch.delenv("CONSUL_HTTP_TOKEN", raising=False)
        anonymous = open_discovery({"kind": "consul", "url": double.url})
        with pytest.raises(DiscoveryError, match="refused: Permission denied"):
            anonymous.members("web")
        assert double.keys() == {}
        d.close()
        anonymous.close()


def test_consul_instances_on_a_failed_agent_node_are_unhealthy_and_its_locks_released():
    with ConsulDouble(session_ttl_min_s=FAST_SESSIONS) as double:
        d = ConsulDiscovery(double.url)
        d.register(RpcInstance("orders", "idc-a", "orders-0-1", "10.1.0.1", 9000))
        lock = d.lock("scheduler", "engine-a", TTL_S)
        assert lock.acquire()
        double.set_check("serfHealth", "critical")  # the agent's node failed
        assert [i.healthy for i in d.instances("orders")] == [False]
        assert d.lock_holder("scheduler") is None and not lock.renew()
        d.close()


def test_a_lock_ttl_a_stock_consul_refuses_is_a_clear_error():
    with ConsulDouble() as double:  # session_ttl_min 10 s, as Consul's servers by default
        d = ConsulDiscovery(double.url)
        with pytest.raises(DiscoveryError, match="Invalid Session TTL.*lower session_ttl_min or raise ttl_s") as e:
            d.lock("scheduler", "engine-a", TTL_S).acquire()
        assert not e.value.transient
        assert d.lock("scheduler", "engine-a", 30.0).acquire()  # a third of it: 10 s
        d.close()


# --- opening a store from the config --------------------------------------------------------------


@pytest.mark.parametrize("settings, names", [
    ({"kind": "zookeeper"}, "discovery.kind"),
    ({"kind": "sim"}, "discovery.kind"),
    ({"kind": "etcd", "url": "http://203.0.113.5:2379"}, "discovery.url"),
    ({"kind": "etcd", "url": "http://etcd.example.com:2379"}, "discovery.url"),
    ({"kind": "etcd", "url": "https://u:p@etcd.example.com"}, "discovery.url"),
    ({"kind": "etcd", "url": "http://127.0.0.1:2379/v3"}, "discovery.url"),
    ({"kind": "etcd", "url": "ftp://127.0.0.1"}, "discovery.url"),
    ({"kind": "etcd", "url": "http://127.0.0.1:99999"}, "discovery.url"),
    ({"kind": "etcd", "prefix": "cockpit"}, "discovery.prefix"),
    ({"kind": "etcd", "prefix": "/a/../b"}, "discovery.prefix"),
    ({"kind": "etcd", "timeout_s": 0}, "discovery.timeout_s"),
    ({"kind": "etcd", "timeout_s": "3"}, "discovery.timeout_s"),
    ({"kind": "etcd", "token_env": "X"}, "discovery.token_env"),
    ({"kind": "consul", "prefix": "/x"}, "discovery.prefix"),
    ({"kind": "consul", "token_env": "NOT SET"}, "discovery.token_env"),
    ({"kind": "consul", "token_env": "COCKPIT_TEST_UNSET_TOKEN"}, "discovery.token_env"),
])
def test_bad_discovery_settings_are_refused_naming_the_setting(settings, names, monkeypatch):
    monkeypatch.delenv("COCKPIT_TEST_UNSET_TOKEN", raising=False)
    with pytest.raises(ValueError) as e:
        open_discovery(settings)
    assert str(e.value).startswith(names + ":") and "\n" not in str(e.value)
    assert "u:p" not in str(e.value)


def test_good_discovery_settings_open_each_kind(monkeypatch):
    monkeypatch.delenv("CONSUL_HTTP_TOKEN", raising=False)
    e = open_discovery({"kind": "etcd", "url": "http://10.1.2.3:2379", "prefix": "/dcp/prod", "timeout_s": 2})
    assert isinstance(e, EtcdDiscovery) and (e.url, e.prefix, e.timeout_s) == ("http://10.1.2.3:2379", "/dcp/prod", 2)
    c = open_discovery({"kind": "consul", "url": "https://consul.example.com:8501"})
    assert isinstance(c, ConsulDiscovery) and c.url == "https://consul.example.com:8501"
    for ok in ("http://192.168.1.10:8500", "http://172.20.0.5:8500", "http://localhost:8500", "http://[::1]:8500"):
        open_discovery({"kind": "consul", "url": ok}).close()
    e.close()
    c.close()


# --- the Consul double refuses what Consul refuses --------------------------------------------------


def test_the_consul_double_refuses_a_wrong_client():
    with ConsulDouble(session_ttl_min_s=FAST_SESSIONS) as double:
        http = httpx.Client(base_url=double.url, timeout=3, trust_env=False)
        assert http.get("/v1/kv/").status_code == 400  # a key is needed without ?recurse
        assert http.get("/v1/nothing/here").status_code == 404
        assert http.post("/v1/kv/a").status_code == 405
        assert http.put("/v1/kv/a?cas=0&acquire=x").status_code == 400
        assert http.put("/v1/session/create", content=b"{not json").status_code == 400
        assert http.put("/v1/session/create", json={"TTL_S": "10s"}).status_code == 400
        assert http.put("/v1/agent/service/register", json={"Port": 80}).status_code == 400
        http_check = {"Name": "w", "Check": {"HTTP": "http://127.0.0.1:1/", "Interval": "10s"}}
        assert http.put("/v1/agent/service/register", json=http_check).status_code == 400  # the double runs TTLs
        assert http.put("/v1/kv/a?acquire=no-such-session").status_code == 500
        assert http.put("/v1/kv/a", content=b"x" * (512 * 1024 + 1)).status_code == 413
        assert http.get("/v1/kv/a?index=x").status_code == 400
        assert http.put("/v1/agent/service/deregister/nope").status_code == 404
        assert http.get("/v1/kv/a?dc=elsewhere").status_code == 500
        http.close()


def test_the_consul_double_blocks_on_an_index_and_invalidates_lapsed_sessions():
    with ConsulDouble(session_ttl_min_s=FAST_SESSIONS) as double:
        http = httpx.Client(base_url=double.url, timeout=5, trust_env=False)
        assert http.put("/v1/kv/svc/a", content=b"1").json() is True
        r = http.get("/v1/kv/svc/?recurse")
        index = int(r.headers["X-Consul-Index"])
        t0 = time.monotonic()
        r = http.get(f"/v1/kv/svc/?recurse&index={index}&wait=300ms")
        assert 0.25 < time.monotonic() - t0 < 0.6 and int(r.headers["X-Consul-Index"]) == index
        threading.Timer(0.2, lambda: httpx.put(f"{double.url}/v1/kv/svc/b", content=b"2", trust_env=False)).start()
        r = http.get(f"/v1/kv/svc/?recurse&index={index}&wait=5s")
        assert int(r.headers["X-Consul-Index"]) > index and len(r.json()) == 2
        ephemeral = {"TTL": "500ms", "LockDelay": "0s", "Behavior": "delete"}
        sid = http.put("/v1/session/create", json=ephemeral).json()["ID"]
        assert http.put(f"/v1/kv/lock?acquire={sid}", content=b"me").json() is True
        assert http.put("/v1/kv/lock?acquire=" + http.put("/v1/session/create").json()["ID"]).json() is False
        wait_until(lambda: http.get("/v1/kv/lock").status_code == 404, 3.0, "behavior delete removes the key")
        assert http.put(f"/v1/session/renew/{sid}").status_code == 404
        http.close()


# --- the caller's view (pure) -----------------------------------------------------------------------


@dataclass(frozen=True)
class Inst:
    idc: str
    id: str
    healthy: bool


IDCS = st.sampled_from(["idc-a", "idc-b", "idc-c", "idc-d"])
INSTANCES = st.lists(st.builds(Inst, IDCS, st.text("abcdef0123", min_size=1, max_size=6), st.booleans()),
                     max_size=12, unique_by=lambda i: i.id)


@given(INSTANCES, IDCS, st.lists(IDCS, max_size=4))
def test_the_callers_view_answers_from_the_first_idc_in_order_with_a_healthy_instance(instances, own, pref):
    view = caller_view(instances, own, pref)
    healthy_idcs = {i.idc for i in instances if i.healthy}
    if own in healthy_idcs:  # its own IDC answers whenever it can
        assert view.idc == own and not view.failed_over
    if not healthy_idcs:
        assert view.idc is None and view.instances == () and not view.failed_over
        return
    assert view.idc == next(idc for idc in view.order if idc in healthy_idcs)
    assert view.failed_over == (view.idc != own)
    # every healthy instance of that IDC, nothing else, in id order
    assert list(view.instances) == sorted((i for i in instances if i.healthy and i.idc == view.idc), key=lambda i: i.id)
    assert caller_view(list(reversed(instances)), own, pref) == view  # the order given does not matter


@given(IDCS, st.sets(IDCS), st.lists(IDCS, max_size=6))
def test_failover_order_is_own_idc_then_preferences_then_the_rest_by_name(own, idcs, pref):
    order = failover_order(own, idcs, pref)
    assert order[0] == own
    assert len(order) == len(set(order)) and set(order) == {own} | set(idcs) | set(pref)
    listed = [i for i in dict.fromkeys(pref) if i != own]
    assert list(order[1:1 + len(listed)]) == listed
    assert list(order[1 + len(listed):]) == sorted(set(idcs) - {own} - set(pref))
