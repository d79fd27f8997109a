"""Who may do what. Every change to the platform names an action here, with the least role it needs."""

from __future__ import annotations

from dataclasses import dataclass

from cockpit.config import ROLES


@dataclass(frozen=True)
class Action:
    id: str
    title: str
    role: str  # the least role allowed
    confirm: bool  # changes the platform: ask before doing it


ACTIONS: dict[str, Action] = {
    a.id: a
    for a in (
        Action("sim.speed", "Change the platform clock's speed", "operator", False),
        Action("sim.pause", "Pause or resume the platform clock", "operator", False),
        Action("sim.hot_event", "Start a hot event (simulated traffic surge)", "operator", True),
        Action("plan.apply", "Scale: apply a plan", "operator", True),
        Action("service.scale_in", "Scale in: stop containers of a service", "operator", True),
        Action("ecs.order", "Order ECS hosts", "operator", True),
        Action("ecs.pause", "Pause an ECS order", "operator", False),
        Action("ecs.resume", "Resume an ECS order", "operator", False),
        Action("ecs.cancel", "Cancel an ECS order", "operator", True),
        Action("ecs.retry", "Retry an ECS order", "operator", True),
        Action("pool.move", "Move hosts between pools", "operator", True),
        Action("host.release", "Release cloud hosts", "admin", True),
        Action("host.renew", "Renew prepaid hosts", "operator", True),
        Action("init.retry", "Initialise failed hosts again", "operator", False),
        Action("registry.replicate", "Start a replication", "operator", True),
        Action("registry.stop", "Stop a replication", "operator", True),
        Action("scale.pause_rule", "Pause or resume an autoscaling rule", "operator", True),
        Action("scale.edit_rule", "Edit an autoscaling rule", "operator", True),
        Action("flow.start", "Start an expansion flow (scale out or in)", "operator", True),
        Action("flow.pause", "Pause a flow", "operator", False),
        Action("flow.resume", "Resume a flow", "operator", False),
        Action("flow.stop", "Stop a flow", "operator", True),
    )
}


def refusal(action_id: str, *, role: str, readonly: bool) -> str | None:
    """Why this user may not do this now, or None when they may."""
    action = ACTIONS[action_id]
    if readonly:
        return "read-only mode: no changes"
    if ROLES.index(role) < ROLES.index(action.role):
        return f"needs role {action.role}; you are {role}"
    return None


@dataclass(frozen=True)
class Outcome:
    ok: bool
    message: str
    task: int | None = None  # the task the action queued, if any
    refused: bool = False  # not allowed (role, read-only), rather than tried and failed
