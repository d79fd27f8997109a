"""`cockpit lab`: a small real platform on this machine, and nothing of it left after `down`.

The hosts' sshd runs confined (its own mount namespace: every write private to the lab), so
the Ansible run here, with the real playbook over SSH as root, never touches this machine's
/etc, /root or /var: the test checks both sides."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import docker
import httpx
import pytest

from cockpit import config
from cockpit.backends import factory
from cockpit.backends.ansible import AnsibleInit
from cockpit.backends.base import InitTarget
from cockpit.cli import main
from cockpit.lab import documents, pids, procs, state, status
from cockpit.lab.down import down
from tests.lab import hosts_of, lab, lab_dir, lab_up, leftovers, needs_root, ssh  # noqa: F401 - fixtures

integration = [pytest.mark.integration, needs_root]
COCKPIT = str(Path(sys.executable).parent / "cockpit")
# What init.yml writes on a host whose init_root is /: each must land in the host's private
# upper directory, never on this machine.
PLAYBOOK_FILES = ("etc/chrony/chrony.conf", "etc/sysctl.d/90-dcp.conf", "etc/docker/daemon.json", "etc/dcp-initialised")
HOST_LEVEL_TASKS = ("sysctl applied", "docker installed", "docker running")
SYSCTLS = ("net/core/somaxconn", "vm/swappiness", "fs/file-max")  # what init.yml's sysctl settings name


def _fingerprint(path: Path) -> str | None:
    """What a file of this machine is now: its content's hash, or None when absent."""
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except FileNotFoundError:
        return None


def _docker(url: str) -> docker.DockerClient:
    return docker.DockerClient(base_url=url, version="1.41", timeout=30)


def _registry_ref(st: state.State, service: str = "feed") -> str:
    reg = st.lab["registries"]["lab-a"]
    return f"{reg['address']}:{reg['port']}/{documents.image_of(service)}:{documents.IMAGE_TAG}"


def _run_probe(st: state.State, host: dict, port: int, name: str):
    client = _docker(host["docker_url"])
    try:
        return client.containers.run(_registry_ref(st), name=name, network_mode="host", detach=True,
                                     environment={"PORT": str(port), "NAME": name})
    finally:
        client.close()


def _answer(url: str) -> str:
    deadline = time.monotonic() + 10
    while True:
        try:
            return httpx.get(url, timeout=1).text.strip()
        except httpx.HTTPError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


# --- a lab of two hosts, only read -----------------------------------------------------------------


@pytest.mark.integration
@needs_root
def test_lab_up_brings_every_piece_up_and_status_says_each_answers(lab, capsys):
    rows = status.status(lab)
    assert [r for r in rows if not r.answers] == []
    kinds = [r.kind for r in rows]
    assert {k: kinds.count(k) for k in set(kinds)} == {
        "bridge": 1, "netns": 2, "veth": 2, "sshd": 2, "dockerd": 2, "registry": 2, "etcd": 1, "nginx": 1}
    assert main(["lab", "status", "--dir", str(lab.dir), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["all_answer"] is True and len(doc["pieces"]) == len(rows)
    assert main(["lab", "status", "--dir", str(lab.dir)]) == 0
    assert "all answer" in capsys.readouterr().out


@pytest.mark.integration
@needs_root
def test_a_host_network_container_on_host_1_answers_on_its_address_from_here(lab):
    h1, h2 = hosts_of(lab)
    c = _run_probe(lab, h1, 18080, "probe-h1")
    try:
        assert _answer(f"http://{h1['address']}:18080/") == "probe-h1"
        # its own network namespace: the other host's address does not have it
        assert not procs.listening(h2["address"], 18080)
    finally:
        c.remove(force=True)


@pytest.mark.integration
@needs_root
def test_every_host_pulls_the_service_images_from_the_labs_registry(lab):
    h2 = hosts_of(lab)[1]
    client = _docker(h2["docker_url"])
    try:
        for service in ("feed", "user"):
            image = client.images.pull(_registry_ref(lab, service))
            assert image.attrs["Config"]["Cmd"][-1].endswith("exec httpd -f -p $PORT -h /tmp/www")
    finally:
        client.close()
    catalog = httpx.get(f"http://127.0.0.1:{lab.lab['registries']['lab-a']['port']}/v2/_catalog").json()
    assert set(catalog["repositories"]) == {"lab/feed", "lab/user"}


@pytest.mark.integration
@needs_root
def test_ssh_with_the_lab_key_reaches_each_host_and_its_hostname_is_its_own(lab):
    import socket

    mine = socket.gethostname()
    for h in hosts_of(lab):
        r = ssh(lab, h["address"], "hostname")
        assert r.returncode == 0, r.stderr
        assert r.stdout.strip() == h["name"]
    assert socket.gethostname() == mine


@pytest.mark.integration
@needs_root
def test_the_world_passes_check_and_the_config_opens_every_backend(lab, capsys):
    world, cfg_path = lab.lab["world"], lab.lab["config"]
    assert main(["check", world]) == 0, capsys.readouterr().err
    cfg = config.load(cfg_path)
    assert cfg.world == world and cfg.db == str(lab.dir / "store" / "cockpit.db")
    factory.check(cfg.backends)
    assert "extravars" not in cfg.backends["init"]  # apply_sysctl and manage_docker stay at their default: off
    assert cfg.backends["init"]["connection"] == "ssh"
    runtime = factory.make_runtime(cfg.backends["runtime"])
    runtime.close()
    assert factory.make_discovery(cfg.backends["discovery"]) is not None
    assert factory.make_front(cfg.backends["front"]) is not None
    from cockpit import world as world_mod

    w = world_mod.load(world)
    addresses = {h["address"] for h in hosts_of(lab)}
    assert {a for g in w.host_groups for a in g.addresses} == addresses
    assert set(cfg.backends["runtime"]["hosts"]) == {h["name"] for h in hosts_of(lab)}


# --- Ansible over SSH, confined ------------------------------------------------------------------------


@pytest.mark.integration
@needs_root
def test_ansible_over_ssh_writes_only_into_each_hosts_private_upper_directory(lab_dir):
    real = {rel: _fingerprint(Path("/") / rel) for rel in PLAYBOOK_FILES}
    kernel = {k: Path("/proc/sys", k).read_text() for k in SYSCTLS}
    ansible_tmp = Path("/root/.ansible/tmp")
    tmp_before = sorted(os.listdir(ansible_tmp)) if ansible_tmp.is_dir() else None
    st = lab_up(lab_dir)
    try:
        init = AnsibleInit(work_dir=lab_dir.parent / "ansible", connection="ssh", user="root",
                           private_key_file=st.lab["private_key"], forks=4)
        mirror = f"http://{st.lab['gateway']}:{st.lab['registries']['lab-a']['port']}"
        events = []
        init.run([InitTarget(h["name"], h["address"], {"registry_mirrors": [mirror]}) for h in hosts_of(st)],
                 events.append, timeout_s=120)
        final = {e.host: e for e in events if e.final}
        assert {n: e.status for n, e in final.items()} == {h["name"]: "ready" for h in hosts_of(st)}, events
        for h in hosts_of(st):
            upper = st.dir / "hosts" / h["name"] / "fs" / "upper"
            for rel in PLAYBOOK_FILES:
                assert (upper / rel).is_file(), rel
            assert "server ntp1.aliyun.com iburst" in (upper / "etc/chrony/chrony.conf").read_text()
            assert json.loads((upper / "etc/docker/daemon.json").read_text())["registry-mirrors"] == [mirror]
        assert {rel: _fingerprint(Path("/") / rel) for rel in PLAYBOOK_FILES} == real
        assert {k: Path("/proc/sys", k).read_text() for k in SYSCTLS} == kernel
        assert (sorted(os.listdir(ansible_tmp)) if ansible_tmp.is_dir() else None) == tmp_before
        skipped = _skipped_tasks(lab_dir.parent / "ansible")
        for h in hosts_of(st):
            assert set(HOST_LEVEL_TASKS) <= skipped[h["name"]]
    finally:
        down(st.dir, say=lambda _line: None)
    assert leftovers(st) == []  # Ansible's ControlPersist ssh clients too


def _skipped_tasks(work: Path) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for path in work.glob("run-*/artifacts/*/job_events/*.json"):
        ev = json.loads(path.read_text())
        if ev.get("event") == "runner_on_skipped":
            data = ev["event_data"]
            out.setdefault(data["host"], set()).add(data["task"])
    return out


# --- down ----------------------------------------------------------------------------------------------


@pytest.mark.integration
@needs_root
def test_lab_down_leaves_nothing_behind_and_twice_is_fine(lab_dir, capsys):
    d = lab_dir
    assert main(["lab", "up", "--hosts", "2", "--idcs", "2", "--dir", str(d)]) == 0
    out = capsys.readouterr().out
    assert out.count("\nhost ") + out.startswith("host ") == 2 and "lab up in" in out
    st = state.load(d)
    assert main(["check", st.lab["world"]]) == 0  # two IDCs, replication between their registries
    capsys.readouterr()
    h1, h2 = hosts_of(st)
    _run_probe(st, h1, 18081, "probe-down")
    _answer(f"http://{h1['address']}:18081/")
    # an ssh master left running, as Ansible's ControlPersist leaves one
    r = ssh(st, h2["address"], "true", "-o", "ControlMaster=yes", "-o", "ControlPersist=60",
            "-o", f"ControlPath={lab_dir.parent}/cp-%C")
    assert r.returncode == 0, r.stderr
    assert pids.ssh_clients({h2["address"]})
    sshd = st.of("sshd")[0]
    private = Path(f"/proc/{sshd.pid}/mountinfo").read_text()
    assert " /etc " in private and "overlay" in private  # the host's own view, while it runs
    assert main(["lab", "down", "--dir", str(d)]) == 0
    assert "is down" in capsys.readouterr().out
    assert leftovers(st) == []
    assert not (d / state.STATE_NAME).exists() and list(d.iterdir()) == []
    assert main(["lab", "down", "--dir", str(d)]) == 0
    assert "nothing to take down" in capsys.readouterr().out


@pytest.mark.integration
@needs_root
def test_a_lab_whose_processes_were_killed_still_comes_down_whole(lab_dir, capsys):
    st = lab_up(lab_dir)
    h1 = hosts_of(st)[0]
    _run_probe(st, h1, 18082, "probe-killed")
    _answer(f"http://{h1['address']}:18082/")
    doomed = [st.of("dockerd")[0], st.of("sshd")[1], st.of("registry")[0], st.of("etcd")[0]]
    for p in doomed:
        os.kill(p.pid, signal.SIGKILL)
        procs._reap(p.pid, 5)
    assert main(["lab", "status", "--dir", str(st.dir)]) == 1  # some do not answer
    capsys.readouterr()
    assert procs.listening(h1["address"], 18082)  # the container outlived its dockerd
    down(st.dir, say=lambda _line: None)
    assert leftovers(st) == []


@pytest.mark.integration
@needs_root
def test_an_up_killed_half_way_is_taken_down_whole(lab_dir):
    d = lab_dir
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}"}
    p = subprocess.Popen([COCKPIT, "lab", "up", "--hosts", "3", "--dir", str(d)], stdout=subprocess.PIPE, text=True,
                         env=env)
    for line in p.stdout:
        if line.startswith("host "):  # some hosts are up, others on their way
            break
    p.kill()
    p.wait(10)
    st = state.load(d)
    assert st is not None and st.of("netns")
    down(d, say=lambda _line: None)
    assert leftovers(st) == []


@pytest.mark.parametrize("hosts, idcs", [(1, 1), (2, 1), (2, 2), (3, 2), (16, 1), (16, 2)])
def test_every_lab_layout_makes_a_world_that_passes_check(hosts, idcs, tmp_path, capsys):
    from datetime import datetime

    from cockpit.lab import layout

    groups = layout.groups(hosts, idcs)
    names = layout.host_names(groups)
    first = {g.idc for g in groups}
    facts = documents.Facts(tmp_path, groups, names, {n: f"10.251.9.{10 + n}" for n in names},
                            {name: f"unix:///{tmp_path}/h{n}.sock" for n, (name, _) in names.items()},
                            {idc: (documents.registry_name(idc), "10.251.9.1", 5000 + i)
                             for i, idc in enumerate(sorted(first))},
                            tmp_path / "key", 2.0, "http://127.0.0.1:2379")
    world = documents.write(tmp_path / "world.yaml", documents.world(facts, datetime.now().astimezone()), "t")
    assert main(["check", str(world)]) == 0, capsys.readouterr().err
    assert f"hosts       {hosts} in" in capsys.readouterr().out
    cfg = documents.write(tmp_path / "cockpit.yaml", documents.config(facts, world), "t")
    loaded = config.load(str(cfg))
    assert len(loaded.backends["runtime"]["hosts"]) == hosts


# --- bad input -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("args, says", [
    (["--hosts", "0"], "argument --hosts: expected a number of hosts from 1 to 16, got 0"),
    (["--hosts", "17"], "argument --hosts: expected a number of hosts from 1 to 16, got 17"),
    (["--idcs", "3"], "argument --idcs: expected a number of IDCs from 1 to 2, got 3"),
    (["--hosts", "1", "--idcs", "2"], "2 IDCs need at least 2 hosts (one each), got 1"),
    (["--dir", "/etc/cockpit-lab-test"], "/etc/cockpit-lab-test is inside the system directory /etc"),
    (["--dir", "/tmp/cockpit lab test"], "may not hold spaces"),
])
def test_bad_lab_up_input_is_one_line_and_exit_2_and_makes_nothing(args, says, capsys):
    assert main(["lab", "up", *args]) == 2
    err = capsys.readouterr().err
    assert says in err and err.count("\n") == 1
    assert not Path("/etc/cockpit-lab-test").exists() and not Path("/tmp/cockpit lab test").exists()


@needs_root
def test_a_dir_holding_another_labs_state_or_another_file_is_refused(lab_dir, capsys):
    tmp_path = lab_dir.parent
    other = state.State(tmp_path / "other", {"format": state.FORMAT, "bridge": "ckl7", "started_at": "then"})
    other.dir.mkdir()
    other.save()
    assert main(["lab", "up", "--dir", str(other.dir)]) == 2
    assert "holds a lab already (bridge ckl7" in capsys.readouterr().err
    junk = tmp_path / "junk"
    junk.mkdir()
    (junk / state.STATE_NAME).write_text('{"format": "something else"}')
    for verb in ("up", "down", "status"):
        assert main(["lab", verb, "--dir", str(junk)]) == 2
        err = capsys.readouterr().err
        assert "not a lab's state file" in err and err.count("\n") == 1
    assert main(["lab", "status", "--dir", str(tmp_path / "none")]) == 2
    assert "no lab in" in capsys.readouterr().err
    # a state file that would have `down` delete an interface that is not the lab's
    hostile = tmp_path / "hostile"
    hostile.mkdir()
    (hostile / state.STATE_NAME).write_text(json.dumps(
        {"format": state.FORMAT, "lab": {}, "pieces": [{"kind": "veth", "name": "eth0"}]}))
    assert main(["lab", "down", "--dir", str(hostile)]) == 2
    assert "pieces[0] is not a piece of a lab" in capsys.readouterr().err


def test_lab_up_needs_root(lab_dir, capsys, monkeypatch):
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert main(["lab", "up", "--dir", str(lab_dir)]) == 2
    assert "the lab needs root" in capsys.readouterr().err


def test_a_missing_program_names_its_debian_package(lab_dir):
    r = subprocess.run([COCKPIT, "lab", "up", "--dir", str(lab_dir)], capture_output=True, text=True,
                       env={"PATH": str(lab_dir.parent / "empty"), "HOME": str(lab_dir.parent)}, timeout=60)
    assert r.returncode == 2
    if os.geteuid() == 0:  # a user who is not root hears that first
        assert "is not installed (apt-get install " in r.stderr
    assert r.stderr.count("\n") == 1


def test_the_default_dir_is_under_the_data_dir(tmp_path, monkeypatch):
    from cockpit.cli_lab import default_dir

    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    assert default_dir() == tmp_path / "data" / "cockpit" / "lab"


@pytest.mark.integration
@needs_root
def test_a_file_in_the_way_stops_up_which_takes_down_what_it_made_and_leaves_the_file(lab_dir, capsys):
    lab_dir.mkdir(parents=True)
    (lab_dir / "registries").write_text("someone else's\n")
    assert main(["lab", "up", "--dir", str(lab_dir)]) == 2
    out, err = capsys.readouterr()
    assert "registries is in the way" in err and err.count("\n") == 1
    assert (lab_dir / "registries").read_text() == "someone else's\n"
    assert sorted(p.name for p in lab_dir.iterdir()) == ["registries"]
    bridge = out.split()[1].rstrip(":")  # made before the file was met: "bridge    ckl12: ..."
    assert out.startswith("bridge ") and bridge.startswith("ckl")
    assert not Path(f"/sys/class/net/{bridge}").exists()
