"""The engine's autoscaling jobs, mixed into Engine: every tick, an evaluation when
`scaling.interval_s` of platform time has passed; and a one-off job at the real moment a
schedule's window opens, placed by the platform clock (core/autoscale, engine/autoscale.py)."""

from __future__ import annotations

import asyncio
from datetime import datetime, timezone

import peewee as pw

from cockpit.engine.lease import LeaseLost


class AutoscaleJobs:
    def autoscale(self, force: bool = False) -> bool:
        """Evaluate the autoscaling rules when `scaling.interval_s` of platform time has passed (or
        now, `force`: a schedule's window opens). True when it evaluated."""
        if not self.active or self.clock is None or not self.autoscaling:
            return False
        from cockpit.engine.autoscale import Autoscaler
        from cockpit.engine.step import running_hot_events

        try:
            scaler = Autoscaler(self.world, self.lease.fenced)
            t = self.platform_now()
            if not force and not scaler.due(t):
                return False
            watch = self.engine_watch
            measured = watch.cpu_by_service({s.name: s.cpu for s in self.world.services}) if watch else None
            scaler.step(t, scaler.observe(t, running_hot_events(), measured))
            self._arm_schedules(t)
        except LeaseLost:
            with self._lock:
                self._lost()
            return False
        except pw.PeeweeException as e:
            self._failed(e)
            return False
        self._force_next = True
        return True

    def _arm_schedules(self, t: float) -> None:
        """A one-off job at the real time when the next schedule window opens, if it opens before
        the next evaluation: schedules are cron-like times of the platform clock, which runs at its
        own speed, so the job is placed by that clock and armed again at every evaluation."""
        from datetime import timedelta

        from cockpit.core.autoscale.decide import window_starts
        from cockpit.engine.autoscale import active_rules

        sched = self._scheduler
        if sched is None or self.clock.paused:
            return
        horizon = t + self.world.scaling.interval_s
        starts = [s for r in active_rules() if r.kind == "schedule"
                  for s in window_starts(r, t, horizon, self.world.traffic.tz)]
        if starts:
            wait = (min(starts) - t) / max(self.clock.speed, 1e-3)
            sched.add_job(self._job_schedule_window, "date", id="schedule-window", replace_existing=True,
                          run_date=datetime.now(timezone.utc) + timedelta(seconds=wait))

    async def _job_autoscale(self) -> None:
        await asyncio.to_thread(self.autoscale)

    async def _job_schedule_window(self) -> None:
        await asyncio.to_thread(self.autoscale, True)
