"""One Textual screen per module. VIEWS maps `:name` to the screen, imported when first used."""

from __future__ import annotations

import importlib

# name -> (module, class). Later views add a line here.
VIEWS: dict[str, tuple[str, str]] = {
    "dashboard": ("cockpit.screens.dashboard", "DashboardScreen"),
    "hosts": ("cockpit.screens.hosts", "HostsScreen"),
    "plan": ("cockpit.screens.plan", "PlanScreen"),
    "ecs": ("cockpit.screens.ecs", "EcsScreen"),
    "costs": ("cockpit.screens.costs", "CostsScreen"),
    "registry": ("cockpit.screens.registry", "RegistryScreen"),
    "scale": ("cockpit.screens.scale", "ScaleScreen"),
    "tasks": ("cockpit.screens.tasks", "TasksScreen"),
    "services": ("cockpit.screens.services", "ServicesScreen"),
    "events": ("cockpit.screens.events", "EventsScreen"),
    "audit": ("cockpit.screens.audit", "AuditScreen"),
    "backends": ("cockpit.screens.backends", "BackendsScreen"),
}


def view_class(name: str):
    module, cls = VIEWS[name]
    return getattr(importlib.import_module(module), cls)


def resolve(text: str) -> str | None:
    """A view name from what the user typed: a name, an alias, or an unambiguous prefix."""
    t = text.strip().lower().lstrip(":")
    if not t:
        return None
    if t in VIEWS:
        return t
    for name in VIEWS:
        if t in view_class(name).ALIASES:
            return name
    starts = [n for n in VIEWS if n.startswith(t)]
    return starts[0] if len(starts) == 1 else None
