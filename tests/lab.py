"""Fixtures and helpers for the lab's tests: a lab brought up in a temporary directory (root
only), ssh to its hosts with its key, and what a lab may have left behind."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from contextlib import contextmanager
from collections.abc import Iterator
from pathlib import Path

import pytest

from cockpit.lab import netns, pids, state
from cockpit.lab.down import down, lab_mounts
from cockpit.lab.state import State
from cockpit.lab.up import up

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces and mounts: root only")


def lab_up(d: Path, hosts: int = 2, idcs: int = 1) -> State:
    lines: list[str] = []
    up(d, hosts, idcs, say=lines.append)
    st = state.load(d)
    assert st is not None
    return st


@contextmanager
def short_dir() -> Iterator[Path]:
    """A temporary directory for a lab, with a short path: containerd's sockets go below it and
    pytest's own temporary paths are too long for them."""
    top = Path(tempfile.mkdtemp(prefix="ckl-", dir="/tmp"))
    try:
        yield top / "lab"
    finally:
        if (top / "lab" / state.STATE_NAME).exists():  # a test that failed half-way: its lab goes too
            down(top / "lab", say=lambda _line: None)
        shutil.rmtree(top, ignore_errors=True)


@pytest.fixture
def lab_dir() -> Iterator[Path]:
    with short_dir() as d:
        yield d


@pytest.fixture(scope="module")
def lab() -> Iterator[State]:
    """A lab of 2 hosts in one IDC, shared by a module's tests that only read it."""
    with short_dir() as d:
        yield lab_up(d)


def hosts_of(st: State) -> list[dict]:
    return st.lab["hosts"]


def ssh(st: State, address: str, command: str, *extra: str, timeout_s: float = 20) -> subprocess.CompletedProcess:
    """ssh as root to a lab host with the lab's key, checking its host key against the lab's
    known_hosts; no ssh config of this machine."""
    argv = ["ssh", "-F", "none", "-i", st.lab["private_key"], "-o", f"UserKnownHostsFile={st.lab['known_hosts']}",
            "-o", "BatchMode=yes", "-o", "ConnectTimeout=5", *extra, f"root@{address}", command]
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout_s)


def leftovers(st: State) -> list[str]:
    """Everything of this lab still on the machine: recorded processes (same start time), processes
    in its hosts' network or mount namespaces, its namespaces and interfaces, mounts below its
    directory, daemons whose working directory is inside it, ssh clients to its hosts."""
    out = [f"{p.kind} {p.name} pid {p.pid}" for p in st.pieces if p.pid and pids.same(p.pid, p.started)]
    ns_names = set(subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout.split())
    out += [f"netns {p.name}" for p in st.of("netns") if p.name in ns_names]
    links = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True).stdout
    prefix = st.lab.get("bridge", "?")
    out += [f"link {line.split(':')[1].strip()}" for line in links.splitlines()
            if line.split(":")[1].strip().split("@")[0] == prefix
            or line.split(":")[1].strip().startswith(prefix + "h")]
    for p in st.of("netns"):
        out += [f"pid {pid} in netns {p.name}" for pid in (netns.pids_in_netns(p.inode) if p.inode else [])]
    out += [f"mount {m}" for m in lab_mounts(st.dir)]
    mnt = {p.inode for p in st.of("sshd") if p.inode}
    out += [f"pid {pid} in a host's mount namespace" for pid in pids.in_mount_ns(mnt)]
    out += [f"pid {pid} with its cwd in the lab" for pid in pids.strays(st.dir, {"dockerd", "containerd",
            "containerd-shim-runc-v2", "docker-registry", "etcd", "nginx", "sshd", "busybox"})]
    addresses = {h["address"] for h in st.lab.get("hosts", [])} or {p.address for p in st.of("netns") if p.address}
    out += [f"ssh client pid {pid}" for pid in pids.ssh_clients(addresses)]
    return out
