"""The simulated discovery store: the twin of etcd or Consul for the simulated platform, in this
process. Upstream members in the same layout, an index that grows with every change, blocking
waits, RPC instances, and locks that lapse `ttl_s` after their last renewal."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from cockpit.backends.discovery import Member, Members, RpcInstance, check_lock_name, check_member, check_name


class SimDiscovery:
    name = "sim"

    def __init__(self, clock=time.monotonic) -> None:
        self._cond = threading.Condition()
        self._members: dict[str, dict[str, Member]] = {}
        self._changed: dict[str, int] = {}  # service -> index of its last change
        self._instances: dict[str, dict[str, RpcInstance]] = {}
        self._locks: dict[str, tuple[str, float]] = {}  # name -> (holder, expires)
        self._index = 1
        self.clock = clock

    def ping(self) -> None:
        return None

    def _bump(self, service: str) -> None:
        self._index += 1
        self._changed[service] = self._index
        self._cond.notify_all()

    def set_member(self, service: str, member: Member) -> None:
        check_name("service", service)
        check_member(member)  # what the real stores refuse, the twin refuses too
        with self._cond:
            self._members.setdefault(service, {})[member.key] = member
            self._bump(service)

    def remove_member(self, service: str, address: str, port: int) -> None:
        with self._cond:
            if self._members.get(service, {}).pop(f"{address}:{port}", None) is not None:
                self._bump(service)

    def members(self, service: str) -> Members:
        with self._cond:
            return self._snapshot(service)

    def _snapshot(self, service: str) -> Members:
        ms = tuple(sorted(self._members.get(service, {}).values(), key=lambda m: m.key))
        return Members(service, ms, self._changed.get(service, 1))

    def wait_members(self, service: str, index: int, wait_s: float) -> Members:
        deadline = time.monotonic() + wait_s
        with self._cond:
            while self._changed.get(service, 1) <= index:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(left)
            return self._snapshot(service)

    def register(self, instance: RpcInstance) -> None:
        for what in ("service", "idc", "id"):
            check_name(what, getattr(instance, what))
        with self._cond:
            self._instances.setdefault(instance.service, {})[instance.id] = instance

    def deregister(self, service: str, instance_id: str) -> None:
        with self._cond:
            self._instances.get(service, {}).pop(instance_id, None)

    def instances(self, service: str) -> list[RpcInstance]:
        with self._cond:
            return sorted(self._instances.get(service, {}).values(), key=lambda i: (i.idc, i.id))

    def lock(self, name: str, holder: str, ttl_s: float) -> SimLock:
        check_lock_name(name)
        return SimLock(self, name, holder, ttl_s)

    def lock_holder(self, name: str) -> str | None:
        with self._cond:
            held = self._locks.get(name)
            return held[0] if held and held[1] > self.clock() else None

    def close(self) -> None:
        return None


@dataclass
class SimLock:
    store: SimDiscovery
    name: str
    holder: str
    ttl_s: float

    def acquire(self) -> bool:
        s = self.store
        with s._cond:
            held = s._locks.get(self.name)
            if held and held[0] != self.holder and held[1] > s.clock():
                return False
            s._locks[self.name] = (self.holder, s.clock() + self.ttl_s)
            return True

    def renew(self) -> bool:
        s = self.store
        with s._cond:
            held = s._locks.get(self.name)
            if not held or held[0] != self.holder or held[1] <= s.clock():
                return False
            s._locks[self.name] = (self.holder, s.clock() + self.ttl_s)
            return True

    def release(self) -> None:
        s = self.store
        with s._cond:
            if s._locks.get(self.name, ("",))[0] == self.holder:
                del s._locks[self.name]
