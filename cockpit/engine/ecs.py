"""Draining the ECS order queue: RunInstances a batch at a time, as fast as the limits allow.

Every call is written to the store (with its ClientToken) before it is made, and its answer is
written with the hosts it created in one transaction. A drainer that dies mid-call is replaced
by one that finds the call still `in_flight` and makes it again with the same token: the cloud
answers with the instances it already made, so nothing is created twice and nothing is lost.

The drainer is a thread with its own pool of callers: completions start the next calls at
once, so the APScheduler job that kicks it is not a floor on the drain rate.
"""

from __future__ import annotations

import http.client
import logging
import random
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import datetime

import peewee as pw

from cockpit.backends.base import Cloud, CloudError, RunRequest
from cockpit.core.ecs_queue import MAX_ATTEMPTS, Kind, Option, backoff, classify, client_token, next_option
from cockpit.domain import World
from cockpit.engine import journal
from cockpit.engine.background import Background
from cockpit.engine.lease import LeaseLost
from cockpit.store.db import bulk_insert, bump_version, get_meta
from cockpit.store.models import EcsCallRow, EcsOrderRow, HostRow

log = logging.getLogger(__name__)

ACTIVE = ("queued", "running")
CHARGE = {"payg": ("PostPaid", None), "monthly": ("PrePaid", 1), "yearly": ("PrePaid", 12)}
NO_ANSWER = ("SDK.HttpError", "SDK.ServerUnreachable")  # the API did not answer: wait for it, never give up
RESTART_S = 1.0  # after the store failed the drainer: look again this soon


@dataclass(frozen=True)
class DrainSettings:
    batch: int = 20  # instances per call, at most
    max_in_flight: int = 20  # calls in flight per account, at most
    poll_s: float = 1.0  # how often an idle drainer looks for work by itself


@dataclass(frozen=True)
class _Call:
    id: int
    order: int
    req: RunRequest
    option: int
    attempts: int


def add_months(t: float, months: int, world: World) -> float:
    """The same local date and time `months` later (the 31st becomes the month's last day)."""
    d = datetime.fromtimestamp(t, world.traffic.tz)
    m = d.month - 1 + months
    year, month = d.year + m // 12, m % 12 + 1
    for day in (d.day, 30, 29, 28):
        try:
            return d.replace(year=year, month=month, day=day).timestamp()
        except ValueError:
            continue
    raise ValueError(t)


class EcsDrainer(Background):
    THREAD = "ecs-drainer"

    def __init__(
        self,
        db: pw.Database,
        cloud: Cloud,
        world: World,
        settings: DrainSettings = DrainSettings(),
        *,
        platform_now: Callable[[], float] = time.time,
        real_clock: Callable[[], float] = time.time,
        seed: int = 0,
        fence: Callable[[], AbstractContextManager] | None = None,
        health=None,
    ):
        """`fence`: the engine's lease.fenced, so a drainer whose engine lost the lease writes
        nothing more (tests and benchmarks that run a drainer alone leave it out)."""
        self.db = db
        self.fence = fence or db.atomic
        self.cloud = cloud
        self.world = world
        self.settings = settings
        self.platform_now = platform_now
        self.real_clock = real_clock
        self.store_id = get_meta("store_id") or "store"
        self.region = next((i.region for i in world.idcs if i.kind == "cloud"), None) or ""
        self._rng = random.Random(seed)
        super().__init__()
        self._throttled_until = 0.0
        self._throttles = 0
        self.health = health  # engine/health.py: whether the cloud API answers

    # --- running --------------------------------------------------------------------------

    def _loop(self) -> None:
        """Drain until stopped. A store that fails the drainer for a while (a file locked past
        the busy timeout, a PostgreSQL restart) does not end it: it starts again once the store
        answers, and the calls it had in flight are made again with their tokens (`_recover`)."""
        while not self.ending():
            try:
                self.drain(until=self.ending)
                return
            except LeaseLost:
                log.warning("ECS drainer stopped: the engine lease is gone")
                return
            except (pw.DatabaseError, pw.InterfaceError) as e:
                log.warning("ECS drainer: the store failed it (%s: %s); starting again", type(e).__name__, e)
                self._stop.wait(RESTART_S)
            except Exception:  # noqa: BLE001 - the drainer must not die silently in a thread
                log.exception("ECS drainer stopped")
                return

    def drain(self, until: Callable[[], bool]) -> None:
        """Work the queue until `until()` holds (benchmarks and tests call this directly)."""
        self._recover()
        inflight: dict[Future, _Call] = {}
        with ThreadPoolExecutor(self.settings.max_in_flight, thread_name_prefix="ecs-call") as pool:
            while True:
                stopping = until()
                self._launch(pool, inflight, stopping)
                if not inflight:
                    if stopping:
                        return
                    self._wake.wait(timeout=self._idle_wait())
                    self._wake.clear()
                    continue
                done, _ = wait(list(inflight), timeout=self.settings.poll_s, return_when=FIRST_COMPLETED)
                if done:
                    results = [(inflight.pop(f), f.result()) for f in done]
                    # Failures first: they may move an order to its next zone. Then the next calls
                    # go out, and the answers that made hosts are written while those are in flight
                    # (until written they still count as pending, so nothing is asked for twice).
                    self._record([x for x in results if isinstance(x[1], CloudError)])
                    self._launch(pool, inflight, until())
                    self._record([x for x in results if not isinstance(x[1], CloudError)])

    def _launch(self, pool: ThreadPoolExecutor, inflight: dict, stopping: bool) -> None:
        free = self.settings.max_in_flight - len(inflight)
        if free and not stopping and self.real_clock() >= self._throttled_until:
            for call in self._reserve(free):
                inflight[pool.submit(self._make, call)] = call

    def _idle_wait(self) -> float:
        now = self.real_clock()
        soonest = EcsCallRow.select(pw.fn.MIN(EcsCallRow.not_before_real)).where(EcsCallRow.state == "retry").scalar()
        waits = [self.settings.poll_s]
        if soonest is not None:
            waits.append(max(soonest - now, 0.01))
        if self._throttled_until > now:
            waits.append(self._throttled_until - now)
        return min(waits)

    def _make(self, call: _Call):
        try:
            result = self.cloud.run_instances(call.req)
        except CloudError as e:
            self._heard(e)
            return e
        except (OSError, TimeoutError, http.client.HTTPException) as e:  # the transport: the API did not answer
            err = CloudError("SDK.HttpError", f"{type(e).__name__}: {e}")
            self._heard(err)
            return err
        except Exception as e:  # noqa: BLE001 - our own fault, not the cloud's: retried a few times, then said
            log.exception("ECS call failed in Cockpit")
            return CloudError("Cockpit.Internal", f"{type(e).__name__}: {e}")
        self._heard(None)
        return result, self._addresses(result.instance_ids)

    def _heard(self, e: CloudError | None) -> None:
        """An answer, even a refusal (no stock), is the API answering; the transport failing or a
        5xx is not."""
        if self.health is None:
            return
        down = e is not None and (e.code.startswith("SDK.") or (e.http_status or 0) >= 500)
        self.health.seen("cloud", self.region or "cloud", f"{e.code}: {e.message}" if down else None)

    def _addresses(self, ids: list[str]) -> dict[str, str]:
        """Where the new instances answer. Best effort: a host whose address the cloud did not
        give yet has none (and its initialisation waits for it)."""
        if not ids:
            return {}
        try:
            return {i.id: i.private_ip for i in self.cloud.describe_instances(ids) if i.private_ip}
        except Exception as e:  # noqa: BLE001 - the instances exist either way; only the address is missing
            log.warning("ECS drainer: no addresses for %d new instances: %s", len(ids), e)
            return {}

    # --- the store ------------------------------------------------------------------------

    def _recover(self) -> None:
        """Calls a dead drainer left in flight are made again, with the same token."""
        with self.fence():
            n = EcsCallRow.update(state="retry", not_before_real=0.0).where(EcsCallRow.state == "in_flight").execute()
            # back-offs were timed by the previous engine's host clock, which need not agree with ours
            EcsCallRow.update(not_before_real=0.0).where(EcsCallRow.state == "retry").execute()
        if n:
            log.info("ECS drainer: %d call(s) left in flight will be made again with their tokens", n)

    def _request(self, order: EcsOrderRow, opt: Option, amount: int, token: str) -> RunRequest:
        charge, period = CHARGE.get(order.charge_type, ("PostPaid", None))
        return RunRequest(
            region=self.region, zone=opt.zone, vswitch=opt.vswitch, security_group=opt.security_group,
            instance_type=order.instance_type, image_id=order.image_id, amount=amount, min_amount=1,
            client_token=token, charge_type=charge, period=period, period_unit="Month" if period else None,
        )

    def _reserve(self, free: int) -> list[_Call]:
        now = self.real_clock()
        out: list[_Call] = []
        with self.fence():
            due = (EcsCallRow.select().where((EcsCallRow.state == "retry") & (EcsCallRow.not_before_real <= now))
                   .order_by(EcsCallRow.id).limit(free))
            for c in due:
                o = EcsOrderRow.get_by_id(c.order)
                # A call whose answer never came (the drainer died) is made again whatever the order's
                # state: the cloud may have made its instances, and only the token gets them back.
                if o.state not in ACTIVE and c.error_code is not None:
                    if o.state != "paused":
                        EcsCallRow.update(state="failed", error_message=f"order {o.state}", real_finished=now).where(
                            EcsCallRow.id == c.id).execute()
                    continue
                EcsCallRow.update(state="in_flight", attempts=EcsCallRow.attempts + 1, real_started=now).where(
                    EcsCallRow.id == c.id).execute()
                opt = Option(c.zone, c.vswitch, c.security_group)
                out.append(_Call(c.id, o.id, self._request(o, opt, c.amount, c.token), c.option, c.attempts + 1))
            free -= len(out)
            pending = dict(
                EcsCallRow.select(EcsCallRow.order, pw.fn.SUM(EcsCallRow.amount))
                .where(EcsCallRow.state.in_(("in_flight", "retry"))).group_by(EcsCallRow.order).tuples()
            )
            for o in EcsOrderRow.select().where(EcsOrderRow.state.in_(ACTIVE)).order_by(EcsOrderRow.id):
                if free <= 0:
                    break
                remaining = o.count - o.created - (pending.get(o.id) or 0)
                opt = Option(*o.options[o.option])
                seq = o.next_seq
                rows = []
                while remaining > 0 and free > 0:
                    amount = min(self.settings.batch, remaining)
                    token = client_token(self.store_id, o.id, seq)
                    rows.append({"order": o.id, "seq": seq, "token": token, "amount": amount, "min_amount": 1,
                                 "option": o.option, "zone": opt.zone, "vswitch": opt.vswitch,
                                 "security_group": opt.security_group, "state": "in_flight", "real_started": now})
                    seq += 1
                    remaining -= amount
                    free -= 1
                if rows:
                    bulk_insert(EcsCallRow, rows)
                    ids = dict(EcsCallRow.select(EcsCallRow.token, EcsCallRow.id)
                               .where(EcsCallRow.token.in_([r["token"] for r in rows])).tuples())
                    out += [_Call(ids[r["token"]], o.id, self._request(o, opt, r["amount"], r["token"]), o.option, 1)
                            for r in rows]
                if seq != o.next_seq or o.state == "queued":
                    EcsOrderRow.update(next_seq=seq, state="running").where(EcsOrderRow.id == o.id).execute()
        return out

    def _record(self, results: list[tuple[_Call, object]]) -> None:
        """The answers that came in, in one transaction: fewer commits, sooner the next calls."""
        if not results:
            return
        now = self.real_clock()
        created = False
        with self.fence():
            for call, result in results:
                o = EcsOrderRow.get_by_id(call.order)  # again per answer: the one before may have changed it
                if isinstance(result, CloudError):
                    self._failed(o, call, result, now)
                else:
                    answer, addresses = result
                    created |= self._created(o, call, answer.instance_ids, addresses, now)
            if created:
                bump_version()

    def _created(self, o: EcsOrderRow, call: _Call, ids: list[str], addresses: dict[str, str], now: float) -> bool:
        known = {r.instance_id for r in HostRow.select(HostRow.instance_id).where(HostRow.instance_id.in_(ids))}
        new = [i for i in ids if i not in known]
        t = self.platform_now()
        hw = self.world.hw(o.hardware)
        expires = None
        if o.charge_type in ("monthly", "yearly"):
            expires = add_months(t, 1 if o.charge_type == "monthly" else 12, self.world)
        bulk_insert(HostRow, [
            {"name": f"ecs-{o.id}-{k:04d}", "idc": o.idc, "pool": o.pool, "group": f"order-{o.id}",
             "hardware": hw.name, "cores": hw.cores, "memory_gb": hw.memory_gb, "disk_gb": hw.disk_gb,
             "labels": o.labels, "source": "ecs", "zone": call.req.zone, "charge_type": o.charge_type,
             "price": o.price, "expires_t": expires, "created_t": t, "instance_id": iid, "status": "pending",
             "order": o.id, "address": addresses.get(iid)}
            for k, iid in enumerate(new, start=o.created + 1)
        ])
        EcsCallRow.update(state="ok", instance_ids=ids, real_finished=now).where(EcsCallRow.id == call.id).execute()
        created = o.created + len(new)
        done = created >= o.count
        EcsOrderRow.update(
            created=created,
            state="done" if done and o.state in ACTIVE else o.state,
            real_finished=now if done else None,
        ).where(EcsOrderRow.id == o.id).execute()
        if done and o.state in ACTIVE:
            journal.event(t, "info", "ecs", f"order {o.id}",
                          f"ECS order {o.id}: {created} x {o.instance_type} created in {o.idc} for pool {o.pool}")
        self._throttles = 0
        return bool(new)

    def _failed(self, o: EcsOrderRow, call: _Call, e: CloudError, now: float) -> None:
        kind = classify(e.code, e.http_status)
        t = self.platform_now()
        if kind in (Kind.THROTTLE, Kind.TRANSIENT):
            # No answer at all (the API down or hanging): the call waits for the cloud to come back,
            # however long (the same ClientToken makes the repeat safe; the SRE sees the cloud down
            # in :backends and may cancel). An error the cloud answered with gives up in the end.
            unanswered = e.code in NO_ANSWER
            if not unanswered and call.attempts >= MAX_ATTEMPTS * (2 if kind is Kind.THROTTLE else 1):
                EcsCallRow.update(state="failed", error_code=e.code, error_message=e.message, real_finished=now).where(
                    EcsCallRow.id == call.id).execute()
                self._stop_order(o, f"{e.code} after {call.attempts} attempts: {e.message}", t)
                return
            wait_s = backoff(min(call.attempts, MAX_ATTEMPTS), self._rng)
            if kind is Kind.THROTTLE:  # the account is throttled: every call waits
                self._throttles += 1
                self._throttled_until = max(self._throttled_until, now + wait_s)
            EcsCallRow.update(state="retry", not_before_real=now + wait_s, error_code=e.code,
                              error_message=e.message).where(EcsCallRow.id == call.id).execute()
            return
        EcsCallRow.update(state="failed", error_code=e.code, error_message=e.message, real_finished=now).where(
            EcsCallRow.id == call.id).execute()
        if kind in (Kind.MONEY, Kind.FATAL):
            why = "the account needs a person" if kind is Kind.MONEY else "the request was refused"
            self._stop_order(o, f"{why}: {e.code}: {e.message}", t)
            return
        if o.option != call.option or o.state not in ACTIVE + ("paused",):
            return  # another call already moved this order on, or it is stopped
        opts = [Option(*x) for x in o.options]
        nxt = next_option(opts, call.option, kind)
        fallback = {"from": str(opts[call.option]), "to": str(opts[nxt]) if nxt is not None else None,
                    "code": e.code, "message": e.message, "real_t": now}
        if nxt is None:
            EcsOrderRow.update(fallbacks=o.fallbacks + [fallback]).where(EcsOrderRow.id == o.id).execute()
            tried = "; ".join(f"{f['from']}: {f['code']}" for f in o.fallbacks + [fallback])
            self._stop_order(o, f"every zone, security group and vSwitch was tried ({tried})", t)
            return
        EcsOrderRow.update(option=nxt, fallbacks=o.fallbacks + [fallback]).where(EcsOrderRow.id == o.id).execute()
        journal.event(t, "warn", "ecs", f"order {o.id}",
                      f"ECS order {o.id}: {opts[call.option]} refused ({e.code}); now {opts[nxt]}")

    def _stop_order(self, o: EcsOrderRow, reason: str, t: float) -> None:
        EcsOrderRow.update(state="failed", reason=reason, real_finished=self.real_clock()).where(
            EcsOrderRow.id == o.id).execute()
        journal.event(t, "error", "ecs", f"order {o.id}", f"ECS order {o.id} stopped after {o.created} of {o.count}: {reason}")
