"""A local Ansible connection is confined: no config points it at this machine's root, and nothing
that acts on the machine itself (sysctl, packages, services) runs on it.

Safety of these tests (this machine is not a test host): a dangerous setting is either refused by
the cockpit before Ansible starts, with a harmless playbook in place of the real one so that a
broken refusal still changes nothing, or fed to the real playbook in Ansible's check mode, which
writes nothing even if the playbook's own guard were broken. Runs with harmless settings write
only under tmp_path.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cockpit.backends.ansible import CONFINED_TASK, PLAYBOOK, AnsibleInit, root_dir_problem, scrubbed_env
from cockpit.backends.base import InitEvent, InitTarget
from cockpit.backends.factory import BackendError, InitSettings, check, init_target, make_init

HOST_LEVEL_TASKS = ("sysctl applied", "docker installed", "docker running")


def _local(root_dir, **extra) -> dict:
    return {"init": {"kind": "ansible", "connection": "local", "root_dir": str(root_dir), **extra}}


def _harmless_playbook(tmp_path: Path) -> Path:
    """What a broken refusal would run instead of the real playbook: a message, nothing else."""
    p = tmp_path / "harmless.yml"
    p.write_text("- hosts: all\n  gather_facts: false\n  tasks:\n    - ansible.builtin.debug: {msg: ran}\n")
    return p


def _init_target_for(roots: Path):
    """The engine's own description of a host (init_target), for a host row of that name."""
    target = init_target(SimpleNamespace(registries=[]), InitSettings(root_dir=str(roots)))
    return lambda name: target(SimpleNamespace(name=name, idc="idc"))


def _ansible_started(work_dir: Path) -> bool:
    return work_dir.exists() and any(work_dir.glob("run-*"))


# --- the config: refused when checked, with the setting named --------------------------------

@pytest.mark.parametrize("key", ["init_root", "apply_sysctl", "manage_docker", "ansible_connection",
                                 "ansible_become", "ansible_python_interpreter"])
def test_config_refuses_local_extravars_that_would_reach_this_machine(tmp_path, key):
    with pytest.raises(BackendError) as e:
        check(_local(tmp_path, extravars={"ntp_servers": ["ntp.internal"], key: "/"}))
    message = str(e.value)
    assert message.startswith(f"backends.init.extravars.{key}: a local connection may not set it")
    assert "\n" not in message


def test_config_refuses_a_connection_chosen_in_extravars_even_over_ssh():
    with pytest.raises(BackendError, match=r"^backends\.init\.extravars\.ansible_connection: "):
        check({"init": {"kind": "ansible", "connection": "ssh", "extravars": {"ansible_connection": "local"}}})


def test_config_accepts_harmless_extravars_and_a_root_dir_of_its_own(tmp_path):
    check(_local(tmp_path, extravars={"ntp_servers": ["ntp.internal"], "registry_mirrors": []}))
    check({"init": {"kind": "ansible", "connection": "ssh",  # real hosts: host-level changes are theirs
                    "extravars": {"apply_sysctl": True, "manage_docker": True}}})


@pytest.mark.parametrize("connection", ["ssh", "local"])
@pytest.mark.parametrize("extravars, key", [
    ({"ntp_servers": ["{{ lookup('pipe', 'id') }}"]}, "ntp_servers"),
    ({"sysctl_settings": {"vm.swappiness": "{% raw %}0{% endraw %}"}}, "sysctl_settings"),
    ({"ansible_host": "127.0.0.1"}, "ansible_host"),
    ({"ansible_ssh_common_args": "-o ProxyCommand=sh"}, "ansible_ssh_common_args"),
    ({"init_root": "/"}, "init_root"),
])
def test_extravars_can_neither_run_templates_nor_say_how_hosts_are_reached(tmp_path, connection, extravars, key):
    init = (_local(tmp_path, extravars=extravars) if connection == "local"
            else {"init": {"kind": "ansible", "connection": "ssh", "extravars": extravars}})
    with pytest.raises(BackendError) as e:
        check(init)
    assert str(e.value).startswith(f"backends.init.extravars.{key}: ") and "\n" not in str(e.value)


@pytest.mark.parametrize("address", ["127.0.0.1", "127.9.9.9", "::1", "localhost"])
def test_an_ssh_run_never_initialises_this_machine(tmp_path, address):
    backend = AnsibleInit(work_dir=tmp_path / "ansible", connection="ssh")
    events: list[InitEvent] = []
    backend.run([InitTarget("h1", address, {})], events.append, 60)
    assert [(e.host, e.status) for e in events] == [("h1", "failed")] and "is this machine" in events[0].message
    assert not (tmp_path / "ansible").exists()  # Ansible never started


@pytest.mark.parametrize("root_dir", ["/", "//", "/etc", "/etc/..", "/usr/local/roots", "/var/lib/roots", "/lib64",
                                      "/boot/x", "/proc/self/root", "/run/roots", "/root", "/tmp", "/home",
                                      "/var", "/var/tmp", "/var/log/roots"])
def test_config_refuses_a_root_dir_that_is_or_lies_in_a_system_directory(root_dir):
    with pytest.raises(BackendError) as e:
        check(_local(root_dir))
    assert str(e.value).startswith("backends.init.root_dir: ")
    assert "\n" not in str(e.value)


def test_config_refuses_a_root_dir_that_leads_to_a_system_directory_through_a_link(tmp_path):
    (tmp_path / "roots").symlink_to("/etc")
    with pytest.raises(BackendError, match=r"^backends\.init\.root_dir: .*roots \(that is /etc\) is inside the system"):
        check(_local(tmp_path / "roots"))


def test_config_refuses_a_root_dir_that_is_missing_or_not_a_directory(tmp_path):
    (tmp_path / "file").write_text("")
    for path in (tmp_path / "file", tmp_path / "missing"):
        with pytest.raises(BackendError, match=r"^backends\.init\.root_dir: .* is not a directory"):
            check(_local(path))
    with pytest.raises(BackendError, match=r"^backends\.init\.root_dir: .* needs a directory"):
        check({"init": {"kind": "ansible", "connection": "local"}})


@given(st.sampled_from(["/bin", "/boot", "/dev", "/etc", "/lib", "/lib64", "/proc", "/run", "/sbin", "/sys",
                        "/usr", "/var", "/var/lib", "/var/cache"]),
       st.lists(st.from_regex(r"[a-z0-9_-]{1,8}", fullmatch=True), max_size=3))
@settings(max_examples=60, deadline=None)
def test_no_directory_inside_a_system_tree_may_hold_host_roots(tree, parts):
    assert root_dir_problem(os.path.join(tree, *parts)) is not None


def test_var_tmp_is_not_a_system_directory():
    problem = root_dir_problem("/var/tmp/cockpit-no-such-dir-for-tests")
    assert problem is not None and "not a directory" in problem  # only because it does not exist


def test_make_init_refuses_what_check_refuses_and_gives_ssh_hosts_their_own_root(tmp_path, demo_world):
    with pytest.raises(BackendError, match=r"^backends\.init\.extravars\.init_root: "):
        make_init(_local(tmp_path, extravars={"init_root": "/"})["init"], demo_world, tmp_path / "data")
    with pytest.raises(BackendError, match=r"^backends\.init\.root_dir: "):
        make_init(_local("/")["init"], demo_world, tmp_path / "data")
    _, s = make_init({"kind": "ansible", "connection": "ssh", "root_dir": str(tmp_path)}, demo_world, tmp_path)
    assert s.root_dir is None  # a real host's files go to its own /, not to a directory meant for local runs


# --- the backend: refused again when it runs, before Ansible starts ---------------------------

def test_a_local_backend_refuses_forbidden_extravars_and_unknown_connections(tmp_path):
    with pytest.raises(ValueError, match=r"^extravars\.init_root: a local connection may not set it"):
        AnsibleInit(work_dir=tmp_path, connection="local", root_dir=tmp_path, extravars={"init_root": "/"})
    with pytest.raises(ValueError, match=r"^root_dir: "):
        AnsibleInit(work_dir=tmp_path, connection="local", root_dir="/")
    with pytest.raises(ValueError, match=r"^connection: "):
        AnsibleInit(work_dir=tmp_path, connection="ansible.builtin.local", root_dir=tmp_path)


@pytest.mark.parametrize("key,value", [("init_root", "/"), ("apply_sysctl", True), ("manage_docker", True),
                                       ("ansible_connection", "local"), ("ansible_become", True)])
def test_a_local_run_refuses_extravars_changed_after_the_backend_was_built(tmp_path, key, value):
    roots = tmp_path / "roots"
    roots.mkdir()
    work = tmp_path / "ansible"
    backend = AnsibleInit(work_dir=work, playbook=_harmless_playbook(tmp_path), connection="local", root_dir=roots)
    backend.extravars[key] = value
    events: list[InitEvent] = []
    with pytest.raises(ValueError, match=rf"^extravars\.{key}: "):
        backend.run([InitTarget("h1", None, {"init_root": str(roots / "h1")})], events.append, 60)
    assert not events and not _ansible_started(work)


def test_a_local_run_refuses_a_root_dir_changed_into_a_link_to_a_system_directory(tmp_path):
    roots = tmp_path / "roots"
    roots.mkdir()
    work = tmp_path / "ansible"
    backend = AnsibleInit(work_dir=work, playbook=_harmless_playbook(tmp_path), connection="local", root_dir=roots)
    roots.rmdir()
    roots.symlink_to("/etc")
    with pytest.raises(ValueError, match=r"^root_dir: .*inside the system directory /etc"):
        backend.run([InitTarget("h1", None, {"init_root": str(roots / "h1")})], lambda ev: None, 60)
    assert not _ansible_started(work)


def test_every_local_host_root_must_lie_inside_root_dir(tmp_path):
    roots = tmp_path / "roots"
    roots.mkdir()
    (roots / "linked").symlink_to("/etc")
    work = tmp_path / "ansible"
    backend = AnsibleInit(work_dir=work, playbook=_harmless_playbook(tmp_path), connection="local", root_dir=roots)
    target = _init_target_for(roots)
    hosts = [
        InitTarget("slash", None, {"init_root": "/"}),
        InitTarget("none", None, {}),
        InitTarget("etc", None, {"init_root": "/etc"}),
        InitTarget("relative", None, {"init_root": "roots/relative"}),
        InitTarget("climbs", None, {"init_root": str(roots / ".." / "elsewhere")}),
        InitTarget("the-root-dir", None, {"init_root": str(roots)}),
        InitTarget("linked", None, {"init_root": str(roots / "linked")}),
        target(".."),  # a host whose name climbs out of root_dir
        InitTarget("sysctl", None, {"init_root": str(roots / "sysctl"), "apply_sysctl": True}),
        InitTarget("conn", None, {"init_root": str(roots / "conn"), "ansible_connection": "local"}),
    ]
    events: list[InitEvent] = []
    backend.run(hosts, events.append, 60)
    assert {e.host for e in events} == {h.name for h in hosts}
    assert all(e.status == "failed" and e.task == CONFINED_TASK and e.host in e.message for e in events)
    assert not _ansible_started(work)


@given(st.from_regex(r"[a-z0-9./_-]{1,12}", fullmatch=True))
@settings(max_examples=150, deadline=None)
def test_whatever_a_host_is_called_its_local_root_stays_inside_root_dir(tmp_path_factory, name):
    roots = tmp_path_factory.getbasetemp() / "roots-property"
    roots.mkdir(exist_ok=True)
    backend = AnsibleInit(work_dir=roots.parent / "unused", connection="local", root_dir=roots)
    try:
        root = backend.host_vars(_init_target_for(roots)(name))["init_root"]
    except ValueError:
        return
    top = os.path.realpath(roots)
    assert root != top and os.path.commonpath([root, top]) == top


def test_host_variables_cannot_choose_the_connection(tmp_path):
    backend = AnsibleInit(work_dir=tmp_path, connection="ssh")
    with pytest.raises(ValueError, match="host h1: its variables may not set ansible_connection"):
        backend.inventory([InitTarget("h1", "10.0.0.1", {"ansible_connection": "local"})])
    v = backend.inventory([InitTarget("h2", "10.0.0.2", {})])["all"]["hosts"]["h2"]
    assert v["ansible_connection"] == "ssh" and v["ansible_host"] == "10.0.0.2"


@pytest.mark.integration
def test_a_local_run_turns_host_level_changes_off_and_writes_only_in_the_hosts_root(tmp_path):
    roots = tmp_path / "roots"
    roots.mkdir()
    work = tmp_path / "ansible"
    backend = AnsibleInit(work_dir=work, connection="local", root_dir=roots, extravars={"ntp_servers": ["ntp.internal"]})
    assert backend.job_extravars() == {"ntp_servers": ["ntp.internal"], "apply_sysctl": False, "manage_docker": False}
    events: list[InitEvent] = []
    backend.run([InitTarget("h1", None, {"init_root": str(roots / "h1")})], events.append, 120)
    assert events[-1] == InitEvent("h1", "ready")
    assert "server ntp.internal iburst" in (roots / "h1" / "etc" / "chrony" / "chrony.conf").read_text()
    (run_dir,) = work.glob("run-*")
    assert json.loads((run_dir / "env" / "extravars").read_text())["apply_sysctl"] is False
    skipped = _host_level_skips(run_dir, "h1")
    assert set(skipped) == set(HOST_LEVEL_TASKS)


# --- the playbook guards itself: dangerous settings, in check mode only ------------------------

def _check_mode_run(tmp_path: Path, hosts: dict, extravars: dict) -> tuple[dict[str, dict], Path]:
    """The real playbook through the real job runner, in check mode: nothing is written anywhere,
    whatever the variables say. Returns each host's last event and the run directory."""
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    for v in hosts.values():
        v.setdefault("ansible_python_interpreter", sys.executable)
    job = {"private_data_dir": str(run_dir), "playbook": str(PLAYBOOK), "inventory": {"all": {"hosts": hosts}},
           "extravars": extravars, "forks": 4, "timeout": 120, "check": True}
    out = subprocess.run([sys.executable, "-m", "cockpit.backends.ansible_job"], input=json.dumps(job),
                         capture_output=True, text=True, env=scrubbed_env(str(run_dir)), cwd=run_dir, timeout=180)
    (artifacts,) = (run_dir / "artifacts").iterdir()
    assert "--check" in json.loads((artifacts / "command").read_text())["command"]
    last = {}
    for line in out.stdout.splitlines():
        ev = json.loads(line)
        last[ev["host"]] = ev
    return last, run_dir


def _host_level_skips(run_dir: Path, host: str) -> dict[str, str]:
    """The host-level tasks Ansible skipped for the host, each with what it printed (in check
    mode, which is verbose: the condition that was false)."""
    skipped = {}
    for f in run_dir.glob("artifacts/*/job_events/*.json"):
        ev = json.loads(f.read_text())
        data = ev.get("event_data") or {}
        if ev.get("event") == "runner_on_skipped" and data.get("host") == host and data.get("task") in HOST_LEVEL_TASKS:
            skipped[data["task"]] = ev.get("stdout", "")
    return skipped


@pytest.mark.integration
def test_the_playbook_stops_a_local_host_whose_root_is_this_machines(tmp_path):
    hosts = {
        "via-extravars": {"ansible_connection": "local", "init_root": str(tmp_path / "roots" / "a")},
    }
    last, _ = _check_mode_run(tmp_path, hosts, {"init_root": "/", "apply_sysctl": True, "manage_docker": True})
    assert last["via-extravars"]["status"] == "failed"
    assert last["via-extravars"]["task"] == CONFINED_TASK
    assert "other than /" in last["via-extravars"]["message"]


@pytest.mark.integration
def test_the_playbook_stops_local_hosts_with_a_root_of_slash_or_a_relative_root(tmp_path):
    hosts = {
        "default-root": {"ansible_connection": "local"},  # group_vars' "/"
        "climbs-to-slash": {"ansible_connection": "ansible.builtin.local", "init_root": "/tmp/.."},
        "relative": {"ansible_connection": "local", "init_root": "roots/relative"},
    }
    last, _ = _check_mode_run(tmp_path, hosts, {})
    assert {h: (e["status"], e["task"]) for h, e in last.items()} == {h: ("failed", CONFINED_TASK) for h in hosts}


@pytest.mark.integration
def test_the_playbook_never_changes_this_machine_on_a_local_connection(tmp_path):
    roots = tmp_path / "roots"
    hosts = {
        "local": {"ansible_connection": "local", "init_root": str(roots / "local")},
        "fqcn": {"ansible_connection": "ansible.builtin.local", "init_root": str(roots / "fqcn")},
    }
    last, run_dir = _check_mode_run(tmp_path, hosts, {"apply_sysctl": True, "manage_docker": True})
    for host in hosts:
        assert last[host]["status"] == "ready"
        skipped = _host_level_skips(run_dir, host)
        assert set(skipped) == set(HOST_LEVEL_TASKS)
        # skipped because of the connection, although the variables asked for the changes
        for printed in skipped.values():
            assert "Conditional result was False" in printed and "ansible_connection" in printed, printed
    assert not roots.exists()  # check mode: not even the hosts' own roots were written
