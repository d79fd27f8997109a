"""What a placement is asked to do."""

from __future__ import annotations

from dataclasses import dataclass

from cockpit.core.placement.table import cpu_units, mem_units
from cockpit.domain import Constraint, Service

STRATEGIES = ("spread", "binpack", "random", "custom")


@dataclass(frozen=True)
class Request:
    service: str
    count: int
    cpu: int  # millicores per container
    mem: int  # MiB
    disk: int  # MiB
    idc: str | None = None
    pool: str | None = None
    strategy: str = "spread"
    constraints: tuple[Constraint, ...] = ()
    only_with: tuple[str, ...] = ()
    never_with: tuple[str, ...] = ()
    max_per_host: int | None = None
    host_ports: tuple[int, ...] = ()
    weights: tuple[tuple[str, float], ...] = ()  # custom: (scorer name, weight)
    seed: int = 0

    @classmethod
    def for_service(
        cls,
        svc: Service,
        count: int,
        *,
        idc: str | None = None,
        pool: str | None = None,
        strategy: str = "spread",
        extra: tuple[Constraint, ...] = (),
        weights: tuple[tuple[str, float], ...] = (),
        seed: int = 0,
    ) -> Request:
        """The service's own rules plus any extra constraints the user adds."""
        return cls(
            service=svc.name,
            count=count,
            cpu=cpu_units(svc.cpu),
            mem=mem_units(svc.memory_gb),
            disk=mem_units(svc.disk_gb),
            idc=idc,
            pool=pool if pool is not None else svc.pool,
            strategy=strategy,
            constraints=svc.rules.constraints + tuple(extra),
            only_with=svc.rules.only_with,
            never_with=svc.rules.never_with,
            max_per_host=svc.rules.max_per_host,
            host_ports=svc.host_ports,
            weights=weights,
            seed=seed,
        )
