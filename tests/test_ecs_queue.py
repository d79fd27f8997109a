"""The ECS order queue against the simulated cloud: batches, limits, fallbacks, back-off, stops."""

from __future__ import annotations

import random
import threading
import time

import pytest

from cockpit.backends.base import CloudError, RunRequest
from cockpit.backends.sim.cloud import Fault, SimCloud, SimCloudModel
from cockpit.core.ecs_queue import Kind, Option, backoff, classify, next_option, options
from cockpit.engine.ecs import DrainSettings, EcsDrainer
from cockpit.engine.orders import OrderError, place_order
from cockpit.store.db import open_store
from cockpit.store.models import EcsCallRow, EcsOrderRow, EventRow, HostRow

# --- the policy ---------------------------------------------------------------------------


@pytest.mark.parametrize("code, kind", [
    ("OperationDenied.NoStock", Kind.ZONE), ("Zone.NotOnSale", Kind.ZONE), ("InstanceType.Offline", Kind.ZONE),
    ("SecurityGroupInstanceLimitExceed", Kind.SECURITY_GROUP), ("QuotaExceeded.PrivateIpAddress", Kind.VSWITCH),
    ("InvalidVSwitchId.IpNotEnough", Kind.VSWITCH), ("QuotaExceed.ElasticQuota", Kind.QUOTA),
    ("Throttling.User", Kind.THROTTLE), ("Throttling", Kind.THROTTLE), ("InternalError", Kind.TRANSIENT),
    ("Account.Arrearage", Kind.MONEY), ("InsufficientBalance", Kind.MONEY), ("InvalidImageId.NotFound", Kind.FATAL),
])
def test_error_codes_are_classified_by_family(code, kind):
    assert classify(code) is kind


def test_a_5xx_without_a_known_code_is_transient():
    assert classify("Whatever", 503) is Kind.TRANSIENT


def test_options_follow_the_template_order_within_each_zone():
    zone_of = {"h": ({"sg1", "sg2"}, {"v1", "v2"}), "i": ({"sg3"}, {"v3"})}
    opts = options(["h", "i"], ["v1", "v2", "v3"], ["sg1", "sg2", "sg3"], zone_of)
    assert [str(o) for o in opts] == ["h/v1/sg1", "h/v1/sg2", "h/v2/sg1", "h/v2/sg2", "i/v3/sg3"]
    assert next_option(opts, 0, Kind.ZONE) == 4  # the whole zone is skipped
    assert next_option(opts, 0, Kind.SECURITY_GROUP) == 1
    assert next_option(opts, 0, Kind.VSWITCH) == 2
    assert next_option(opts, 4, Kind.ZONE) is None


def test_backoff_doubles_with_jitter_and_a_cap():
    rng = random.Random(1)
    waits = [backoff(a, rng) for a in range(1, 12)]
    assert all(0.25 <= w <= 30.25 for w in waits)
    assert max(waits[:2]) < 1.3


# --- the drainer --------------------------------------------------------------------------


@pytest.fixture
def store(demo_db, demo_world):
    db = open_store(demo_db)
    return db, demo_world


def make_cloud(world, **kw) -> tuple[SimCloud, SimCloudModel]:
    m = SimCloudModel.from_world(world, **kw)
    return SimCloud(m), m


def drain(db, world, cloud, oid, settings=DrainSettings(), timeout=30):
    d = EcsDrainer(db, cloud, world, settings)
    deadline = time.time() + timeout
    d.drain(until=lambda: EcsOrderRow.get_by_id(oid).state not in ("queued", "running") or time.time() > deadline)
    return EcsOrderRow.get_by_id(oid)


def test_an_order_is_drained_in_batches_and_falls_over_when_a_zone_runs_out(store):
    db, w = store
    cloud, m = make_cloud(w)  # the demo's first zone has 40 ecs.c6.4xlarge left
    oid = place_order(w, w.template(101), 130, None, "sre", 0.0)
    o = drain(db, w, cloud, oid)
    assert (o.state, o.created) == ("done", 130)
    calls = list(EcsCallRow.select().where(EcsCallRow.order == oid))
    assert max(c.amount for c in calls) <= 20
    assert [f["code"] for f in o.fallbacks] == ["OperationDenied.NoStock"]
    assert o.fallbacks[0]["from"].startswith("cn-beijing-h/") and o.fallbacks[0]["to"].startswith("cn-beijing-i/")
    hosts = list(HostRow.select().where(HostRow.order == oid))
    assert len(hosts) == 130 == len({h.instance_id for h in hosts}) == len(m.instances) - 100
    assert {h.zone for h in hosts} == {"cn-beijing-h", "cn-beijing-i"}
    assert all(h.status == "pending" and h.pool == "feed-web" and h.labels["role"] == "web" for h in hosts)
    assert EventRow.select().where(EventRow.message.contains("refused (OperationDenied.NoStock)")).count() == 1


def test_calls_in_flight_stay_within_the_limit(store):
    db, w = store
    cloud, m = make_cloud(w, latency_s=0.05, max_in_flight=3)
    oid = place_order(w, w.template(102), 100, None, "sre", 0.0)
    o = drain(db, w, cloud, oid, DrainSettings(batch=10, max_in_flight=3))
    assert o.state == "done" and o.created == 100
    assert EcsCallRow.select().where(EcsCallRow.error_code.startswith("Throttling")).count() == 0


def test_throttling_backs_off_and_retries_with_the_same_token(store):
    db, w = store
    cloud, m = make_cloud(w, faults=[Fault("RunInstances", "Throttling.User", 400, 2)])
    oid = place_order(w, w.template(103), 10, None, "sre", 0.0)
    o = drain(db, w, cloud, oid)
    assert o.state == "done" and o.created == 10
    (call,) = EcsCallRow.select().where(EcsCallRow.order == oid)
    assert call.attempts == 3 and call.error_code == "Throttling.User" and call.state == "ok"


def test_quota_and_security_group_errors_move_on_and_are_recorded(store):
    db, w = store
    cloud, m = make_cloud(w, faults=[Fault("RunInstances", "SecurityGroupInstanceLimitExceed", 403, 1)])
    m.zones["cn-beijing-h"].stock.clear()
    oid = place_order(w, w.template(101), 5, None, "sre", 0.0)
    o = drain(db, w, cloud, oid)
    assert o.state == "done"
    (f,) = o.fallbacks
    assert f["code"] == "SecurityGroupInstanceLimitExceed"
    assert f["from"].split("/")[2] != f["to"].split("/")[2]  # another security group


def test_money_errors_stop_the_order_and_say_why(store):
    db, w = store
    cloud, _ = make_cloud(w, faults=[Fault("RunInstances", "Account.Arrearage", 403, 1)])
    oid = place_order(w, w.template(103), 10, None, "sre", 0.0)
    o = drain(db, w, cloud, oid)
    assert o.state == "failed" and "the account needs a person: Account.Arrearage" in o.reason


def test_when_every_option_is_exhausted_the_order_stops_with_each_one_named(store):
    db, w = store
    cloud, m = make_cloud(w)
    for z in m.zones.values():
        z.stock["ecs.c6.4xlarge"] = 0
    oid = place_order(w, w.template(101), 10, None, "sre", 0.0)
    o = drain(db, w, cloud, oid)
    assert o.state == "failed" and o.created == 0
    assert "every zone, security group and vSwitch was tried" in o.reason
    for zone in ("cn-beijing-h", "cn-beijing-i", "cn-beijing-j"):
        assert zone in o.reason


def test_a_paused_order_waits_and_a_resumed_one_finishes(store):
    db, w = store
    cloud, _ = make_cloud(w, latency_s=0.05)
    oid = place_order(w, w.template(103), 200, None, "sre", 0.0)
    d = EcsDrainer(db, cloud, w, DrainSettings(batch=20, max_in_flight=2))
    t = threading.Thread(target=d.drain, kwargs={"until": lambda: EcsOrderRow.get_by_id(oid).state == "done"})
    t.start()
    while EcsOrderRow.get_by_id(oid).created == 0:
        time.sleep(0.01)
    EcsOrderRow.update(state="paused").where(EcsOrderRow.id == oid).execute()
    time.sleep(0.3)
    held = EcsOrderRow.get_by_id(oid).created
    time.sleep(0.3)
    assert EcsOrderRow.get_by_id(oid).created == held < 200  # nothing new started while paused
    EcsOrderRow.update(state="running").where(EcsOrderRow.id == oid).execute()
    d.kick()
    t.join(timeout=30)
    assert EcsOrderRow.get_by_id(oid).created == 200


def test_a_cancelled_order_keeps_the_hosts_it_made_and_a_retried_one_goes_on(session):
    c = session.cockpit
    w = session.world
    cloud, m = make_cloud(w)
    for z in m.zones.values():
        z.stock["ecs.c6.4xlarge"] = 0
    assert c.order_hosts(101, 30).ok
    o = drain(session.db, w, cloud, 1)
    assert o.state == "failed"
    m.zones["cn-beijing-j"].stock["ecs.c6.4xlarge"] = 1000  # stock came back
    assert c.retry_order(1).ok
    o = drain(session.db, w, cloud, 1)
    assert (o.state, o.created, o.option) == ("done", 30, len(o.options) - 1)
    assert not c.pause_order(1).ok  # a done order cannot be paused
    assert c.order_hosts(101, 20).ok
    assert c.cancel_order(2).ok
    assert drain(session.db, w, cloud, 2).state == "cancelled"


def test_a_template_without_ecs_settings_cannot_be_ordered(demo_world):
    with pytest.raises(OrderError, match="no ECS settings"):
        place_order(demo_world, demo_world.template(105), 5, None, "sre", 0.0)


def test_a_call_left_in_flight_is_made_again_with_its_token(store):
    """What a restart after a crash does: the cloud made the instances, the store never heard."""
    db, w = store
    cloud, m = make_cloud(w)
    oid = place_order(w, w.template(103), 20, None, "sre", 0.0)
    o = EcsOrderRow.get_by_id(oid)
    d = EcsDrainer(db, cloud, w)
    (call,) = d._reserve(1)
    made = cloud.run_instances(call.req)  # the call went out; the drainer died before recording it
    assert EcsCallRow.get_by_id(call.id).state == "in_flight"
    o = drain(db, w, cloud, oid)
    assert o.created == 20
    assert {h.instance_id for h in HostRow.select().where(HostRow.order == oid)} == set(made.instance_ids)
    assert len(m.instances) == 100 + 20  # nothing made twice


def test_unexpected_transport_errors_are_retried_as_transient(store):
    db, w = store

    class Flaky(SimCloud):
        calls = 0

        def run_instances(self, req: RunRequest):
            Flaky.calls += 1
            if Flaky.calls == 1:
                raise ConnectionResetError("peer reset")
            return super().run_instances(req)

    m = SimCloudModel.from_world(w)
    oid = place_order(w, w.template(103), 5, None, "sre", 0.0)
    o = drain(db, w, Flaky(m), oid)
    assert o.state == "done" and o.created == 5


def test_cloud_errors_carry_code_status_and_request(store):
    _, w = store
    cloud, m = make_cloud(w)
    with pytest.raises(CloudError) as e:
        cloud.run_instances(RunRequest("cn-beijing", "nowhere", "v", "s", "ecs.c6.4xlarge", "m", 1, 1, "t"))
    assert (e.value.code, e.value.http_status) == ("InvalidZoneId.NotFound", 404) and e.value.request_id
    assert Option("a", "b", "c").zone == "a"
