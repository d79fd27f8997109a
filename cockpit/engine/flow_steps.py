"""Each step of an expansion flow, by name (engine/flow_out.py: scaling out; flow_in.py: scaling
in), and what makes a flow that ended half-way whole (flow_settle.py)."""

from __future__ import annotations

from cockpit.engine.flow_in import deregister, drain, return_hosts, stop
from cockpit.engine.flow_out import (
    dependencies, deploy, discovery, hosts, images, init, quota, resources, schedule,
)
from cockpit.engine.flow_settle import settle

STEPS = {
    "resources": resources, "quota": quota, "hosts": hosts, "init": init, "schedule": schedule, "images": images,
    "deploy": deploy, "dependencies": dependencies, "discovery": discovery,
    "deregister": deregister, "drain": drain, "stop": stop, "return_hosts": return_hosts,
}

__all__ = ["STEPS", "settle", "hosts"]
