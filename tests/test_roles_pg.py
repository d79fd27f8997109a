"""Roles the database enforces: a real PostgreSQL, real OS users of different roles, a headless
engine running as the service account, and each SRE's Cockpit (and psql-like direct SQL)
connecting as their own database role by peer authentication.

The users exist only in a private mount namespace (tests/os_users.py); the PostgreSQL server
runs in it so that peer authentication knows them."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import peewee as pw
import pytest

from cockpit.cli import main
from cockpit.config import Config
from cockpit.session import open_session
from cockpit.store.db import open_store
from cockpit.store.models import AuditRow, HostRow, RequestRow, TaskRow
from tests import os_users, pg

pytestmark = pytest.mark.integration

WORLD = str(Path(__file__).parent / "data" / "small-world.yaml")
ENGINE, ALICE, VICTOR, ADA = "ckt-engine", "ckt-alice", "ckt-victor", "ckt-ada"  # engine, operator, viewer, admin


@dataclass
class Site:
    users: os_users.Users
    cluster: pg.Cluster
    db: str
    roles: str
    engine: subprocess.Popen

    def url(self, user: str = "postgres") -> str:
        return f"postgresql://{user}@/{self.db}?host={self.cluster.sockdir}&port={self.cluster.port}"

    def run(self, user: str, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
        """`cockpit ARGS` as that OS user, on the store as their own database role."""
        cmd = [*self.users.as_user(user), sys.executable, "-m", "cockpit", *args, "--db", self.url(user),
               "--world", WORLD]
        return subprocess.run(cmd, env=self.users.env(user, COCKPIT_ROLES=self.roles), cwd=self.users.root,
                              capture_output=True, text=True, timeout=timeout)

    def sql(self, user: str, *statements: str) -> list[str]:
        """Each statement as that user straight to the database (what psql would do): "ok" or the
        database's error, one per statement."""
        script = ("import json, sys, psycopg\n"
                  f"c = psycopg.connect(host={self.cluster.sockdir!r}, port={self.cluster.port}, dbname={self.db!r}, "
                  f"user={user!r}, autocommit=True)\n"
                  "out = []\n"
                  "for s in json.loads(sys.argv[1]):\n"
                  "    try:\n        c.execute(s); out.append('ok')\n"
                  "    except psycopg.Error as e:\n        out.append(str(e).splitlines()[0])\n"
                  "print(json.dumps(out))\n")
        r = subprocess.run([*self.users.as_user(user), sys.executable, "-c", script, json.dumps(statements)],
                           env=self.users.env(user), cwd=self.users.root, capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        return json.loads(r.stdout)


def _hold(site: Site, user: str, statements: list[str], seconds: float) -> subprocess.Popen:
    """As that user, in one transaction: run the statements, say "held", keep it open a while."""
    script = ("import json, sys, time, psycopg\n"
              f"c = psycopg.connect(host={site.cluster.sockdir!r}, port={site.cluster.port}, dbname={site.db!r}, "
              f"user={user!r})\n"
              "for s in json.loads(sys.argv[1]):\n    c.execute(s)\n"
              f"print('held', flush=True)\ntime.sleep({seconds})\nc.commit()\n")
    p = subprocess.Popen([*site.users.as_user(user), sys.executable, "-c", script, json.dumps(statements)],
                         env=site.users.env(user), cwd=site.users.root, stdout=subprocess.PIPE, text=True)
    assert _line(p) == "held"
    return p


def _line(p: subprocess.Popen, timeout: float = 60) -> str:
    out: list[str] = []
    reader = threading.Thread(target=lambda: out.append(p.stdout.readline()), daemon=True)
    reader.start()
    reader.join(timeout)
    assert out and out[0], "no line from the engine"
    return out[0].rstrip("\n")


@pytest.fixture(scope="module")
def site() -> Iterator[Site]:
    if os.geteuid() != 0:
        pytest.fail("these tests make OS users in a mount namespace: they run as root (as ./run tests does)")
    users = os_users.make([ENGINE, ALICE, VICTOR, ADA])
    cluster = None
    engine = None
    try:
        cluster = pg.start(within=users.within, peer=True)
        db = cluster.new_db()
        roles = f"{users.root}/roles.yaml"
        Path(roles).write_text(f"users: {{{ALICE}: operator, {VICTOR}: viewer, {ADA}: admin}}\n")
        os.chmod(roles, 0o644)
        s = Site(users, cluster, db, roles, None)  # type: ignore[arg-type]
        # the store's owner seeds it, then makes the database enforce roles
        with open_session(Config(world=WORLD, db=s.url())):
            pass
        assert main(["store", "secure", "--db", s.url(), "--world", WORLD, "--engine", ENGINE,
                     "--sre", ALICE, "--sre", VICTOR, "--sre", ADA]) == 0
        engine = subprocess.Popen(
            [*users.as_user(ENGINE), sys.executable, "-m", "cockpit", "engine", "--db", s.url(ENGINE), "--world",
             WORLD], env=users.env(ENGINE, COCKPIT_ROLES=roles), cwd=users.root, stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL, text=True)
        assert _line(engine) == "engine active"
        s.engine = engine
        yield s
    finally:
        if engine is not None:
            engine.terminate()
            try:
                engine.wait(15)
            except subprocess.TimeoutExpired:
                engine.kill()
        if cluster is not None:
            cluster.stop()
        users.stop()


@pytest.fixture
def store(site) -> Iterator[None]:
    """The test process's own look at the store (as its owner)."""
    db = open_store(site.url())
    yield
    db.close()


def _audit(**where) -> list[AuditRow]:
    q = AuditRow.select().order_by(AuditRow.id)
    for k, v in where.items():
        q = q.where(getattr(AuditRow, k) == v)
    return list(q)


def test_a_viewers_crafted_writes_are_refused_by_the_database(site, store):
    said = site.sql(
        VICTOR,
        "UPDATE clock SET speed = 500",
        "INSERT INTO task (kind, state, spec, progress, actor, created_t, updated_t, real_created) "
        "VALUES ('release', 'queued', '{}', '{}', 'ckt-victor', 0, 0, 0)",
        "DELETE FROM host",
        "INSERT INTO audit (real_t, \"user\", role, host, action, target, details, outcome, prev_hash, hash, db_user) "
        "VALUES (0, 'ckt-ada', 'admin', 'h', 'host.release', 'x', '{}', 'done', 'p', 'h', 'ckt-victor')",
        "UPDATE audit SET outcome = 'done'",
        # asking the engine as somebody else, or jumping the queue with an id of one's own
        "INSERT INTO action_request (requester, host, method, args, role_cap, readonly, wait, state, created_real) "
        "VALUES ('ckt-ada', 'h', 'release_hosts', '{\"hosts\": [\"x\"]}', 'admin', false, true, 'queued', 0)",
        "INSERT INTO action_request (id, host, method, args, role_cap, readonly, wait, state, created_real) "
        "VALUES (-1, 'h', 'set_speed', '{}', 'viewer', false, true, 'queued', 0)",
        "UPDATE action_request SET state = 'done'",
        "CREATE TABLE mine (x int)",
        # a request the engine could not read, or too big to hold
        "INSERT INTO action_request (host, method, args, role_cap, readonly, wait, state, created_real) "
        "VALUES ('h', 'set_speed', 'not json', 'viewer', false, true, 'queued', 0)",
        "INSERT INTO action_request (host, method, args, role_cap, readonly, wait, state, created_real) "
        "VALUES ('h', 'set_speed', '[1]', 'viewer', false, true, 'queued', 0)",
        "INSERT INTO action_request (host, method, args, role_cap, readonly, wait, state, created_real) "
        "VALUES ('h', 'set_speed', '{\"x\": \"' || repeat('x', 300000) || '\"}', 'viewer', false, true, 'queued', 0)",
    )
    assert [s.startswith("permission denied") for s in said[:7]] == [True] * 7, said
    assert said[7] == "ok"  # row-level security: it matched none of the rows, its own queued ones being none
    assert said[8].startswith("permission denied for schema public"), said
    assert said[9:] == ["action_request: the arguments are not JSON",
                        "action_request: the arguments are not a JSON object",
                        "action_request: too big (arguments at most 256 KiB, host at most 64 characters)"], said
    assert RequestRow.select().where(RequestRow.state == "done", RequestRow.requester == VICTOR).count() == 0
    assert TaskRow.select().where(TaskRow.actor == VICTOR).count() == 0
    # and through Cockpit: the engine refuses, as the viewer the database says asked
    r = site.run(VICTOR, "scale-in", "--service", "feed", "--count", "1", "--yes")
    assert r.returncode == 2 and "needs role operator; you are viewer" in r.stderr, r.stderr
    (entry,) = _audit(user=VICTOR, action="service.scale_in")
    assert (entry.role, entry.outcome, entry.db_user) == ("viewer", "refused", ENGINE)


def _answered(rid: int, timeout: float = 20) -> RequestRow:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        row = RequestRow.get_by_id(rid)
        if row.state != "queued":
            return row
        time.sleep(0.1)
    raise AssertionError(f"request {rid} was not answered")


def test_an_operator_cannot_do_an_admin_action_even_by_asking_the_engine_directly(site, store):
    ecs = [h.name for h in HostRow.select().where(HostRow.instance_id.is_null(False))][:1]
    assert ecs
    before = TaskRow.select().where(TaskRow.kind == "release").count()
    # the request, written by hand, claiming admin: the engine goes by the mapping (operator)
    args = json.dumps({"hosts": ecs}).replace("'", "''")
    said = site.sql(ALICE, "INSERT INTO action_request (host, method, args, role_cap, readonly, wait, created_real) "
                           f"VALUES ('h', 'release_hosts', '{args}', 'admin', false, true, 0)")
    assert said == ["ok"]
    rid = RequestRow.select().where(RequestRow.requester == ALICE, RequestRow.method == "release_hosts").get().id
    row = _answered(rid)
    assert row.state == "refused" and "needs role admin" in row.message, row.message
    (entry,) = _audit(user=ALICE, action="host.release")
    assert (entry.role, entry.outcome, entry.details["request"], entry.db_user) == ("operator", "refused", rid, ENGINE)
    assert entry.host == "h via the local socket"
    # and writing the task the engine would have queued: the database refuses
    said = site.sql(ALICE, "INSERT INTO task (kind, state, spec, progress, actor, created_t, updated_t, "
                           f"real_created) VALUES ('release', 'queued', '{args}', '{{}}', 'ckt-alice', 0, 0, 0)")
    assert said[0].startswith("permission denied for table task")
    assert TaskRow.select().where(TaskRow.kind == "release").count() == before


def test_an_operators_action_is_done_by_the_engine_and_audited_as_them(site, store):
    r = site.run(ALICE, "scale-in", "--service", "user", "--count", "1", "--yes")
    assert r.returncode == 0, r.stderr
    assert "scale task" in r.stdout and "queued: user -1" in r.stdout
    req = RequestRow.select().where(RequestRow.requester == ALICE, RequestRow.method == "scale_in").get()
    assert (req.state, req.host) == ("done", f"{socket.gethostname()} via the local socket")
    task = TaskRow.get_by_id(req.task)
    assert (task.kind, task.actor) == ("scale_in", ALICE)
    (entry,) = _audit(user=ALICE, action="service.scale_in")
    assert (entry.role, entry.outcome, entry.db_user, entry.details["request"]) == ("operator", "done", ENGINE, req.id)
    assert entry.host == req.host  # where the database saw it come from, beside the name the Cockpit gave
    # a role lowered for a run holds in the engine too
    r = site.run(ADA, "--role", "viewer", "scale-in", "--service", "user", "--count", "1", "--yes")
    assert r.returncode == 2 and "needs role operator; you are viewer" in r.stderr
    # the SRE's Cockpit runs no engine of its own on such a store
    r = site.run(ALICE, "engine", timeout=30)
    assert r.returncode == 2 and "may not change the platform" in r.stderr


def test_a_tampered_entry_is_found_by_audit_verify(site, store):
    r = site.run(VICTOR, "audit", "verify")
    assert r.returncode == 0 and ": whole (" in r.stdout, r.stdout + r.stderr
    first = _audit()[0]
    db = AuditRow._meta.database
    db.execute_sql("ALTER TABLE audit DISABLE TRIGGER audit_append")  # only the owner could
    try:
        db.execute_sql('UPDATE audit SET "user" = %s WHERE id = %s', ("someone-else", first.id))
    finally:
        db.execute_sql("ALTER TABLE audit ENABLE TRIGGER audit_append")
    r = site.run(VICTOR, "audit", "verify")
    assert r.returncode == 1 and f"broken at entry {first.id}: its hash does not match its fields" in r.stdout
    db.execute_sql("ALTER TABLE audit DISABLE TRIGGER audit_append")
    try:
        db.execute_sql('UPDATE audit SET "user" = %s WHERE id = %s', (first.user, first.id))
    finally:
        db.execute_sql("ALTER TABLE audit ENABLE TRIGGER audit_append")


def _ask(site: Site, user: str, method: str, args: dict, role_cap: str = "operator") -> RequestRow:
    text = json.dumps(args).replace("'", "''")
    said = site.sql(user, "INSERT INTO action_request (host, method, args, role_cap, readonly, wait, created_real) "
                          f"VALUES ('h', '{method}', '{text}', '{role_cap}', false, true, 0) RETURNING id")
    assert said == ["ok"], said
    rid = RequestRow.select(pw.fn.MAX(RequestRow.id)).where(RequestRow.requester == user).scalar()
    return _answered(rid)


def test_a_crafted_request_is_held_to_the_actions_own_types_and_audited(site, store):
    row = _ask(site, ALICE, "scale_in", {"service": "user", "count": 1.5})
    assert row.state == "refused" and "count: expected a whole number, got 1.5" in row.message
    row = _ask(site, ALICE, "scale_in", {"service": "nosuch", "count": 1})
    assert row.state == "failed" and "no service named 'nosuch'" in row.message
    row = _ask(site, ALICE, "set_speed", {"speed": 2}, role_cap="superuser")
    assert row.state == "refused" and "is not a role" in row.message
    for rid, outcome in ((row.id - 2, "refused"), (row.id - 1, "failed"), (row.id, "refused")):
        (entry,) = _audit(target=f"request {rid}")
        assert (entry.user, entry.outcome) == (ALICE, outcome)
        assert entry.role in ("operator", "unknown")  # never the role the request claimed
    assert TaskRow.select().where(TaskRow.actor == ALICE, TaskRow.kind == "scale_in",
                                  TaskRow.spec.contains("1.5")).count() == 0


def test_locks_an_sre_can_take_do_not_stall_the_engine(site, store):
    mine = _ask(site, ALICE, "set_paused", {"paused": False})  # answered: now hold a queued one
    text = json.dumps({"paused": False})
    holder = _hold(site, ALICE, [
        "INSERT INTO action_request (host, method, args, role_cap, readonly, wait, created_real) "
        f"VALUES ('h', 'set_paused', '{text}', 'operator', false, true, 0)",
        "SELECT id FROM action_request WHERE state = 'queued' FOR UPDATE",
        "SELECT pg_advisory_lock(7163384592751256932)",  # the audit chain's old lock: not the engine's now
    ], seconds=8)
    try:
        started = time.monotonic()
        r = site.run(VICTOR, "audit", "verify")
        assert r.returncode == 0
        r = site.run(ADA, "scale-in", "--service", "user", "--count", "1", "--yes")
        assert r.returncode == 0, r.stderr
        assert time.monotonic() - started < 8, "the engine waited on a lock an SRE held"
    finally:
        holder.wait(30)
    assert mine.state == "done"


def test_secure_refuses_to_make_an_engine_an_sre_too(site, store, capsys):
    code = main(["store", "secure", "--db", site.url(), "--world", WORLD, "--sre", ENGINE])
    assert code == 2
    err = capsys.readouterr().err
    assert "ckt-engine: a role is an engine or an SRE, not both" in err and len(err.strip().splitlines()) == 1
    assert site.sql(ENGINE, "SELECT pg_has_role('ckt-engine', 'cockpit_sre', 'MEMBER')") == ["ok"]
    db = AuditRow._meta.database
    assert db.execute_sql("SELECT pg_has_role('ckt-engine', 'cockpit_sre', 'MEMBER')").fetchone()[0] is False
