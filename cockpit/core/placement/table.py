"""The hosts a placement sees: capacities and usage as integer arrays.

Usage is kept in integer units (millicores, MiB) so that sums are exact: the fast planner and
the one-by-one reference then compute bit-identical scores, and "identical plans" is a fair
test rather than a float-rounding lottery.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from cockpit.domain import Host, Service

MILLI = 1000  # millicores per core
MIB = 1024  # MiB per GiB


def cpu_units(cores: float) -> int:
    return int(round(cores * MILLI))


def mem_units(gb: float) -> int:
    return int(round(gb * MIB))


@dataclass
class HostTable:
    ids: np.ndarray  # store ids (int64)
    names: list[str]
    idc: np.ndarray  # str
    pool: np.ndarray  # str
    hardware: np.ndarray  # str
    source: np.ndarray  # str
    zone: np.ndarray  # str ("" when none)
    labels: list[dict[str, str]]
    cpu_cap: np.ndarray  # millicores
    mem_cap: np.ndarray  # MiB
    disk_cap: np.ndarray  # MiB
    alive: np.ndarray  # bool
    cpu_used: np.ndarray
    mem_used: np.ndarray
    disk_used: np.ndarray
    services: list[str]  # column order of `counts`
    counts: np.ndarray  # (hosts, services) containers per host and service
    host_ports: dict[str, tuple[int, ...]] = field(default_factory=dict)  # service -> ports it binds
    _label_cols: dict[str, np.ndarray] = field(default_factory=dict, repr=False)
    status: np.ndarray | None = None  # str: ready, or where initialisation is; None: all ready

    @property
    def usable(self) -> np.ndarray:
        """Hosts that can take containers: alive, and initialised."""
        return self.alive if self.status is None else self.alive & (self.status == "ready")

    def __len__(self) -> int:
        return len(self.names)

    @classmethod
    def build(
        cls,
        hosts: list[Host],
        services: Iterable[Service],
        containers: Iterable[tuple[int, str]] = (),
        counted: Iterable[tuple[int, str, int]] = (),
    ) -> HostTable:
        """From hosts, the services' specs, and (host id, service) for every running container,
        or (host id, service, how many) already counted."""
        svc = {s.name: s for s in services}
        names = list(svc)
        col = {n: i for i, n in enumerate(names)}
        n = len(hosts)
        t = cls(
            ids=np.array([h.id for h in hosts], dtype=np.int64),
            names=[h.name for h in hosts],
            idc=np.array([h.idc for h in hosts], dtype=object),
            pool=np.array([h.pool for h in hosts], dtype=object),
            hardware=np.array([h.hardware for h in hosts], dtype=object),
            source=np.array([h.source for h in hosts], dtype=object),
            zone=np.array([h.zone or "" for h in hosts], dtype=object),
            labels=[h.labels for h in hosts],
            cpu_cap=np.array([h.cores * MILLI for h in hosts], dtype=np.int64),
            mem_cap=np.array([h.memory_gb * MIB for h in hosts], dtype=np.int64),
            disk_cap=np.array([h.disk_gb * MIB for h in hosts], dtype=np.int64),
            alive=np.array([h.alive for h in hosts], dtype=bool),
            cpu_used=np.zeros(n, dtype=np.int64),
            mem_used=np.zeros(n, dtype=np.int64),
            disk_used=np.zeros(n, dtype=np.int64),
            services=names,
            counts=np.zeros((n, len(names)), dtype=np.int32),
            host_ports={s.name: s.host_ports for s in svc.values() if s.host_ports},
            status=np.array([h.status for h in hosts], dtype=object),
        )
        index = {h.id: i for i, h in enumerate(hosts)}
        per: dict[tuple[int, int], int] = {}
        for host_id, service in containers:
            key = (index[host_id], col[service])
            per[key] = per.get(key, 0) + 1
        for host_id, service, many in counted:
            key = (index[host_id], col[service])
            per[key] = per.get(key, 0) + many
        if per:
            keys = np.array(list(per), dtype=np.int64)
            k = np.array(list(per.values()), dtype=np.int64)
            rows, cols = keys[:, 0], keys[:, 1]
            t.counts[rows, cols] = k
            specs = [svc[name] for name in names]
            c = np.array([cpu_units(s.cpu) for s in specs], dtype=np.int64)
            m = np.array([mem_units(s.memory_gb) for s in specs], dtype=np.int64)
            d = np.array([mem_units(s.disk_gb) for s in specs], dtype=np.int64)
            cnt = t.counts.astype(np.int64)
            t.cpu_used = cnt @ c
            t.mem_used = cnt @ m
            t.disk_used = cnt @ d
        return t

    def copy(self) -> HostTable:
        """A table whose usage can change without touching this one (static columns are shared)."""
        return HostTable(
            ids=self.ids,
            names=self.names,
            idc=self.idc,
            pool=self.pool,
            hardware=self.hardware,
            source=self.source,
            zone=self.zone,
            labels=self.labels,
            cpu_cap=self.cpu_cap,
            mem_cap=self.mem_cap,
            disk_cap=self.disk_cap,
            alive=self.alive,
            cpu_used=self.cpu_used.copy(),
            mem_used=self.mem_used.copy(),
            disk_used=self.disk_used.copy(),
            services=list(self.services),
            counts=self.counts.copy(),
            host_ports=dict(self.host_ports),
            _label_cols=self._label_cols,
            status=self.status,
        )

    def column(self, service: str) -> int:
        """The counts column of a service, adding an empty one for a service not seen yet."""
        try:
            return self.services.index(service)
        except ValueError:
            self.services.append(service)
            self.counts = np.concatenate([self.counts, np.zeros((len(self), 1), dtype=np.int32)], axis=1)
            return len(self.services) - 1

    def label(self, key: str) -> np.ndarray:
        col = self._label_cols.get(key)
        if col is None:
            col = np.array([lab.get(key) for lab in self.labels], dtype=object)
            self._label_cols[key] = col
        return col
