"""Finding the lab's processes by PID: the ones it recorded (checked to be the same process, not a
PID reused since), Ansible's ssh clients left behind by ControlPersist, and daemons started in
the lab's directories that a crash kept from being recorded."""

from __future__ import annotations

import os
import signal
import socket
import struct
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from cockpit.lab import procs


def boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def start_time(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (field 22 of /proc/PID/stat)."""
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return None


# What the lab runs: a recorded PID that runs anything else is not the lab's.
PROGRAMS = {"sshd", "dockerd", "docker-registry", "etcd", "nginx"}


def program(pid: int) -> str | None:
    try:
        return os.path.basename(os.readlink(f"/proc/{pid}/exe"))
    except OSError:
        return None


def same(pid: int | None, started: int | None) -> bool:
    """Is `pid` still the lab's process that was recorded: same start time, one of the lab's
    programs, and not a zombie?"""
    return (bool(pid) and started is not None and start_time(pid) == started
            and procs._state(pid) not in (None, "Z") and program(pid) in PROGRAMS)


def mount_ns(pid: int) -> int | None:
    """The inode of the process's mount namespace."""
    try:
        return os.stat(f"/proc/{pid}/ns/mnt").st_ino
    except OSError:
        return None


def in_mount_ns(inodes: set[int]) -> list[int]:
    """Processes in any of these mount namespaces (a namespace lives as long as one does)."""
    return [pid for pid in _pids() if mount_ns(pid) in inodes]


def _argv(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return []


def _pids() -> list[int]:
    return [int(e.name) for e in os.scandir("/proc") if e.name.isdigit()]


def _tcp_peers() -> dict[int, str]:
    """Socket inode -> the remote IPv4 address of each TCP connection in this network namespace."""
    out = {}
    try:
        lines = Path("/proc/net/tcp").read_text().splitlines()[1:]
    except OSError:
        return out
    for line in lines:
        f = line.split()
        if len(f) > 9:
            remote = socket.inet_ntoa(struct.pack("<I", int(f[2].split(":")[0], 16)))
            out[int(f[9])] = remote
    return out


def _socket_inodes(pid: int) -> set[int]:
    out = set()
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if target.startswith("socket:["):
                out.add(int(target[8:-1]))
    except OSError:
        pass
    return out


def ssh_clients(addresses: set[str]) -> list[int]:
    """ssh clients of this machine connected to a lab host, or naming one on their command line.
    Ansible's ControlPersist masters linger for a minute after a run, renamed `ssh: PATH [mux]`:
    they are found by their connection."""
    peers = _tcp_peers()
    out = []
    for pid in _pids():
        if pid == os.getpid():
            continue
        try:
            comm = Path(f"/proc/{pid}/comm").read_text().strip()
        except OSError:
            continue
        if comm != "ssh":
            continue
        named = any(a in addresses or a.rpartition("@")[2] in addresses for a in _argv(pid)[1:])
        if named or any(peers.get(i) in addresses for i in _socket_inodes(pid)):
            out.append(pid)
    return out


def strays(lab_dir: Path, programs: set[str]) -> list[int]:
    """Processes running one of `programs` whose working directory is inside the lab's directory:
    daemons `up` started but died before it could record them."""
    top = os.path.realpath(lab_dir)
    out = []
    for pid in _pids():
        try:
            cwd = os.readlink(f"/proc/{pid}/cwd")
        except OSError:
            continue
        if (cwd == top or cwd.startswith(top + "/")) and program(pid) in programs:
            out.append(pid)
    return out


def kill_now(pids: list[int], timeout_s: float = 5.0) -> list[int]:
    """SIGKILL each; returns those still there after `timeout_s`."""
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + timeout_s
    left = list(pids)
    while left and time.monotonic() < deadline:
        for pid in list(left):
            try:
                os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                pass
            if procs._state(pid) in (None, "Z"):
                left.remove(pid)
        if left:
            time.sleep(0.02)
    return left


def stop_all(pids: list[int], timeout_s: float) -> None:
    """procs.stop_pid on each at once (SIGTERM to its group, SIGKILL after `timeout_s`)."""
    if not pids:
        return
    with ThreadPoolExecutor(max_workers=min(16, len(pids))) as pool:
        list(pool.map(lambda p: procs.stop_pid(p, timeout_s), pids))
