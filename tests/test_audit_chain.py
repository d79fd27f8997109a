"""The audit log as a hash chain, on SQLite and on a real PostgreSQL: every entry chained to the
one before; writers that interleave never fork it; an entry changed, removed or forged by hand is
found by `cockpit audit verify`, which names the first broken one; a schema 7 store's entries are
chained by the upgrade; the engine's own changes are audited as the engine."""

from __future__ import annotations

import json
import socket
import threading
import time

import peewee as pw
import pytest
from hypothesis import given
from hypothesis import strategies as st

from cockpit.cli import main
from cockpit.core.audit_chain import OPTIONAL, GENESIS, FIELDS, Entry, entry_hash, fields_of, walk
from cockpit.engine import journal
from cockpit.identity import os_user
from cockpit.store import db as store_db
from cockpit.store.db import open_store, upgrade_store
from cockpit.store.models import AuditRow

ME = os_user().name


def write(n: int, who: str = "sre", start: int = 0) -> None:
    for i in range(start, start + n):
        journal.audit(user=who, role="operator", action="pool.move", target=f"pool {i}",
                      details={"count": i, "why": "é ✓", "nested": {"x": [1.5, None]}}, outcome="done",
                      platform_t=1_700_000_000.0 + i)


def verify_cli(capsys, url: str, *more: str) -> tuple[int, str]:
    code = main(["audit", "verify", "--db", url, *more])
    return code, capsys.readouterr().out


# --- chained as written ------------------------------------------------------------------------------


def test_every_entry_is_chained_to_the_one_before(store_url):
    db = open_store(store_url)
    write(5)
    rows = list(AuditRow.select().order_by(AuditRow.id))
    assert [r.id for r in rows] == [1, 2, 3, 4, 5]
    assert rows[0].prev_hash == GENESIS
    assert all(b.prev_hash == a.hash for a, b in zip(rows, rows[1:]))
    for r in rows:
        fields = {k: getattr(r, k) for k in FIELDS + OPTIONAL}
        assert r.hash == entry_hash(r.prev_hash, fields) and r.host == socket.gethostname()
        # PostgreSQL records the database role that wrote it (the test cluster's superuser here)
        assert r.db_user == ("postgres" if isinstance(db, pw.PostgresqlDatabase) else None)
    w = journal.verify()
    assert w.whole and (w.entries, w.head_id, w.head_hash) == (5, 5, rows[-1].hash)
    db.close()


def test_an_entry_holds_its_hash_whatever_types_it_was_given(store_url):
    db = open_store(store_url)
    journal.audit(user="sre", role="operator", action="sim.speed", target="clock", details={"speed": 2, "t": (1, 2)},
                  outcome="done", platform_t=1_700_000_000)  # a whole number where the column holds a float
    assert journal.verify().whole
    db.close()


def test_a_fork_cannot_be_stored_even_by_a_writer_that_skips_the_lock(store_url):
    db = open_store(store_url)
    write(2)
    first = AuditRow.get_by_id(1)
    with pytest.raises(pw.IntegrityError):
        with db.atomic():  # a second entry after entry 1: what two unserialised writers would make
            AuditRow.insert(real_t=time.time(), user="x", role="operator", action="a", target="t", details={},
                            outcome="done", prev_hash=first.hash, hash="f" * 64, db_user=first.db_user).execute()
    db.close()


def test_writers_that_interleave_never_fork_the_chain(store_url):
    db = open_store(store_url)
    writers, per = 4, 40
    errors: list[BaseException] = []
    start = threading.Barrier(writers)

    def writer(k: int) -> None:
        try:
            start.wait()
            for i in range(per):  # each thread has its own connection (peewee's are per thread)
                with db.atomic():
                    journal.audit(user=f"w{k}", role="operator", action="pool.move", target=f"{k}/{i}",
                                  details={"i": i}, outcome="done", platform_t=None)
                if i % 7 == 0:  # an entry outside any transaction of the caller's too
                    journal.audit(user=f"w{k}", role="viewer", action="sim.pause", target="clock", details={},
                                  outcome="refused", platform_t=None)
        except BaseException as e:  # noqa: BLE001 - said by the assertion below
            errors.append(e)
        finally:
            db.close()

    threads = [threading.Thread(target=writer, args=(k,)) for k in range(writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert errors == []
    n = writers * (per + len(range(0, per, 7)))
    w = journal.verify()
    assert w.whole and w.entries == n == AuditRow.select().count()
    users = [u for (u,) in AuditRow.select(AuditRow.user).order_by(AuditRow.id).tuples()]
    assert len({tuple(users[i:i + 3]) for i in range(len(users) - 2)}) > 1  # they did interleave
    db.close()


# --- tampering is found, and `cockpit audit verify` names the first broken entry -------------------------


def as_dba(db) -> None:
    """Tamper as the database's superuser would: on PostgreSQL first switching off the trigger that
    keeps the log append-only (the chain must find what such a person does)."""
    if isinstance(db, pw.PostgresqlDatabase):
        db.execute_sql("ALTER TABLE audit DISABLE TRIGGER audit_append")


def test_a_whole_chain_verifies_with_its_head(store_url, capsys):
    db = open_store(store_url)
    write(3)
    head = AuditRow.get_by_id(3).hash
    db.close()
    code, out = verify_cli(capsys, store_url)
    assert code == 0
    assert out.strip() == f"audit log of store {store_db.shown(store_url)}: whole (3 entries; head: entry 3, sha256 {head})"
    code, out = verify_cli(capsys, store_url, "--json")
    assert code == 0 and json.loads(out) == {"store": store_db.shown(store_url), "whole": True, "entries": 3,
                                             "head": {"id": 3, "hash": head}, "broken": None}


def test_an_entry_changed_by_hand_is_found(store_url, capsys):
    db = open_store(store_url)
    write(5)
    as_dba(db)
    db.execute_sql("UPDATE audit SET details = '{\"count\":999}' WHERE id = 3")
    db.close()
    code, out = verify_cli(capsys, store_url)
    assert code == 1
    assert out.strip() == (f"audit log of store {store_db.shown(store_url)}: broken at entry 3: its hash does not "
                           "match its fields (changed after it was written); the 2 entries before it hold")
    code, out = verify_cli(capsys, store_url, "--json")
    doc = json.loads(out)
    assert code == 1 and doc["whole"] is False and doc["broken"]["id"] == 3 and doc["broken"]["why"] == "hash"


def test_an_entry_removed_from_the_middle_is_found(store_url, capsys):
    db = open_store(store_url)
    write(5)
    as_dba(db)
    AuditRow.delete().where(AuditRow.id == 3).execute()
    db.close()
    code, out = verify_cli(capsys, store_url, "--json")
    assert code == 1
    assert json.loads(out)["broken"] == {
        "id": 4, "why": "prev", "after_id": 2,
        "message": "entry 4: its prev_hash does not match entry 2 (an entry was removed or put in between)"}


def test_an_entry_forged_without_the_right_hash_is_found(store_url, capsys):
    db = open_store(store_url)
    write(3)
    as_dba(db)
    last = AuditRow.get_by_id(3)
    # the right prev_hash, but a hash made up (or computed some other way)
    AuditRow.insert(id=4, real_t=time.time(), platform_t=None, user="root", role="admin", host="elsewhere",
                    action="host.release", target="ali-feed-0001", details={}, outcome="done", prev_hash=last.hash,
                    hash="0" * 63 + "1").execute()
    db.close()
    code, out = verify_cli(capsys, store_url)
    assert code == 1 and "broken at entry 4: its hash does not match its fields" in out
    db = open_store(store_url)
    AuditRow.delete().where(AuditRow.id == 4).execute()
    # now forged with a hash computed over its fields, but after the wrong entry
    fields = {"id": 4, "real_t": 1.0, "platform_t": None, "user": "root", "role": "admin", "host": "h",
              "action": "host.release", "target": "x", "details": {}, "outcome": "done"}
    AuditRow.insert(**fields, prev_hash="e" * 64, hash=entry_hash("e" * 64, fields)).execute()
    db.close()
    code, out = verify_cli(capsys, store_url)
    assert code == 1 and "broken at entry 4: its prev_hash does not match entry 3" in out


def test_verify_says_bad_input_in_one_line_with_exit_2(tmp_path, capsys):
    assert main(["audit", "verify", "--db", str(tmp_path / "nope.db")]) == 2
    assert capsys.readouterr().err == f"cockpit: store {tmp_path / 'nope.db'}: no such file\n"


ENTRY = st.builds(
    dict, real_t=st.floats(0, 4e9, allow_nan=False), platform_t=st.none() | st.floats(0, 4e9, allow_nan=False),
    user=st.text(min_size=1, max_size=8), role=st.sampled_from(["viewer", "operator", "admin", "engine"]),
    host=st.text(max_size=8), action=st.text(min_size=1, max_size=12), target=st.text(max_size=12),
    details=st.dictionaries(st.text(max_size=5), st.none() | st.integers() | st.floats(allow_nan=False) | st.text()),
    outcome=st.sampled_from(["done", "refused", "failed", "queued"]))


def _chain(raw: list[dict]) -> list[Entry]:
    out, prev = [], GENESIS
    for i, r in enumerate(raw, 1):
        fields = {"id": i, **r}
        h = entry_hash(prev, fields)
        out.append(Entry(**fields, prev_hash=prev, hash=h))
        prev = h
    return out


@given(raw=st.lists(ENTRY, min_size=2, max_size=8), data=st.data())
def test_any_change_or_removal_breaks_the_chain_at_that_entry(raw, data):
    chain = _chain(raw)
    assert walk(chain).whole and walk(chain).entries == len(chain)
    k = data.draw(st.integers(0, len(chain) - 1))
    column = data.draw(st.sampled_from([f for f in FIELDS if f != "id"]))
    changed = {**fields_of(chain[k]), column: data.draw(ENTRY)[column]}
    if changed != fields_of(chain[k]):
        tampered = chain[:k] + [Entry(**changed, prev_hash=chain[k].prev_hash, hash=chain[k].hash)] + chain[k + 1:]
        b = walk(tampered).broken
        assert (b.id, b.why) == (k + 1, "hash")
    if k < len(chain) - 1:  # the last entry's removal needs the head kept elsewhere: `verify` prints it
        b = walk(chain[:k] + chain[k + 1:]).broken
        assert (b.id, b.why, b.after_id) == (k + 2, "prev", k or None)


# --- the upgrade from schema 7 -----------------------------------------------------------------------------


def _as_schema_7(url: str) -> None:
    """The audit table as schema 7 had it: no host, no chain (and none of schema 9's requests,
    database roles or triggers)."""
    db = open_store(url)
    db.execute_sql('DROP INDEX IF EXISTS "audit_prev_hash"')
    if isinstance(db, pw.PostgresqlDatabase):
        db.execute_sql("DROP TRIGGER audit_append ON audit")
    db.execute_sql('DROP TABLE "action_request"')
    for col in ("host", "prev_hash", "hash", "db_user"):
        db.execute_sql(f'ALTER TABLE "audit" DROP COLUMN "{col}"')
    store_db.set_meta("schema_version", "7")
    db.close()


def test_the_upgrade_from_schema_7_chains_the_entries_there_in_id_order(store_url, capsys):
    db = open_store(store_url)
    write(4)
    before = [(r.id, r.user, r.details) for r in AuditRow.select().order_by(AuditRow.id)]
    db.close()
    _as_schema_7(store_url)
    assert main(["audit", "verify", "--db", store_url]) == 2  # refused until upgraded
    assert "run `cockpit store upgrade" in capsys.readouterr().err
    assert upgrade_store(store_url)[:2] == (7, store_db.SCHEMA_VERSION)
    db = open_store(store_url)
    rows = list(AuditRow.select().order_by(AuditRow.id))
    assert [(r.id, r.user, r.details) for r in rows] == before and {r.host for r in rows} == {""}
    assert journal.verify().whole and rows[0].prev_hash == GENESIS
    write(1, start=10)  # new entries go on from the chained ones
    w = journal.verify()
    assert w.whole and w.entries == 5
    db.close()


# --- the engine's own changes ------------------------------------------------------------------------------


def _engine_rows() -> list[AuditRow]:
    return list(AuditRow.select().where(AuditRow.role == "engine").order_by(AuditRow.id))


def test_an_autoscaling_decision_that_queues_a_task_is_audited_as_the_engine(tmp_path):
    from tests.test_autoscale_engine import FakeClock, small_world, store
    from cockpit.engine.engine import Engine

    w = small_world()
    db = store(tmp_path, w)
    e = Engine(db, w, speed=60, real_clock=FakeClock())
    assert e.step_lease() and e.autoscale() is True
    (a,) = _engine_rows()
    assert (a.user, a.role, a.host, a.action, a.target, a.outcome) == (ME, "engine", socket.gethostname(),
                                                                        "autoscale", "feed", "queued")
    assert a.details["task"] is not None and a.details["decision"].startswith("feed: ")
    assert journal.verify().whole
    db.close()


def test_a_flow_s_start_end_failure_and_the_hosts_it_queues_are_audited_as_the_engine(demo_db, demo_world):
    from cockpit.core.flow import FlowSpec
    from cockpit.engine import flow_steps
    from cockpit.engine.flow import FlowCtx, FlowRunner, queue_flow
    from cockpit.store.models import ClockRow, TaskRow
    from tests.test_flows import _engine, _finished, _queue, _until

    db = open_store(demo_db)
    e = _engine(db, demo_world)
    try:
        ok = _queue(e, "expand", service="feed", count=2, idc="yongfeng")
        too_many = _queue(e, "expand", service="card", count=6000, idc="yongfeng")  # beyond the pool's quota
        assert _until(lambda: _finished(ok) and _finished(too_many), 30), [
            (t.id, t.state, t.reason, (t.progress or {}).get("step")) for t in TaskRow.select()]
    finally:
        e.stop()
    seen = [(a.action, a.target, a.outcome, a.user) for a in _engine_rows()]
    assert ("flow.expand", f"flow {ok}", "started", ME) in seen and ("flow.expand", f"flow {ok}", "done", ME) in seen
    assert ("flow.expand", f"flow {too_many}", "started", ME) in seen
    assert ("flow.expand", f"flow {too_many}", "failed", ME) in seen
    failed = AuditRow.get((AuditRow.target == f"flow {too_many}") & (AuditRow.outcome == "failed"))
    assert failed.details["by"] == "sre" and "quota" in failed.details["why"]
    # host acquisition: a pool move from the shared pool and an ECS order, each audited
    with db.atomic():
        fid = queue_flow("expand", FlowSpec("feed", 700, "aliyun"), "sre", ClockRow.get_by_id(1).t)
        TaskRow.update(progress={"need_shared": 2, "need_ecs": 3, "sid": 101}).where(TaskRow.id == fid).execute()
    ctx = FlowCtx(demo_world, db.atomic, lambda: ClockRow.get_by_id(1).t, time.time, None, None)
    out = flow_steps.hosts(TaskRow.get_by_id(fid), FlowSpec("feed", 700, "aliyun"), FlowRunner(ctx))
    assert not out.done and "borrowing 2 shared hosts" in out.note and "ordering 3 ECS hosts" in out.note
    queued = [(a.action, a.outcome, a.details["flow"], a.details["by"]) for a in _engine_rows()[-2:]]
    assert queued == [("pool_move", "queued", fid, "sre"), ("ecs.order", "queued", fid, "sre")]
    assert journal.verify().whole
    db.close()


# --- `cockpit audit list` ------------------------------------------------------------------------------------


def test_audit_list_filters_by_user_action_outcome_and_time(demo_db, capsys):
    db = open_store(demo_db)
    write(3, who="alice")
    journal.audit(user="bob", role="viewer", action="flow.stop", target="flow 1", details={}, outcome="refused",
                  platform_t=None)
    journal.audit(user="bob", role="operator", action="flow.start", target="feed +2", details={"count": 2},
                  outcome="done", platform_t=None)
    db.close()

    def listed(*args: str) -> list[dict]:
        assert main(["audit", "list", "--db", demo_db, "--json", *args]) == 0
        return json.loads(capsys.readouterr().out)["entries"]

    assert [e["id"] for e in listed()] == [1, 2, 3, 4, 5]  # oldest first
    assert [e["id"] for e in listed("--user", "bob")] == [4, 5]
    assert [e["id"] for e in listed("--action", "flow.*")] == [4, 5]
    assert [e["id"] for e in listed("--action", "flow.start", "--outcome", "done")] == [5]
    assert [e["id"] for e in listed("--outcome", "refused")] == [4]
    assert [e["id"] for e in listed("--limit", "2")] == [4, 5]  # the newest
    assert [e["id"] for e in listed("--since", "1h")] == [1, 2, 3, 4, 5]
    assert listed("--since", "2999-01-01T00:00") == []
    e = listed("--user", "bob", "--outcome", "refused")[0]
    assert (e["user"], e["role"], e["host"], e["target"]) == ("bob", "viewer", socket.gethostname(), "flow 1")
    assert main(["audit", "list", "--db", demo_db, "--user", "bob"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["ID", "REAL", "USER", "ROLE", "HOST", "ACTION", "OUTCOME", "TARGET", "DETAILS"]
    assert len(lines) == 3 and "flow.start" in lines[2] and "count=2" in lines[2]


@pytest.mark.parametrize(("args", "error"), [
    (["--since", "yesterday"], "argument --since: expected a time (2026-11-26T11:00, zone optional) or a span back"),
    (["--limit", "0"], "argument --limit: expected a number of entries from 1 to 1000000, got 0"),
    (["--action", "a b"], "argument --action: expected an action id (plan.apply) or a prefix (flow.*), got 'a b'"),
])
def test_audit_list_refuses_bad_arguments_in_one_line(demo_db, capsys, args, error):
    assert main(["audit", "list", "--db", demo_db, *args]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"cockpit audit list: error: {error}")
