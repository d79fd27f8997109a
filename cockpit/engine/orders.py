"""ECS orders as the facade and the CLI place them: from a template, with its options in order."""

from __future__ import annotations

import time

from cockpit.core.costs import per_hour, per_month
from cockpit.core.ecs_queue import options
from cockpit.domain import Template, World
from cockpit.store.models import EcsOrderRow


class OrderError(ValueError):
    """The order cannot be placed; the message says why."""


def order_options(world: World, template: Template) -> list[list[str]]:
    e = template.ecs
    if e is None:
        raise OrderError(f"template {template.sid} ({template.name}) has no ECS settings")
    cloud = world.idc(e.idc)
    zone_of = {z.name: (set(z.security_groups), set(z.vswitches)) for z in cloud.zones}
    opts = options(list(e.zones), list(e.vswitches), list(e.security_groups), zone_of)
    if not opts:
        raise OrderError(f"template {template.sid}: no zone has both a listed vSwitch and security group")
    return [[o.zone, o.vswitch, o.security_group] for o in opts]


def quote(template: Template, count: int) -> tuple[float, float]:
    """(cost per hour, cost per month) of `count` hosts of the template's ECS charge."""
    c = template.ecs.charge
    return count * per_hour(c.type, c.price), count * per_month(c.type, c.price)


def place_order(world: World, template: Template, count: int, pool: str | None, actor: str, platform_t: float) -> int:
    if not 1 <= count <= 10_000:
        raise OrderError(f"count must be between 1 and 10000, got {count}")
    opts = order_options(world, template)
    pool = pool or template.pool
    if pool not in {p.name for p in world.pools}:
        raise OrderError(f"no pool named {pool!r}")
    e = template.ecs
    return EcsOrderRow.insert(
        sid=template.sid, service=template.service, idc=e.idc, pool=pool, count=count,
        instance_type=e.instance_type, image_id=e.image_id, hardware=e.hardware, charge_type=e.charge.type,
        price=e.charge.price, labels=e.labels, options=opts, state="queued", actor=actor,
        created_t=platform_t, real_created=time.time(),
    ).execute()
