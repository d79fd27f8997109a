"""Service discovery: what every discovery backend (etcd, Consul) offers the engine and nginx.

HTTP services: each service's upstream members live under `upstreams/<service>/<address:port>`,
the key layout of nginx-upsync-module, each value a JSON object of the member's parameters
(`weight`, `max_fails`, `fail_timeout`, `down`, `backup`). A front door follows them.

RPC services: instances registered per IDC with tags; a caller's view (core/discovery.py) prefers
its own IDC and fails over to another.

Locks: a named lock held through a lease (etcd) or a session (Consul) that lapses `ttl_s` after
the holder stops renewing it; the scheduling managers' election stands on it.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Protocol

UPSTREAMS = "upstreams"  # the key prefix nginx-upsync-module reads


class DiscoveryError(Exception):
    """The discovery store refused or could not be reached, as one line naming it.
    `transient`: trying again may work (the store is down or slow)."""

    def __init__(self, backend: str, message: str, transient: bool = False):
        super().__init__(f"{backend}: {message}")
        self.backend = backend
        self.message = message
        self.transient = transient


@dataclass(frozen=True)
class Member:
    """One upstream member, with nginx-upsync-module's parameters."""

    address: str
    port: int
    weight: int = 1
    max_fails: int = 2
    fail_timeout: int = 10
    down: bool = False
    backup: bool = False

    @property
    def key(self) -> str:
        return f"{self.address}:{self.port}"

    def value(self) -> str:
        return json.dumps({"weight": self.weight, "max_fails": self.max_fails, "fail_timeout": self.fail_timeout,
                           "down": int(self.down), "backup": int(self.backup)}, sort_keys=True)

    @classmethod
    def parse(cls, key: str, value: bytes | str | None) -> Member:
        """A member from its key (`address:port`) and value (JSON, or empty for defaults)."""
        address, _, port = key.rpartition(":")
        if not address or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"upstream member {key!r}: not address:port")
        raw = value.decode() if isinstance(value, bytes) else (value or "")
        d = json.loads(raw) if raw.strip() else {}
        if not isinstance(d, dict):
            raise ValueError(f"upstream member {key!r}: the value is not a JSON object")
        return cls(address, int(port), int(d.get("weight", 1)), int(d.get("max_fails", 2)),
                   int(d.get("fail_timeout", 10)), bool(d.get("down", 0)), bool(d.get("backup", 0)))


def member_key(service: str, member: Member) -> str:
    return f"{UPSTREAMS}/{service}/{member.key}"


_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
_ADDRESS = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.:_-]{0,252}$")


def check_name(what: str, value: str) -> str:
    """`value` as one segment of a key (a service, an IDC, an instance id, a lock's name): letters,
    digits, `_.-`, up to 128; ValueError naming `what` otherwise. A `/` would break the layout
    and `..` is refused by Consul's key checks."""
    if not isinstance(value, str) or not _NAME.match(value) or ".." in value:
        raise ValueError(f"{what} {value!r}: expected letters, digits and _.- (up to 128, no '..')")
    return value


def check_lock_name(name: str) -> str:
    """A lock's name: names as `check_name` wants them, joined by `/` (`scheduler/<idc>`)."""
    if not isinstance(name, str) or len(name) > 256 or not all(
            _NAME.match(part) and ".." not in part for part in name.split("/")):
        raise ValueError(f"lock {name!r}: expected names of letters, digits and _.- joined by '/'")
    return name


def check_member(member: Member) -> Member:
    """A member whose key nginx-upsync-module can read back (`address:port`); ValueError otherwise."""
    if not isinstance(member.address, str) or not _ADDRESS.match(member.address) or ".." in member.address:
        raise ValueError(f"upstream member address {member.address!r}: expected a host name or an IP address")
    if not isinstance(member.port, int) or not 0 < member.port < 65536:
        raise ValueError(f"upstream member {member.address}: port {member.port!r} is not 1-65535")
    return member


@dataclass(frozen=True)
class Members:
    """A service's members as of `index` (etcd's revision, Consul's X-Consul-Index): a later
    `wait_members(service, index)` returns once they change."""

    service: str
    members: tuple[Member, ...]
    index: int


@dataclass(frozen=True)
class RpcInstance:
    service: str
    idc: str
    id: str  # unique per service: a container's name
    address: str
    port: int
    tags: tuple[str, ...] = ()
    healthy: bool = True
    meta: dict = field(default_factory=dict, compare=False, hash=False)


class Lock(Protocol):
    """One holder's hold on a named lock."""

    name: str
    holder: str

    def acquire(self) -> bool:
        """Take the lock if it is free (or already ours); False when another holds it."""
        ...

    def renew(self) -> bool:
        """Keep the lock; False when it lapsed (another may hold it now)."""
        ...

    def release(self) -> None: ...


class Discovery(Protocol):
    """A discovery store. Every call may raise DiscoveryError; none blocks past its timeout,
    except `wait_members`, which blocks up to `wait_s`."""

    name: str

    def ping(self) -> None: ...

    # HTTP services: upstream members in nginx-upsync-module's layout
    def set_member(self, service: str, member: Member) -> None: ...

    def remove_member(self, service: str, address: str, port: int) -> None:
        """Removing a member that is not there is done."""
        ...

    def members(self, service: str) -> Members: ...

    def wait_members(self, service: str, index: int, wait_s: float) -> Members:
        """The members once they differ from `index`, or as they are after `wait_s`."""
        ...

    # RPC services
    def register(self, instance: RpcInstance) -> None: ...

    def deregister(self, service: str, instance_id: str) -> None:
        """Deregistering an instance that is not there is done."""
        ...

    def instances(self, service: str) -> list[RpcInstance]: ...

    # locks
    def lock(self, name: str, holder: str, ttl_s: float) -> Lock: ...

    def lock_holder(self, name: str) -> str | None:
        """Who holds the lock now, or None."""
        ...

    def close(self) -> None: ...
