"""The lab's network: a bridge in this machine's namespace with a private /24, and one network
namespace per host joined to it by a veth pair.

Names and the subnet follow from the lab's id (1..250): bridge `ckl<id>`, host n's namespace and
its veth (this side) `ckl<id>h<n>` (at most 10 characters: interface names have 15), the subnet
10.251.<id>.0/24 with the bridge at .1 and host n at .(10+n). Several labs run at once (the tests
under pytest-xdist): an id is claimed by creating its bridge, which the kernel does for one
caller only, and kept only if no address or route of this machine already overlaps its subnet.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import os
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cockpit.lab.procs import LabError, need

NET_BASE = "10.251"
IDS = range(1, 251)
NETNS_DIR = Path("/run/netns")


@dataclass(frozen=True)
class Claim:
    id: int

    @property
    def bridge(self) -> str:
        return f"ckl{self.id}"

    @property
    def subnet(self) -> ipaddress.IPv4Network:
        return ipaddress.IPv4Network(f"{NET_BASE}.{self.id}.0/24")

    @property
    def gateway(self) -> str:
        return f"{NET_BASE}.{self.id}.1"

    def host_address(self, n: int) -> str:
        return f"{NET_BASE}.{self.id}.{10 + n}"

    def host_netns(self, n: int) -> str:
        return f"ckl{self.id}h{n}"

    def host_veth(self, n: int) -> str:
        return f"ckl{self.id}h{n}"


def ip(*args: str, check: bool = True, input_: str | None = None) -> subprocess.CompletedProcess:
    r = subprocess.run([need("ip", "iproute2"), *args], capture_output=True, text=True, timeout=30, input=input_)
    if check and r.returncode != 0:
        lines = (r.stderr or r.stdout).strip().splitlines()
        raise LabError(f"ip {' '.join(args)}: {lines[-1] if lines else 'failed'}")
    return r


def used_networks() -> list[ipaddress.IPv4Network]:
    """Every IPv4 network this machine's namespace has an address in or a route to."""
    nets = []
    for a in json.loads(ip("-j", "-4", "addr", "show").stdout or "[]"):
        for info in a.get("addr_info", []):
            nets.append(ipaddress.IPv4Network(f"{info['local']}/{info['prefixlen']}", strict=False))
    for r in json.loads(ip("-j", "-4", "route", "show", "table", "all").stdout or "[]"):
        dst = r.get("dst", "default")
        if dst not in ("default", "broadcast") and r.get("type", "unicast") == "unicast":
            try:
                nets.append(ipaddress.IPv4Network(dst if "/" in dst else f"{dst}/32", strict=False))
            except ValueError:
                continue
    return nets


def link_exists(name: str) -> bool:
    return Path(f"/sys/class/net/{name}").exists()


def netns_exists(name: str) -> bool:
    return (NETNS_DIR / name).exists()


def claim(key: str, record: Callable[[Claim], None]) -> Claim:
    """A free lab id: its bridge made (up, with the gateway address), and `record` told as soon
    as the bridge exists. The search starts at a place that follows from `key` (the lab's
    directory), so labs started together rarely meet."""
    start = int.from_bytes(hashlib.sha256(key.encode()).digest()[:4], "big") % len(IDS)
    for i in range(len(IDS)):
        c = Claim(IDS[(start + i) % len(IDS)])
        if link_exists(c.bridge):
            continue
        r = ip("link", "add", c.bridge, "type", "bridge", check=False)
        if r.returncode != 0:  # another lab took it first
            continue
        if any(c.subnet.overlaps(n) for n in used_networks()):
            ip("link", "del", c.bridge, check=False)
            continue
        record(c)
        ip("addr", "add", f"{c.gateway}/24", "dev", c.bridge)
        ip("link", "set", c.bridge, "up")
        return c
    raise LabError(f"no free lab subnet in {NET_BASE}.1.0 to {NET_BASE}.250.0 (every /24 is in use or claimed)")


def add_host(c: Claim, n: int) -> tuple[str, str, str]:
    """Host n's namespace, its veth into the bridge and its address: (netns, veth, address).
    The namespace side is `eth0`."""
    ns, veth, address = c.host_netns(n), c.host_veth(n), c.host_address(n)
    ip("netns", "add", ns)
    ip("link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns)
    ip("link", "set", veth, "master", c.bridge, "up")
    ip("-n", ns, "addr", "add", f"{address}/24", "dev", "eth0")
    ip("-n", ns, "link", "set", "eth0", "up")
    ip("-n", ns, "link", "set", "lo", "up")
    return ns, veth, address


def netns_inode(name: str) -> int | None:
    try:
        return os.stat(NETNS_DIR / name).st_ino
    except OSError:
        return None


def pids_in_netns(inode: int) -> list[int]:
    """Every process whose network namespace is this one (a container's, a shim's, an ssh session's);
    never this machine's own namespace."""
    if inode == os.stat("/proc/self/ns/net").st_ino:
        raise LabError("refusing to look for a lab host's processes in this machine's own network namespace")
    out = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            if os.stat(f"/proc/{entry.name}/ns/net").st_ino == inode:
                out.append(int(entry.name))
        except OSError:
            continue
    return out


def delete_netns(name: str) -> None:
    if netns_exists(name):
        ip("netns", "del", name, check=False)


def delete_link(name: str) -> None:
    if link_exists(name):
        ip("link", "del", name, check=False)
