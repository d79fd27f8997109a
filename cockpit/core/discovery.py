"""A caller's view of an RPC service: which IDC answers it and with which instances.

The caller's own IDC answers when it has a healthy instance. When it has none, the call fails
over to the other IDCs in a stated order: the caller's preference list first (in its order),
then every other IDC by name, so no healthy instance is ever out of reach. The first IDC in that
order with a healthy instance answers, with all of its healthy instances.

Instances are anything with `idc`, `id` and `healthy` attributes (backends.discovery.RpcInstance
is one); they come back as they were given, in id order.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class View:
    """Who answers a caller in `own_idc`: `idc` (None when no IDC has a healthy instance) and its
    healthy `instances`; `failed_over` when that is not the caller's own IDC; `order`, the
    failover order (the caller's own IDC first) that was followed."""

    own_idc: str
    idc: str | None
    instances: tuple
    failed_over: bool
    order: tuple[str, ...]

    def describe(self, service: str) -> str:
        """One line for the caller's log and the cockpit's screens."""
        if self.idc is None:
            return f"{service}: no healthy instance in any IDC (tried {', '.join(self.order)})"
        n = len(self.instances)
        where = f"{n} healthy instance{'s' if n != 1 else ''} in {self.idc}"
        if not self.failed_over:
            return f"{service}: {where}, the caller's own IDC"
        return f"{service}: none healthy in {self.own_idc}; failed over to {where}"


def failover_order(own_idc: str, idcs: set | list | tuple, preference: list | tuple = ()) -> tuple[str, ...]:
    """The IDCs a caller in `own_idc` tries, in order: its own, then those of `preference` (in
    that order, each once), then the rest of `idcs` by name."""
    order = [own_idc]
    for idc in preference:
        if idc not in order:
            order.append(idc)
    order.extend(sorted(set(idcs) - set(order)))
    return tuple(order)


def caller_view(instances: list | tuple, own_idc: str, preference: list | tuple = ()) -> View:
    """The IDC that answers a caller in `own_idc`, and its healthy instances."""
    healthy: dict[str, list] = {}
    seen = set()
    for inst in instances:
        seen.add(inst.idc)
        if inst.healthy:
            healthy.setdefault(inst.idc, []).append(inst)
    order = failover_order(own_idc, seen, preference)
    for idc in order:
        if healthy.get(idc):
            found = tuple(sorted(healthy[idc], key=lambda i: i.id))
            return View(own_idc, idc, found, idc != own_idc, order)
    return View(own_idc, None, (), False, order)
