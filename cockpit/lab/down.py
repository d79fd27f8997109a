"""`lab down`: take away everything the state file names, whatever state the lab is in.

1. each dockerd's containers are killed through its API, so the daemon stops at once;
2. every recorded process is stopped by PID (SIGTERM to its group, SIGKILL after a while), if
   it is still the process recorded (same start time, same boot);
3. ssh clients of this machine still connected to a lab host (Ansible's ControlPersist masters),
   daemons started in the lab's directories but never recorded, and whatever still runs in a
   host's network namespace (containers, shims, ssh sessions) are killed by PID;
4. mounts below the lab's directory (dockerd leaves its exec root's netns mount behind, even
   stopped cleanly) are detached; the hosts' own mounts lived in their sshd's mount namespace
   and went with it (checked: no process is left in one);
5. the veths, namespaces and the bridge are deleted, and the files and directories the lab made;
6. what is left is checked; only when nothing is does the state file go. Repeating is safe.
"""

from __future__ import annotations

import os
import shutil
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from cockpit.lab import netns, pids, state
from cockpit.lab.procs import LabError
from cockpit.lab.state import State

PROCESS_KINDS = ("nginx", "etcd", "registry", "sshd", "dockerd")
DAEMONS = {"dockerd", "containerd", "containerd-shim-runc-v2", "docker-registry", "etcd", "nginx", "sshd"}


def down(d: Path, say: Callable[[str], None] = print) -> None:
    d = Path(os.path.realpath(d))
    st = state.load(d)
    if st is None:
        say(f"no lab in {d}: nothing to take down")
        return
    if os.geteuid() != 0:
        raise LabError("taking a lab down needs root: its namespaces, interfaces and processes are root's")
    same_boot = st.lab.get("boot_id") == pids.boot_id()
    _stop_processes(st, same_boot, say)
    _sweep(st, d, say)
    _unmount_below(d, say)
    for p in reversed(st.of("veth")):  # first: deleting this end takes the pair away at once
        netns.delete_link(p.name)
    for p in reversed(st.of("netns")):
        netns.delete_netns(p.name)
    for p in st.of("bridge"):
        netns.delete_link(p.name)
    left = remains(st, same_boot)
    deadline = time.monotonic() + 3.0
    private = {p.inode for p in st.of("sshd") if p.inode}
    while left and time.monotonic() < deadline:  # the kernel tears namespaces down in the background
        # a session the hosts' sshd forked while the sweep ran holds a mount namespace: it goes too
        pids.kill_now(pids.in_mount_ns(private), timeout_s=0.5)
        time.sleep(0.05)
        left = remains(st, same_boot)
    if left:
        raise LabError(f"lab in {d} is not all down: {'; '.join(left)} (the state file is kept: run down again)")
    _remove_paths(st, d)
    st.remove()
    say(f"lab in {d} is down ({len(st.pieces)} pieces)")


def _stop_processes(st: State, same_boot: bool, say: Callable[[str], None]) -> None:
    live = [p for p in st.pieces if p.kind in PROCESS_KINDS and same_boot and pids.same(p.pid, p.started)]
    daemons = [p.url for p in live if p.kind == "dockerd" and p.url]
    if daemons:
        with ThreadPoolExecutor(max_workers=min(16, len(daemons))) as pool:
            list(pool.map(_kill_containers, daemons))
    pids.stop_all([p.pid for p in live], timeout_s=5.0)
    if live:
        kinds = Counter(p.kind for p in live)
        say(f"stopped   {len(live)} processes: " + ", ".join(f"{n} {k}" for k, n in sorted(kinds.items())))


def _kill_containers(url: str) -> None:
    """Best effort: a dockerd that does not answer is stopped by its PID anyway."""
    import docker

    try:
        client = docker.DockerClient(base_url=url, version="1.41", timeout=3)
    except docker.errors.DockerException:
        return
    try:
        for c in client.api.containers(quiet=True):
            try:
                client.api.kill(c["Id"])
            except docker.errors.DockerException:
                continue
    except Exception:  # noqa: BLE001 - whatever the daemon says, it is stopped next
        pass
    finally:
        client.close()


def _sweep(st: State, d: Path, say: Callable[[str], None]) -> None:
    addresses = {p.address for p in st.of("netns") if p.address}
    found = pids.ssh_clients(addresses) if addresses else []
    found += pids.strays(d, DAEMONS)
    for p in st.of("netns"):  # only while the namespace is the one recorded: its inode may be reused later
        if p.inode and netns.netns_inode(p.name) == p.inode:
            found += netns.pids_in_netns(p.inode)
    found = sorted(set(found) - {os.getpid()})
    if found:
        left = pids.kill_now(found)
        say(f"killed    {len(found) - len(left)} leftover processes (ssh clients, containers, sessions)")


def lab_mounts(d: Path) -> list[str]:
    """Mount points of this mount namespace at or below `d`, deepest first."""
    from cockpit.lab.confine import mountinfo

    top = str(d)
    points = [m for m, _ in mountinfo() if m == top or m.startswith(top + "/")]
    return sorted(set(points), key=lambda m: (-m.count("/"), m))


def _unmount_below(d: Path, say: Callable[[str], None]) -> None:
    from cockpit.lab.confine import ConfineError, umount

    points = lab_mounts(d)
    for m in points:
        try:
            umount(m)
        except ConfineError:
            continue
    if points:
        say(f"unmounted {len(points)} mounts left below {d}")


def remains(st: State, same_boot: bool) -> list[str]:
    """What of the lab is still there: processes, namespaces, links, mounts."""
    left = []
    alive = [p for p in st.pieces if p.kind in PROCESS_KINDS and same_boot and pids.same(p.pid, p.started)]
    left += [f"{p.kind} {p.name} (pid {p.pid})" for p in alive]
    left += [f"network namespace {p.name}" for p in st.of("netns") if netns.netns_exists(p.name)]
    left += [f"interface {p.name}" for p in st.of("veth") + st.of("bridge") if netns.link_exists(p.name)]
    left += [f"mount {m}" for m in lab_mounts(st.dir)]
    # The hosts' overlays lived in their sshd's mount namespace: gone once no process is in it.
    private = {p.inode for p in st.of("sshd") if p.inode}
    left += [f"process {pid} in a lab host's mount namespace" for pid in pids.in_mount_ns(private)]
    return left


def _remove_paths(st: State, d: Path) -> None:
    for p in reversed(st.of("path")):
        path = Path(p.path or "")
        if not path.is_absolute() or not str(path).startswith(str(d) + "/"):
            continue  # only what the lab made inside its directory
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)

