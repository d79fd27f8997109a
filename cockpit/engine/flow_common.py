"""What the steps of an expansion flow share (engine/flow_out.py, flow_in.py, flow_settle.py):
reading the platform, moving items on from one step to the next, and the limits they keep."""

from __future__ import annotations

from cockpit.engine.flow import FlowError, FlowRunner
from cockpit.store.models import FlowItemRow

FINAL = ("done", "failed", "cancelled")
IMAGE_WAIT_S = 600.0  # real seconds an image may take to reach an IDC's registry
STOP_GRACE_S = 3.0  # after deregistering and draining, a container has nothing left to finish
FRONT_WAIT_S = 30.0  # how long the front door may lag behind discovery before a shrink gives up


def _service(name: str):
    from cockpit.engine.state import current_table

    table, services, rows = current_table()
    if name not in services:
        raise FlowError(f"no service named {name!r}")
    return table, services, rows


def _move_items(task_id: int, from_step: str, to_step: str, r: FlowRunner) -> None:
    """Items that came through `from_step` go on to `to_step` (once)."""
    if FlowItemRow.select().where((FlowItemRow.task == task_id) & (FlowItemRow.step == from_step)
                                  & (FlowItemRow.state == "done")).exists():
        with r.ctx.fence():
            FlowItemRow.update(step=to_step, state="pending", attempts=0, not_before_real=0.0).where(
                (FlowItemRow.task == task_id) & (FlowItemRow.step == from_step)
                & (FlowItemRow.state == "done") & (FlowItemRow.kind == "container")).execute()
