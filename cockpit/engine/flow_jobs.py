"""The engine's expansion flows, mixed into Engine: the discovery store, this engine's candidacy
for each IDC's scheduling manager, and the loop that carries the flows forward."""

from __future__ import annotations

import httpx

from cockpit.engine.flow import FlowCtx, FlowRunner
from cockpit.engine.managers import FlowLoop, Managers

READY_WAIT_S = 20.0


def http_ready(address: str, port: int, wait_s: float = READY_WAIT_S) -> str | None:
    """None once http://address:port/ answers (any status below 500), else why not, in words."""
    import time

    deadline, why = time.monotonic() + wait_s, "no answer"
    while time.monotonic() < deadline:
        try:
            r = httpx.get(f"http://{address}:{port}/", timeout=1.0)
            if r.status_code < 500:
                return None
            why = f"HTTP {r.status_code}"
        except httpx.HTTPError as e:
            why = type(e).__name__
        time.sleep(0.1)
    return f"{address}:{port} did not answer within {wait_s:g} s ({why})"


def fill_discovery(d) -> None:
    """The simulated store holds what runs, as a real one would: each running container of an
    HTTP service in its upstreams, of an RPC service in its IDC."""
    from cockpit.backends.discovery import Member, RpcInstance
    from cockpit.store.models import ContainerRow, ServiceRow

    kinds = dict(ServiceRow.select(ServiceRow.name, ServiceRow.kind).tuples())
    q = ContainerRow.select(ContainerRow.service, ContainerRow.name, ContainerRow.idc, ContainerRow.address,
                            ContainerRow.ports).where(ContainerRow.state == "running")
    for service, name, idc, address, ports in q.tuples():
        if not address or not ports:
            continue
        if kinds.get(service) == "http":
            d.set_member(service, Member(address, int(ports[0][1])))
        elif kinds.get(service) == "rpc":
            d.register(RpcInstance(service, idc, name, address, int(ports[0][1]), (f"idc:{idc}",)))


class FlowJobs:
    def _start_flows(self) -> None:
        if self.discovery is None:
            from cockpit.backends.sim.discovery import SimDiscovery

            self.discovery = SimDiscovery()
            fill_discovery(self.discovery)
        ctx = FlowCtx(self.world, self.lease.fenced, self.platform_now, self.real_clock, self.runtime, self.discovery,
                      ready=http_ready if self.ready_checks else None, front=self.front)
        idcs = sorted({i.name for i in self.world.idcs})
        self.managers = Managers(self.discovery, idcs, self.lease.id, ttl_s=self.manager_ttl_s)
        from cockpit.engine.dead_hosts import DeadHosts

        dead = DeadHosts(self.discovery, {s.name: s.kind for s in self.world.services})
        self.flows = FlowLoop(self.db, FlowRunner(ctx), self.managers, dead_hosts=dead, health=self.backend_health)
        self.flows.start()
        self._start_front()

    def _start_front(self) -> None:
        """The front door follows discovery, as nginx-upsync-module does: each HTTP service's
        members pushed to nginx, the last list dumped so it still has them with discovery away."""
        if self.front is None:
            return
        from cockpit.backends.upstream_sync import UpstreamSync

        http = [s.name for s in self.world.services if s.kind == "http"]
        dump = getattr(self.front, "prefix", None)
        self.upstream_sync = UpstreamSync(self.discovery, self.front, http,
                                          dump_dir=(dump / "upstreams-dump") if dump else None).start()

    def _stop_flows(self) -> None:
        if self.upstream_sync is not None:
            self.upstream_sync.stop()
            self.upstream_sync = None
        if self.flows is not None:
            self.flows.stop()
            self.flows = None

    def kick_flows(self) -> None:
        if self.flows is not None:
            self.flows.kick()
