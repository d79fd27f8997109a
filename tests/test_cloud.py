"""One contract, two clouds: the in-process simulated cloud, and the real Aliyun SDK backend talking
to the simulated cloud's HTTP face on loopback. Both must answer as ECS does."""

from __future__ import annotations

import threading

import pytest

from cockpit.backends.aliyun import AliyunCloud, Credentials, CredentialsError
from cockpit.backends.base import CloudError, RunRequest
from cockpit.backends.sim.cloud import Fault, SimCloud, SimCloudModel, ZoneSpec
from cockpit.backends.sim.cloud_http import CloudServer

KEY, SECRET = "test-key-id", "test-secret-value"


def model(**kw) -> SimCloudModel:
    zones = {
        "z-a": ZoneSpec({"sg-a"}, {"vsw-a"}, {"ecs.c6.large": 0}),
        "z-b": ZoneSpec({"sg-b"}, {"vsw-b"}, {"ecs.c6.large": 5}),
        "z-c": ZoneSpec({"sg-c"}, {"vsw-c"}),
    }
    return SimCloudModel("cn-test", zones, **kw)


@pytest.fixture(params=["sim", "aliyun-over-http"])
def cloud(request):
    """A factory: cloud(**model settings) -> (backend, model)."""
    servers = []

    def make(**kw):
        m = model(**kw)
        if request.param == "sim":
            return SimCloud(m), m
        srv = CloudServer(("127.0.0.1", 0), m, {KEY: SECRET})
        srv.start_background()
        servers.append(srv)
        return AliyunCloud("cn-test", Credentials(KEY, SECRET), endpoint=srv.endpoint), m

    yield make
    for srv in servers:
        srv.shutdown()
        srv.server_close()


def req(zone="z-c", amount=3, token="t-1", min_amount=1, **kw) -> RunRequest:
    sg, vsw = {"z-a": ("sg-a", "vsw-a"), "z-b": ("sg-b", "vsw-b"), "z-c": ("sg-c", "vsw-c")}[zone]
    return RunRequest("cn-test", zone, vsw, sg, "ecs.c6.large", "m-1", amount, min_amount, token, **kw)


def test_run_instances_creates_them_and_describe_sees_them(cloud):
    c, m = cloud()
    got = c.run_instances(req(amount=3))
    assert len(got.instance_ids) == 3 and all(i.startswith("i-") for i in got.instance_ids)
    seen = c.describe_instances(got.instance_ids)
    assert {i.id for i in seen} == set(got.instance_ids) and all(i.status == "Running" for i in seen)


def test_the_same_client_token_never_creates_twice(cloud):
    c, m = cloud()
    first = c.run_instances(req(token="once"))
    again = c.run_instances(req(token="once"))
    assert again.instance_ids == first.instance_ids
    assert len(m.instances) == 3


def test_the_same_token_with_other_parameters_is_refused(cloud):
    c, _ = cloud()
    c.run_instances(req(token="t"))
    with pytest.raises(CloudError) as e:
        c.run_instances(req(token="t", amount=4))
    assert e.value.code == "IdempotentParameterMismatch" and e.value.http_status == 400


def test_out_of_stock_is_operation_denied_no_stock(cloud):
    c, _ = cloud()
    with pytest.raises(CloudError) as e:
        c.run_instances(req(zone="z-a"))
    assert (e.value.code, e.value.http_status) == ("OperationDenied.NoStock", 403)
    assert e.value.request_id


def test_min_amount_takes_what_stock_allows_or_nothing(cloud):
    c, m = cloud()
    assert len(c.run_instances(req(zone="z-b", amount=20, min_amount=1, token="a")).instance_ids) == 5
    with pytest.raises(CloudError) as e:
        c.run_instances(req(zone="z-b", amount=3, min_amount=1, token="b"))
    assert e.value.code == "OperationDenied.NoStock"


def test_too_many_calls_in_flight_are_throttled(cloud):
    c, _ = cloud(latency_s=0.3, max_in_flight=2)
    errors, results = [], []

    def call(i):
        try:
            results.append(c.run_instances(req(token=f"p{i}", amount=1)))
        except CloudError as e:
            errors.append(e.code)

    threads = [threading.Thread(target=call, args=(i,)) for i in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 2 and errors == ["Throttling.User"] * 3


def test_injected_faults_carry_their_codes(cloud):
    c, _ = cloud(faults=[Fault("RunInstances", "Account.Arrearage", 403, 1)])
    with pytest.raises(CloudError) as e:
        c.run_instances(req())
    assert e.value.code == "Account.Arrearage"
    assert len(c.run_instances(req()).instance_ids) == 3  # once only


def test_delete_and_renew(cloud):
    c, m = cloud()
    ids = c.run_instances(req(amount=2, charge_type="PrePaid", period=1, period_unit="Month")).instance_ids
    c.renew_instances(ids, 2, token="renew-1")
    assert all(m.instances[i].renewed_months == 2 for i in ids)
    c.renew_instances(ids, 2, token="renew-1")  # made again after a crash: not paid twice
    assert all(m.instances[i].renewed_months == 2 for i in ids)
    with pytest.raises(CloudError) as e:
        c.renew_instances(ids, 3, token="renew-1")
    assert e.value.code == "IdempotentParameterMismatch"
    assert all(i.private_ip and i.private_ip.startswith("172.") for i in c.describe_instances(ids))
    c.delete_instances(ids[:1])
    assert [i.id for i in c.describe_instances(ids)] == ids[1:]
    with pytest.raises(CloudError) as e:
        c.delete_instances(["i-nosuch"])
    assert e.value.code == "InvalidInstanceId.NotFound"


def test_a_wrong_secret_is_refused_by_the_http_face():
    m = model()
    srv = CloudServer(("127.0.0.1", 0), m, {KEY: SECRET})
    srv.start_background()
    try:
        bad = AliyunCloud("cn-test", Credentials(KEY, "not-the-secret"), endpoint=srv.endpoint)
        with pytest.raises(CloudError) as e:
            bad.run_instances(req())
        assert e.value.code == "InvalidAccessKeySecret"  # the SDK's reading of SignatureDoesNotMatch
        unknown = AliyunCloud("cn-test", Credentials("who", SECRET), endpoint=srv.endpoint)
        with pytest.raises(CloudError) as e:
            unknown.run_instances(req())
        assert e.value.code == "InvalidAccessKeyId.NotFound"
        assert m.instances == {}
    finally:
        srv.shutdown()
        srv.server_close()


def test_plain_http_is_only_for_loopback():
    with pytest.raises(ValueError, match="https"):
        AliyunCloud("cn-beijing", Credentials(KEY, SECRET), endpoint="ecs.aliyuncs.com", protocol="http")
    assert AliyunCloud("cn-beijing", Credentials(KEY, SECRET), endpoint="ecs.aliyuncs.com").protocol == "https"


def test_credentials_come_from_the_environment_or_a_file_and_never_show(tmp_path, monkeypatch):
    monkeypatch.setenv("MY_ID", KEY)
    monkeypatch.setenv("MY_SECRET", SECRET)
    c = Credentials.from_env("MY_ID", "MY_SECRET")
    assert SECRET not in repr(c) and SECRET not in str(c)
    monkeypatch.delenv("MY_SECRET")
    with pytest.raises(CredentialsError, match="MY_SECRET not set"):
        Credentials.from_env("MY_ID", "MY_SECRET")
    f = tmp_path / "creds.ini"
    f.write_text(f"[default]\ntype = access_key\naccess_key_id = {KEY}\naccess_key_secret = {SECRET}\n")
    assert Credentials.from_file(f).secret == SECRET
    f.write_text("nothing useful")
    with pytest.raises(CredentialsError) as e:
        Credentials.from_file(f)
    assert SECRET not in str(e.value)
