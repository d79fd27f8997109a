"""Hosts that went down, in discovery: their containers' upstream members are marked `down` (nginx
sends them nothing) and their RPC instances unhealthy (callers fail over), until the host is
back. The engine's health (on real engines, their answers) decides; this only follows it."""

from __future__ import annotations

import logging
import time
from dataclasses import replace

from cockpit.backends.discovery import DiscoveryError, Member
from cockpit.store.models import ContainerRow, HostRow

log = logging.getLogger(__name__)
EVERY_S = 1.0


class DeadHosts:
    def __init__(self, discovery, kinds: dict[str, str]):
        self.discovery = discovery
        self.kinds = kinds  # service -> http | rpc | batch
        self.down: set[int] = set()  # host ids marked down in discovery
        self._last = 0.0

    def step(self) -> None:
        """At most every EVERY_S: mark what changed since the last look. A mark that fails is
        tried again next time (the host stays out of `down` until it took)."""
        if time.monotonic() - self._last < EVERY_S:
            return
        self._last = time.monotonic()
        now_down = {i for (i,) in HostRow.select(HostRow.id).where(
            ~HostRow.alive & HostRow.released_t.is_null()).tuples()}
        for host_ids, down in ((now_down - self.down, True), (self.down - now_down, False)):
            if host_ids and self._mark(sorted(host_ids), down):
                self.down = (self.down | set(host_ids)) if down else (self.down - set(host_ids))

    def _mark(self, host_ids: list[int], down: bool) -> bool:
        q = ContainerRow.select(ContainerRow.service, ContainerRow.name, ContainerRow.idc, ContainerRow.address,
                                ContainerRow.ports).where(ContainerRow.host.in_(host_ids)
                                                          & (ContainerRow.state == "running"))
        try:
            for service, name, idc, address, ports in q.tuples():
                kind = self.kinds.get(service)
                if not address or not ports:
                    continue
                if kind == "http":
                    self.discovery.set_member(service, Member(address, int(ports[0][1]), down=down))
                elif kind == "rpc":
                    for inst in self.discovery.instances(service):
                        if inst.id == name and inst.healthy == down:
                            self.discovery.register(replace(inst, healthy=not down))
        except DiscoveryError as e:
            log.warning("marking hosts %s in discovery: %s", "down" if down else "up", e)
            return False
        return True
