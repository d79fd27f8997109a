"""The engine's replication, mixed into Engine: the registries and the replicator started with
the engine's workers, the webhook for push notifications, cron-triggered policies, and the
clock simulated transfers run on (the wall clock at the platform's speed)."""

from __future__ import annotations

import asyncio
import logging
import os
import time

import peewee as pw

from cockpit.backends.factory import webhook_token_env
from cockpit.engine.lease import LeaseLost
from cockpit.engine.registries import fill_simulated, make_registries
from cockpit.engine.replication import Replicator
from cockpit.engine.webhook import WebhookServer

log = logging.getLogger("cockpit.engine.engine")


class ReplicationJobs:
    def _start_replication(self) -> None:
        self._sim_stop.clear()
        simulated = self.registry_settings.get("kind", "sim") == "sim"
        if self._own_registries:  # the simulated ones hold what the store says, as real ones would
            self.registries = make_registries(self.registry_settings, self.world, self._sim_sleep, self._sim_clock)
            if simulated:
                fill_simulated(self.registries)
        if not self.registries:
            return
        from cockpit.store.db import data_dir

        self.replicator = Replicator(self.db, self.world, self.registries, fence=self.lease.fenced,
                                     platform_now=self.platform_now, spool_dir=self.spool_dir or data_dir() / "spool",
                                     sleep=self._sim_sleep if simulated else time.sleep, seed=self.world.seed,
                                     simulated=simulated, clock=self._sim_clock if simulated else time.monotonic,
                                     backend_health=self.backend_health)
        self.replicator.start()
        hook = self.registry_settings.get("webhook")
        if hook:
            host, _, port = hook["listen"].rpartition(":")
            token = os.environ.get(webhook_token_env(hook), "").strip()
            try:
                self.webhook = WebhookServer((host or "127.0.0.1", int(port)), token,
                                             {r.name for r in self.world.registries}, self.replicator.on_push)
                self.webhook.start()
            except (OSError, ValueError) as e:
                why = e.strerror if isinstance(e, OSError) else f"${webhook_token_env(hook)}: {e}"
                self.last_error = f"webhook {hook['listen']}: {why}"
                log.error("engine: %s", self.last_error)

    def _sim_speed(self) -> float:
        return max(self.clock.speed, 1e-3) if self.clock is not None and not self.clock.paused else 1.0

    def _sim_sleep(self, seconds: float) -> None:
        """Simulated transfers take platform time: at 60x, a minute's copy takes a second (and
        while the platform clock is paused, they go at the pace of the wall clock)."""
        if self._sim_stop.wait(seconds / self._sim_speed()):  # the engine is stopping: not a second longer
            from cockpit.engine.transfer import Stopped

            raise Stopped

    def _sim_clock(self) -> float:
        """The clock simulated transfers are timed by: the wall clock run at the platform's speed.
        Unlike the platform clock it never stands still, so a bandwidth cap never waits on it."""
        with self._sim_lock:
            now = time.monotonic()
            self._sim_t += (now - self._sim_last) * self._sim_speed()
            self._sim_last = now
            return self._sim_t

    async def _job_cron(self, policy: str) -> None:
        await asyncio.to_thread(self.replicate_on_schedule, policy)

    def replicate_on_schedule(self, policy: str) -> None:
        from cockpit.engine.registry_watch import queue_scheduled

        if not self.active:
            return
        try:
            with self.lease.fenced():  # not while one of this policy is still open: the firings would pile up
                queued = queue_scheduled(policy, self.platform_now(), self.real_clock())
        except LeaseLost:
            with self._lock:
                self._lost()
            return
        except pw.PeeweeException as e:
            self._failed(e)
            return
        if queued is not None and self.replicator is not None:
            self.replicator.kick()
