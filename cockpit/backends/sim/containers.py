"""The simulated container runtime: containers start at once, keep their name, address and
published ports, and every call may be repeated (the twin of a Docker Engine per host)."""

from __future__ import annotations

import itertools
import threading
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import replace

from cockpit.backends.base import ContainerError, ContainerInfo, ContainerSpec
from cockpit.core.addressing import AddressError, publish


class SimContainers:
    def __init__(self, known: Iterable[ContainerInfo] = ()) -> None:
        """`known`: the containers the store says run (an engine that starts on a platform that
        is already running adopts them, so they can be inspected, stopped and removed)."""
        self._by_name: dict[str, ContainerInfo] = {}
        self._ports: dict[str, set[int]] = defaultdict(set)  # host -> host ports in use
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self.unreachable: set[str] = set()  # hosts whose engine does not answer (a host's dockerd down)
        self.calls = 0  # calls answered, for tests and benchmarks
        for c in known:
            self._keep(c)

    def _reach(self, host: str) -> None:
        if host in self.unreachable:
            raise ContainerError(host, "the container engine does not answer", transient=True)
        self.calls += 1

    def _keep(self, c: ContainerInfo) -> None:
        self._by_name[c.name] = c
        self._ports[c.host].update(hp for _, hp in c.ports)

    def start(self, spec: ContainerSpec) -> ContainerInfo:
        with self._lock:
            self._reach(spec.host)
            have = self._by_name.get(spec.name)
            if have is not None:
                if have.host != spec.host:
                    raise ContainerError(spec.host, f"a container named {spec.name} runs on {have.host}")
                if have.state != "running":
                    have = replace(have, state="running")
                    self._by_name[spec.name] = have
                return have
            try:
                ports = publish(spec.ports, spec.host_ports, self._ports[spec.host])
            except AddressError as e:
                raise ContainerError(spec.host, str(e)) from None
            c = ContainerInfo(spec.name, spec.host, spec.service, f"sim-{next(self._ids):08x}", "running",
                              spec.host_address, tuple((cp, hp) for cp, hp in ports))
            self._by_name[spec.name] = c
            return c

    def stop(self, host: str, name: str, timeout_s: float = 10.0) -> None:
        with self._lock:
            self._reach(host)
            c = self._by_name.get(name)
            if c is not None and c.host == host and c.state == "running":
                self._by_name[name] = replace(c, state="exited")

    def remove(self, host: str, name: str) -> None:
        with self._lock:
            self._reach(host)
            c = self._by_name.get(name)
            if c is None or c.host != host:
                return
            if c.state == "running":
                raise ContainerError(host, f"container {name} is running: stop it first")
            del self._by_name[name]
            self._ports[host].difference_update(hp for _, hp in c.ports)

    def inspect(self, host: str, name: str) -> ContainerInfo | None:
        with self._lock:
            self._reach(host)
            c = self._by_name.get(name)
            return c if c is not None and c.host == host else None

    def list(self, host: str) -> list[ContainerInfo]:
        with self._lock:
            self._reach(host)
            return sorted((c for c in self._by_name.values() if c.host == host), key=lambda c: c.name)
