"""Actions asked of the engine (engine/requests.py), as a Cockpit that may not write asks them.
Here on SQLite in one process (the requester is then the OS user the Cockpit names; on
PostgreSQL the database names them: tests/test_roles_pg.py)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from cockpit.engine import requests as req_mod
from cockpit.engine.facade import Cockpit
from cockpit.engine.requests import RequestClient
from cockpit.identity import os_user
from cockpit.session import open_session
from cockpit.store.models import AuditRow, RequestRow, TaskRow
from tests.conftest import SMALL, make_cfg

ME = os_user().name


@pytest.fixture
def site(tmp_path) -> Iterator:
    """A store with its engine running (and answering requests), the way `cockpit engine` runs."""
    s = open_session(make_cfg(str(tmp_path / "small.db"), world=str(SMALL)))
    engine = s.make_engine()
    engine.start()
    deadline = time.monotonic() + 30
    while not engine.active:
        assert time.monotonic() < deadline, "the engine did not become active"
        time.sleep(0.05)
    yield s
    s.close()


def asking(s, wait_s: float = 15.0, **cfg) -> Cockpit:
    """A Cockpit on the same store that asks rather than writes."""
    c = Cockpit(make_cfg(s.cfg.db, world=str(SMALL), **cfg), s.world, s.db)
    c.requests = RequestClient(s.db, c.cfg, wait_s=wait_s)
    return c


def test_an_asked_action_is_done_by_the_engine_as_the_person_who_asked(site):
    out = asking(site).scale_in("user", 1)
    assert out.ok and out.message.startswith("scale task") and out.task is not None
    task = TaskRow.get_by_id(out.task)
    assert (task.kind, task.actor, task.spec["count"]) == ("scale_in", ME, 1)
    req = RequestRow.get(RequestRow.method == "scale_in")
    assert (req.requester, req.state, req.task, req.args) == (ME, "done", out.task,
                                                              {"service": "user", "count": 1})
    entry = AuditRow.get(AuditRow.action == "service.scale_in")
    assert (entry.user, entry.role, entry.outcome, entry.details["request"]) == (ME, "operator", "done", req.id)


def test_the_engine_goes_by_its_own_role_mapping_not_the_askers(site, roles):
    c = asking(site)
    assert c.cfg.role == "operator"  # what the asking Cockpit was told when it started
    roles.grant("viewer")  # the mapping changed since
    out = c.scale_in("user", 1)
    assert not out.ok and "needs role operator; you are viewer" in out.message
    assert RequestRow.get(RequestRow.method == "scale_in").state == "refused"
    assert TaskRow.select().where(TaskRow.kind == "scale_in").count() == 0
    entry = AuditRow.get(AuditRow.action == "service.scale_in")
    assert (entry.user, entry.role, entry.outcome) == (ME, "viewer", "refused")


def test_a_lowered_role_and_read_only_mode_hold_in_the_engine(site):
    out = asking(site, role="viewer").scale_in("user", 1)
    assert not out.ok and "you are viewer" in out.message
    out = asking(site, readonly=True).scale_in("user", 1)
    assert not out.ok and "read-only mode" in out.message
    assert [r.state for r in RequestRow.select().order_by(RequestRow.id)] == ["refused", "refused"]


def test_a_request_no_engine_answers_is_withdrawn_and_never_done(tmp_path):
    s = open_session(make_cfg(str(tmp_path / "small.db"), world=str(SMALL)))
    try:
        out = asking(s, wait_s=0.3).scale_in("user", 1)
        assert not out.ok and "no engine answered" in out.message and "nothing was done" in out.message
        assert RequestRow.get(RequestRow.method == "scale_in").state == "withdrawn"
        engine = s.make_engine()  # an engine that starts later leaves it alone
        assert engine.step_lease()
        assert engine.answer_requests() == 0
        assert TaskRow.select().where(TaskRow.kind == "scale_in").count() == 0
    finally:
        s.close()


def test_a_request_older_than_its_expiry_is_refused_not_done_late(tmp_path):
    s = open_session(make_cfg(str(tmp_path / "small.db"), world=str(SMALL)))
    try:
        RequestRow.insert(requester=ME, method="scale_in", args={"service": "user", "count": 1}, role_cap="operator",
                          created_real=time.time() - req_mod.EXPIRE_S - 5).execute()
        engine = s.make_engine()
        assert engine.step_lease() and engine.answer_requests() == 1
        row = RequestRow.get()
        assert row.state == "expired" and "no engine took it" in row.message
        assert TaskRow.select().where(TaskRow.kind == "scale_in").count() == 0
        assert AuditRow.get(AuditRow.action == "scale_in").outcome == "refused"
    finally:
        s.close()


@pytest.mark.parametrize("method, args, said", [
    ("drop_everything", {}, "no action 'drop_everything'"),
    ("scale_in", {"service": "user"}, "missing a required argument: 'count'"),
    ("scale_in", {"service": "user", "count": 1, "force": True}, "unexpected keyword argument 'force'"),
    ("apply_plan", {"p": {}}, "no action 'apply_plan'"),  # only methods whose arguments are JSON values
    ("scale_in", {"service": "user", "count": 1.5}, "count: expected a whole number, got 1.5"),
    ("scale_in", {"service": "user", "count": True}, "count: expected a whole number, got True"),
    ("set_speed", {"speed": "fast"}, "speed: expected a number, got 'fast'"),
    ("release_hosts", {"hosts": ["a", 2]}, "hosts: item 1: expected text"),
    ("scale_in", {"self": 1, "service": "user", "count": 1}, "multiple values for argument 'self'"),
])
def test_a_request_the_engine_cannot_read_is_refused_and_audited(site, method, args, said):
    rid = RequestRow.insert(requester=ME, method=method, args=args, role_cap="operator",
                            created_real=time.time()).execute()
    deadline = time.monotonic() + 15
    while (row := RequestRow.get_by_id(rid)).state == "queued":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert row.state == "refused" and said in row.message, row.message
    entry = AuditRow.get(AuditRow.target == f"request {rid}")
    assert (entry.user, entry.action, entry.outcome) == (ME, method, "refused")


def test_a_request_turned_down_before_its_action_ran_is_audited_as_failed(site):
    out = asking(site).scale_in("nosuch", 1)
    assert not out.ok and "no service named 'nosuch'" in out.message
    rid = RequestRow.get(RequestRow.method == "scale_in").id
    entry = AuditRow.get(AuditRow.target == f"request {rid}")
    assert (entry.user, entry.role, entry.outcome) == (ME, "operator", "failed")
    assert "no service named" in entry.details["why"]


def test_a_plan_is_audited_as_what_its_parts_place_not_as_described(site):
    host = site.cockpit.hosts()[0].name
    parts = [{"service": "feed", "count": 1, "placements": [[host, 1]]}]
    out = asking(site).queue_plan("user +1 (spread)", parts, {})
    assert out.ok and "feed +1" in out.message
    entry = AuditRow.get(AuditRow.action == "plan.apply")
    assert (entry.target, entry.details["placed"]) == ("feed", {"feed": 1})
    bad = asking(site).queue_plan("x", [{"service": "feed", "placements": [[host, -5]]}], {})
    assert not bad.ok and "placements must be [host, count] pairs" in bad.message


def test_a_refusal_of_something_allowed_is_not_recorded(site):
    out = asking(site).record_refusal("sim.speed")  # sent without waiting; the engine finds nothing refused
    assert out.ok
    deadline = time.monotonic() + 15
    while RequestRow.get(RequestRow.method == "record_refusal").state == "queued":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert RequestRow.get(RequestRow.method == "record_refusal").state == "refused"
    assert not AuditRow.select().where(AuditRow.action == "sim.speed").exists()


def test_a_refusal_is_recorded_by_the_engine_without_anyone_waiting(site):
    c = asking(site, readonly=True)
    started = time.monotonic()
    assert c.record_refusal("sim.speed") is not None
    assert time.monotonic() - started < 1.0
    deadline = time.monotonic() + 15
    while not AuditRow.select().where(AuditRow.action == "sim.speed").exists():
        assert time.monotonic() < deadline
        time.sleep(0.05)
    entry = AuditRow.get(AuditRow.action == "sim.speed")
    assert (entry.user, entry.outcome, entry.details["why"]) == (ME, "refused", "read-only mode: no changes")


def test_every_action_of_the_facade_can_be_asked():
    """An action method that could not be asked would fail in an SRE's Cockpit on a secured store."""
    import inspect

    src = {name: inspect.getsource(fn) for name, fn in inspect.getmembers(Cockpit, inspect.isfunction)}
    acting = {n for n, text in src.items() if "self._act(" in text or "self._queue_task(" in text
              or "self._order_state(" in text or "self._flow_state(" in text}
    helpers = {"_act", "_queue_task", "_order_state", "_flow_state"}
    callers = {n for n, text in src.items() for h in acting - helpers if f"self.{h}(" in text}
    public = {n for n in (acting | callers) - helpers if not n.startswith("_")}
    assert public and public <= set(req_mod.REQUESTABLE) | {"apply_plan"}, public - set(req_mod.REQUESTABLE)
