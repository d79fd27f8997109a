"""The container runtime on real Docker Engines (private dockerd daemons, images pulled through a
real registry) keeps the ContainerRuntime contract the simulation keeps, and adds what only a
real engine has: processes that answer on their ports, limits, health checks, live figures, and
clear errors when an engine or a registry fails."""

from __future__ import annotations

import json
import math
import os
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, replace

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cockpit.backends.base import ContainerError, ContainerSpec
from cockpit.backends.docker_engine import DockerRuntime
from cockpit.backends.factory import BackendError
from cockpit.backends.sim.containers import SimContainers
from cockpit.core.addressing import PORT_BASE
from cockpit.lab.procs import free_port, listening
from tests.dockerd import IDLE_CMD, docker_hosts, lone_dockerd, web_image  # noqa: F401 (fixtures)

ADDRESS = {"h1": "10.1.0.1", "h2": "10.1.0.2"}
MiB = 2**20


def idle(name: str, host: str = "h1", ports=(8080,), **kw) -> ContainerSpec:
    """A container that binds no port (the tests' engines share this machine's network)."""
    kw = {"command": IDLE_CMD, "health_cmd": ("true",), **kw}
    return ContainerSpec(name, host, ADDRESS[host], name.split("-")[0], "web:1", tuple(ports), (), **kw)


@pytest.fixture(params=["sim", pytest.param("docker", marks=pytest.mark.integration)])
def runtime(request):
    if request.param == "sim":
        yield SimContainers()
        return
    rt = request.getfixturevalue("docker_hosts").runtime()
    yield rt
    rt.close()


# --- the contract, on the simulation and on Docker -----------------------------------------------------


def test_repeated_start_returns_the_same_container(runtime):
    first = runtime.start(idle("api-1-1"))
    again = runtime.start(idle("api-1-1"))
    assert first.state == again.state == "running"
    assert (again.ref, again.ports, again.address) == (first.ref, first.ports, "10.1.0.1")
    assert [c.name for c in runtime.list("h1")] == ["api-1-1"]


def test_start_of_a_stopped_container_runs_it_again_with_its_ports(runtime):
    first = runtime.start(idle("api-1-1"))
    runtime.stop("h1", "api-1-1", timeout_s=5)
    assert runtime.inspect("h1", "api-1-1").state == "exited"
    again = runtime.start(idle("api-1-1"))
    assert again.state == "running" and (again.ref, again.ports) == (first.ref, first.ports)


def test_stop_and_remove_of_a_missing_name_are_done(runtime):
    runtime.stop("h1", "ghost-1-1")
    runtime.remove("h1", "ghost-1-1")
    runtime.start(idle("api-1-1"))
    for _ in range(2):  # a repeated stop and remove of one that was there: done too
        runtime.stop("h1", "api-1-1", timeout_s=5)
        runtime.remove("h1", "api-1-1")
    assert runtime.inspect("h1", "api-1-1") is None and runtime.list("h1") == []


def test_inspect_of_a_missing_name_is_none(runtime):
    assert runtime.inspect("h1", "ghost-1-1") is None
    runtime.start(idle("api-1-1", host="h2"))
    assert runtime.inspect("h1", "api-1-1") is None  # it runs on the other host


def test_list_shows_what_runs_on_that_host_only(runtime):
    for name, host in (("api-1-1", "h1"), ("api-1-2", "h2"), ("db-1-1", "h1")):
        runtime.start(idle(name, host))
    on_h1, on_h2 = runtime.list("h1"), runtime.list("h2")
    assert [c.name for c in on_h1] == ["api-1-1", "db-1-1"] and [c.name for c in on_h2] == ["api-1-2"]
    assert {(c.host, c.address, c.state) for c in on_h1} == {("h1", "10.1.0.1", "running")}
    assert [(c.service, c.address) for c in on_h2] == [("api", "10.1.0.2")]
    assert runtime.inspect("h1", "db-1-1") == next(c for c in on_h1 if c.name == "db-1-1")


def test_two_containers_of_one_service_on_one_host_get_different_host_ports(runtime):
    a = runtime.start(idle("api-1-1", ports=(8080, 8081)))
    b = runtime.start(idle("api-1-2", ports=(8080, 8081)))
    assert [cp for cp, _ in a.ports] == [cp for cp, _ in b.ports] == [8080, 8081]
    host_ports = [hp for c in (a, b) for _, hp in c.ports]
    assert len(set(host_ports)) == 4 and min(host_ports) >= 31000


def test_containers_started_at_once_on_one_host_get_different_host_ports(runtime):
    """The engine makes its calls from several threads at once."""
    with ThreadPoolExecutor(6) as pool:
        started = list(pool.map(runtime.start, [idle(f"api-2-{k}") for k in range(1, 7)]))
    assert len({c.ports[0][1] for c in started}) == 6 and len(runtime.list("h1")) == 6


def test_ports_of_a_removed_container_are_given_out_again(runtime):
    a = runtime.start(idle("api-1-1"))
    runtime.stop("h1", "api-1-1", timeout_s=5)
    runtime.remove("h1", "api-1-1")
    assert runtime.start(idle("api-1-2")).ports == a.ports


def test_a_running_container_is_not_removed(runtime):
    runtime.start(idle("api-1-1"))
    with pytest.raises(ContainerError, match="running") as e:
        runtime.remove("h1", "api-1-1")
    assert not e.value.transient and runtime.inspect("h1", "api-1-1").state == "running"


def test_a_spec_rebuilt_from_its_stored_request_starts_the_same_container(runtime):
    """The engine stores a spec as JSON and rebuilds it with ContainerSpec(**request): lists come
    back where tuples went in."""
    spec = idle("api-3-1", pool="hot", task=3)
    request = json.loads(json.dumps(asdict(spec)))
    rebuilt = ContainerSpec(**{**request, "ports": tuple(request["ports"]), "host_ports": tuple(request["host_ports"])})
    assert isinstance(rebuilt.command, list)
    first = runtime.start(rebuilt)
    assert runtime.start(spec) == first and first.state == "running"


# --- Docker only ---------------------------------------------------------------------------------------


def get_text(port: int, timeout_s: float = 10.0) -> str:
    """What 127.0.0.1:port answers on /, waiting for the process to listen."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return httpx.get(f"http://127.0.0.1:{port}/", timeout=1.0, trust_env=False).text.strip()
        except httpx.HTTPError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


@pytest.mark.integration
def test_containers_answer_http_on_their_host_ports_with_their_own_names(docker_hosts):
    # The tests' engines share this machine's network: the first free ports must be free here.
    busy = [p for p in (PORT_BASE, PORT_BASE + 1) if listening("127.0.0.1", p)]
    assert not busy, f"port(s) {busy} are in use on this machine: this test's containers need them"
    rt = docker_hosts.runtime()
    web = [ContainerSpec(f"web-1-{k}", "h1", "10.1.0.1", "web", "web:1", (8080,)) for k in (1, 2)]
    started = [rt.start(s) for s in web]  # the image's own command; the default health check
    assert started[0].ports[0][1] != started[1].ports[0][1]
    for c in started:
        assert get_text(c.ports[0][1]) == c.name
    deadline = time.monotonic() + 15  # the default check (wget on $PORT) finds them healthy
    while {s.health for s in rt.stats("h1")} != {"healthy"}:
        assert time.monotonic() < deadline, rt.stats("h1")
        time.sleep(0.2)


@pytest.mark.integration
def test_labels_limits_environment_and_health_check_are_on_the_container(docker_hosts):
    rt = docker_hosts.runtime()
    fixed = free_port()
    spec = idle("api-7-1", ports=(8080, 9090), pool="hot", task=7, cpu=0.5, memory_gb=0.0625, health_cmd=())
    spec = replace(spec, host_ports=(fixed,))
    info = rt.start(spec)
    rt.start(idle("api-7-2", health_cmd=("/bin/test", "-d", "/tmp")))
    client = docker_hosts.client("h1")
    attrs = client.containers.get("api-7-1").attrs
    assert attrs["Config"]["Labels"] == {
        "cockpit.service": "api", "cockpit.host": "h1", "cockpit.name": "api-7-1", "cockpit.address": "10.1.0.1",
        "cockpit.ports": f"[[{fixed}, {fixed}], [8080, 31000], [9090, 31001]]", "cockpit.pool": "hot",
        "cockpit.task": "7"}
    assert info.ports == ((fixed, fixed), (8080, 31000), (9090, 31001))
    assert attrs["Config"]["Image"] == f"{docker_hosts.image.addr}/web:1"
    host = attrs["HostConfig"]
    assert (host["NetworkMode"], host["NanoCpus"], host["Memory"]) == ("host", 500_000_000, 64 * MiB)
    assert host["RestartPolicy"]["Name"] == "unless-stopped"
    env = dict(e.split("=", 1) for e in attrs["Config"]["Env"])
    assert {k: env[k] for k in ("PORT", "PORTS", "NAME", "SERVICE")} == {
        "PORT": str(fixed), "PORTS": f"{fixed},31000,31001", "NAME": "api-7-1", "SERVICE": "api"}
    check = attrs["Config"]["Healthcheck"]
    assert check["Test"] == ["CMD-SHELL", f"wget -q -O /dev/null http://127.0.0.1:{fixed}/ || exit 1"]
    assert check["Interval"] <= 5_000_000_000 and check["Retries"] >= 1
    other = client.containers.get("api-7-2").attrs["Config"]["Healthcheck"]
    assert other["Test"] == ["CMD", "/bin/test", "-d", "/tmp"]
    client.close()


@pytest.mark.integration
def test_stats_give_the_cpu_share_and_memory_of_running_containers(docker_hosts):
    rt = docker_hosts.runtime()
    burn = ("/bin/sh", "-c", "trap 'exit 0' TERM; while :; do :; done")
    rt.start(idle("burn-1-1", command=burn, cpu=0.5, memory_gb=0.0625))
    rt.start(idle("api-1-1"))
    first = {s.name: s for s in rt.stats("h1")}
    assert set(first) == {"burn-1-1", "api-1-1"}
    assert all(s.cpu_pct is None for s in first.values())  # no earlier sample to compare with
    assert first["burn-1-1"].memory_limit_bytes == 64 * MiB and first["burn-1-1"].memory_bytes > 0
    assert first["api-1-1"].memory_limit_bytes > 64 * MiB  # no limit: the host's memory
    second = {s.name: s for s in rt.stats("h1")}  # a second later: the engine samples once a second
    assert 5.0 < second["burn-1-1"].cpu_pct < 65.0  # busy, and held to half a core
    assert 0.0 <= second["api-1-1"].cpu_pct < 5.0
    assert second["burn-1-1"].service == "burn" and second["api-1-1"].health in ("starting", "healthy")
    rt.stop("h1", "burn-1-1", timeout_s=5)
    assert [s.name for s in rt.stats("h1")] == ["api-1-1"]  # only running containers


def expect_transient(call, within_s: float, *words: str) -> ContainerError:
    t0 = time.monotonic()
    with pytest.raises(ContainerError) as e:
        call()
    assert time.monotonic() - t0 < within_s, f"{call} took {time.monotonic() - t0:.1f} s"
    assert e.value.transient and e.value.host == "h1", e.value
    for w in words:
        assert w in str(e.value)
    assert "\n" not in str(e.value)
    return e.value


@pytest.mark.integration
def test_an_engine_that_hangs_or_dies_gives_transient_errors_within_the_timeout(lone_dockerd, web_image):
    dk = lone_dockerd
    rt = DockerRuntime({"h1": dk.url}, {"h1": web_image.addr}, timeout_s=0.5)
    assert rt.probe("h1") is None and rt.list("h1") == []
    calls = [lambda: rt.start(idle("api-1-1")), lambda: rt.inspect("h1", "api-1-1"), lambda: rt.list("h1"),
             lambda: rt.stats("h1"), lambda: rt.stop("h1", "api-1-1", timeout_s=0), lambda: rt.remove("h1", "api-1-1")]
    os.kill(dk.pid, signal.SIGSTOP)  # it accepts connections and never answers
    try:
        for call in calls:
            expect_transient(call, 0.5 + 2.0, "does not answer", "within 0.5 s")
        assert "does not answer" in rt.probe("h1")
    finally:
        os.kill(dk.pid, signal.SIGCONT)
    assert rt.probe("h1") is None
    dk.kill()
    for call in calls:
        expect_transient(call, 0.5 + 2.0, f"engine at {dk.url} does not answer (connection refused)")
    assert rt.probe("h1") == f"engine at {dk.url} does not answer (connection refused)"


@pytest.mark.integration
def test_a_missing_image_is_a_lasting_error_naming_the_image_and_the_registry(docker_hosts):
    rt = docker_hosts.runtime()
    spec = ContainerSpec("ghost-1-1", "h1", "10.1.0.1", "ghost", "ghost:9", (8080,))
    with pytest.raises(ContainerError) as e:
        rt.start(spec)
    assert not e.value.transient and "\n" not in str(e.value)
    assert "ghost:9" in e.value.message and f"registry {docker_hosts.image.addr}" in e.value.message
    assert rt.list("h1") == []


@pytest.mark.integration
def test_a_command_that_cannot_run_is_a_lasting_error_and_leaves_nothing(docker_hosts):
    rt = docker_hosts.runtime()
    with pytest.raises(ContainerError) as e:
        rt.start(idle("api-1-1", command=("/bin/no-such-program",)))
    assert not e.value.transient and "no-such-program" in e.value.message
    assert rt.list("h1") == [] and rt.start(idle("api-1-2")).ports[0][1] == 31000  # its port is free again


@pytest.mark.integration
def test_a_container_cockpit_did_not_make_is_never_touched(docker_hosts):
    rt = docker_hosts.runtime()
    rt.start(idle("api-1-1"))  # pulls the image
    client = docker_hosts.client("h1")
    theirs = client.containers.create(f"{docker_hosts.image.addr}/web:1", list(IDLE_CMD), name="api-1-2",
                                      network_mode="host")
    with pytest.raises(ContainerError, match="cockpit did not make") as e:
        rt.start(idle("api-1-2"))
    assert not e.value.transient
    rt.stop("h1", "api-1-2")
    rt.remove("h1", "api-1-2")  # not ours: cockpit's api-1-2 is not there, which is what was asked
    assert rt.inspect("h1", "api-1-2") is None and [c.name for c in rt.list("h1")] == ["api-1-1"]
    assert client.containers.get("api-1-2").id == theirs.id
    client.close()


@pytest.mark.integration
def test_a_registry_that_does_not_answer_is_a_transient_error_naming_it(docker_hosts):
    dead = f"127.0.0.1:{free_port()}"
    rt = DockerRuntime(docker_hosts.engines(), {"h1": dead, "h2": dead})
    with pytest.raises(ContainerError) as e:
        rt.start(idle("api-1-1"))
    assert e.value.transient and f"pull web:1 from registry {dead}" in e.value.message
    assert "connection refused" in e.value.message


def test_a_host_without_an_engine_is_an_error_naming_it():
    rt = DockerRuntime({"h1": "unix:///nonexistent/docker.sock"}, {"h1": "127.0.0.1:5000"})
    with pytest.raises(ContainerError, match="no container engine is configured for host nowhere") as e:
        rt.start(ContainerSpec("api-1-1", "nowhere", None, "api", "web:1"))
    assert not e.value.transient
    assert rt.probe("nowhere") == "no container engine is configured for host nowhere"
    assert "no such file or directory" in rt.probe("h1")


# --- settings ------------------------------------------------------------------------------------------

GOOD = {"kind": "docker", "api_version": "1.41", "timeout_s": 5,
        "hosts": {"h1": "unix:///run/lab/h1/docker.sock", "h2": "tcp://10.1.0.2:2375"},
        "registries": {"h1": "10.1.0.250:5000", "h2": "registry.idc2.example:5000"}}


def test_settings_make_a_runtime_with_an_engine_and_registry_per_host():
    rt = DockerRuntime.from_settings(GOOD)
    assert rt.engines == GOOD["hosts"] and rt.registries == GOOD["registries"]
    assert (rt.api_version, rt.timeout_s, rt.pull_timeout_s) == ("1.41", 5.0, 120.0)


def changed(path: str, value) -> dict:
    out = {**GOOD, "hosts": dict(GOOD["hosts"]), "registries": dict(GOOD["registries"])}
    keys = path.split(".")
    target = out
    for k in keys[:-1]:
        target = target[k]
    if value is ...:
        del target[keys[-1]]
    else:
        target[keys[-1]] = value
    return out


@pytest.mark.parametrize("path, value, named", [
    ("kind", "podman", "backends.runtime.kind"),
    ("api_version", "1.30", "backends.runtime.api_version"),
    ("api_version", 1.41, "backends.runtime.api_version"),
    ("timeout_s", "5", "backends.runtime.timeout_s"),
    ("timeout_s", -1, "backends.runtime.timeout_s"),
    ("timeout_s", math.nan, "backends.runtime.timeout_s"),
    ("pull_timeout_s", True, "backends.runtime.pull_timeout_s"),
    ("tls", True, "backends.runtime.tls"),
    ("hosts", ..., "backends.runtime.hosts"),
    ("hosts", {}, "backends.runtime.hosts"),
    ("hosts.h1", "http://10.1.0.1:2375", "backends.runtime.hosts.h1"),
    ("hosts.h1", "tcp://10.1.0.1", "backends.runtime.hosts.h1"),
    ("hosts.h1", "unix://run/docker.sock", "backends.runtime.hosts.h1"),
    ("hosts.h1", 2375, "backends.runtime.hosts.h1"),
    ("registries", ..., "backends.runtime.registries"),
    ("registries.h1", ..., "backends.runtime.registries: host h1 has no registry"),
    ("registries.h1", "http://10.1.0.250:5000", "backends.runtime.registries.h1"),
    ("registries.h1", "10.1.0.250:99999", "backends.runtime.registries.h1"),
    ("registries.h3", "10.1.0.250:5000", "backends.runtime.registries.h3: not a host"),
])
def test_bad_settings_are_refused_naming_the_setting(path, value, named):
    with pytest.raises(BackendError) as e:
        DockerRuntime.from_settings(changed(path, value))
    assert str(e.value).startswith(named) and "\n" not in str(e.value)


def test_too_many_hosts_are_refused():
    hosts = {f"h{i}": f"tcp://10.1.{i // 250}.{i % 250 + 1}:2375" for i in range(10_001)}
    with pytest.raises(BackendError, match=r"^backends.runtime.hosts: 10,001 hosts: at most 10,000"):
        DockerRuntime.from_settings({**GOOD, "hosts": hosts, "registries": {}})


json_like = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=10)


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(st.sampled_from(["kind", "api_version", "timeout_s", "pull_timeout_s", "hosts", "registries"]),
                       json_like, max_size=6) | json_like)
def test_any_settings_make_a_runtime_or_one_clear_refusal(doc):
    try:
        DockerRuntime.from_settings(doc)
    except BackendError as e:
        assert str(e).startswith("backends.runtime") and "\n" not in str(e)
