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
        # asking the engine as somebody else
        "INSERT INTO action_request (requester, host, method, args, role_cap, readonly, wait, state, created_real) "
        "VALUES ('ckt-ada', 'h', 'release_hosts', '{\"hosts\": [\"x\"]}', 'admin', false, true, 'queued', 0)",
        "UPDATE action_request SET state = 'done'",
        "CREATE TABLE mine (x int)",
    )
    assert [s.startswith("permission denied") for s in said[:5]] == [True] * 5, said
    assert said[5] == "action_request: ckt-victor may ask only as themselves, not as ckt-ada", said
    assert said[6] == "ok"  # row-level security: it matched none of the rows, its own queued ones being none
    assert said[7].startswith("permission denied for schema public"), said
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
    assert (req.state, req.host) == ("done", socket.gethostname())
    task = TaskRow.get_by_id(req.task)
    assert (task.kind, task.actor) == ("scale_in", ALICE)
    (entry,) = _audit(user=ALICE, action="service.scale_in")
    assert (entry.role, entry.outcome, entry.db_user, entry.details["request"]) == ("operator", "done", ENGINE, req.id)
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
