"""What PostgreSQL itself enforces, so that roles hold for someone with `psql` too.

Two triggers, on every PostgreSQL store:
- an audit entry must name, in `db_user`, the database role that writes it (session_user, which
  `SET ROLE` cannot change), and entries are never changed or removed;
- an action request is always the session's own: `requester` is session_user (asking as someone
  else is refused), it starts queued, and its time is the database's.

`cockpit store secure` (the store's owner, once) adds the roles: engines run as members of
`cockpit_engine` (they write the platform; the audit log only by appending), each SRE's database
role is a member of `cockpit_sre` (they read everything and may only insert requests as
themselves, and withdraw their own while queued: grants plus row-level security). An engine
then checks the requester's role before acting on a request (engine/requests.py).
"""

from __future__ import annotations

import re

import peewee as pw

from cockpit.store.db import is_postgres
from cockpit.store.errors import StoreError

ENGINE_GROUP = "cockpit_engine"
SRE_GROUP = "cockpit_sre"
SECURED_KEY = "roles_enforced"
ROLE_NAME = re.compile(r"^[a-z_][a-z0-9_.-]{0,62}$")
MAX_ROLES = 500

_TRIGGERS = r"""
CREATE OR REPLACE FUNCTION cockpit_audit_append() RETURNS trigger LANGUAGE plpgsql
SET search_path = pg_catalog AS $$
BEGIN
  IF TG_OP <> 'INSERT' THEN
    RAISE EXCEPTION 'audit: the log is append-only (% refused)', TG_OP USING ERRCODE = '42501';
  END IF;
  IF NEW.db_user IS DISTINCT FROM session_user THEN
    RAISE EXCEPTION 'audit: an entry must name the database role that writes it (%), not %',
      session_user, coalesce(NEW.db_user, 'none') USING ERRCODE = '42501';
  END IF;
  RETURN NEW;
END $$;
DROP TRIGGER IF EXISTS audit_append ON audit;
CREATE TRIGGER audit_append BEFORE INSERT OR UPDATE OR DELETE ON audit
  FOR EACH ROW EXECUTE FUNCTION cockpit_audit_append();

CREATE OR REPLACE FUNCTION cockpit_request_own() RETURNS trigger LANGUAGE plpgsql
SET search_path = pg_catalog AS $$
DECLARE
  args jsonb;
BEGIN
  IF NEW.requester IS NOT NULL AND NEW.requester <> session_user THEN
    RAISE EXCEPTION 'action_request: % may ask only as themselves, not as %', session_user, NEW.requester
      USING ERRCODE = '42501';
  END IF;
  IF length(NEW.args) > 262144 OR length(NEW.host) > 64 THEN
    RAISE EXCEPTION 'action_request: too big (arguments at most 256 KiB, host at most 64 characters)'
      USING ERRCODE = '22023';
  END IF;
  BEGIN
    args := NEW.args::jsonb;
  EXCEPTION WHEN others THEN
    RAISE EXCEPTION 'action_request: the arguments are not JSON' USING ERRCODE = '22023';
  END;
  IF jsonb_typeof(args) <> 'object' THEN
    RAISE EXCEPTION 'action_request: the arguments are not a JSON object' USING ERRCODE = '22023';
  END IF;
  IF (SELECT count(*) FROM public.action_request r WHERE r.requester = session_user AND r.state = 'queued') >= 20 THEN
    RAISE EXCEPTION 'action_request: % has 20 requests waiting already', session_user USING ERRCODE = '54000';
  END IF;
  NEW.requester := session_user;
  -- where the database saw it come from; the name the Cockpit gave is kept beside it
  NEW.host := left(coalesce(NEW.host, ''), 64) || ' via ' || coalesce(host(inet_client_addr()), 'the local socket');
  NEW.state := 'queued';
  NEW.message := NULL;
  NEW.task := NULL;
  NEW.answered_real := NULL;
  NEW.created_real := extract(epoch from clock_timestamp());
  RETURN NEW;
END $$;
DROP TRIGGER IF EXISTS request_own ON action_request;
CREATE TRIGGER request_own BEFORE INSERT ON action_request
  FOR EACH ROW EXECUTE FUNCTION cockpit_request_own();
"""


def install_triggers(db: pw.Database) -> None:
    """The two triggers (PostgreSQL only; SQLite's file mode decides who writes at all)."""
    if is_postgres(db):
        db.cursor().execute(_TRIGGERS)  # no parameters: its RAISE formats keep their %


def _ident(name: str) -> str:
    if not ROLE_NAME.match(name):
        raise StoreError(f"database role {name!r}: not a role name (lower-case letters, digits, _ . -; "
                         "at most 63 characters, starting with a letter or _)")
    return f'"{name}"'


def _grants(tables: list[str]) -> list[str]:
    """Privileges of the two groups on the store's tables (every statement can be run again)."""
    eng, sre = _ident(ENGINE_GROUP), _ident(SRE_GROUP)
    plain = ", ".join(f'"{t}"' for t in tables if t not in ("audit", "action_request"))
    every = ", ".join(f'"{t}"' for t in tables)
    out = [
        f"REVOKE ALL ON {every} FROM PUBLIC",
        "REVOKE CREATE ON SCHEMA public FROM PUBLIC",
        f"GRANT SELECT, INSERT, UPDATE, DELETE ON {plain} TO {eng}",
        f'GRANT SELECT, INSERT ON "audit" TO {eng}',
        f'GRANT SELECT, UPDATE ON "action_request" TO {eng}',
        f"GRANT SELECT ON {every} TO {sre}",
        # not the id (a queue jumped, a clash), the requester, the answer: the trigger sets what it must
        f'GRANT INSERT (host, method, args, role_cap, readonly, wait, state, created_real), UPDATE (state) '
        f'ON "action_request" TO {sre}',
        'ALTER TABLE "action_request" ENABLE ROW LEVEL SECURITY',
    ]
    policies = {
        "request_engine": f"FOR ALL TO {eng} USING (true) WITH CHECK (true)",
        "request_read_own": f"FOR SELECT TO {sre} USING (requester = session_user)",
        "request_ask": f"FOR INSERT TO {sre} WITH CHECK (requester = session_user)",
        "request_withdraw": f"FOR UPDATE TO {sre} USING (requester = session_user AND state = 'queued') "
                            "WITH CHECK (requester = session_user AND state = 'withdrawn')",
    }
    for name, rule in policies.items():
        out += [f'DROP POLICY IF EXISTS {name} ON "action_request"', f'CREATE POLICY {name} ON "action_request" {rule}']
    return out


def _sequences(db: pw.Database, tables: list[str]) -> list[str]:
    from cockpit.store.models import ALL_MODELS

    serial = {m._meta.table_name for m in ALL_MODELS if isinstance(m._meta.primary_key, pw.AutoField)}
    eng, sre = _ident(ENGINE_GROUP), _ident(SRE_GROUP)
    out = []
    for t in (t for t in tables if t in serial):
        seq = db.execute_sql("SELECT pg_get_serial_sequence(%s, 'id')", (f'"{t}"',)).fetchone()[0]
        if seq:
            out.append(f"GRANT USAGE, SELECT ON SEQUENCE {seq} TO {eng}")
            if t == "action_request":
                out.append(f"GRANT USAGE ON SEQUENCE {seq} TO {sre}")
    return out


def _member_of(db: pw.Database, name: str, group: str) -> bool:
    """Whether `name` is already in `group` (directly or through another role)."""
    row = db.execute_sql(
        "WITH RECURSIVE up(oid) AS (SELECT oid FROM pg_roles WHERE rolname = %s UNION "
        "SELECT m.roleid FROM pg_auth_members m JOIN up ON m.member = up.oid) "
        "SELECT EXISTS (SELECT 1 FROM up JOIN pg_roles r ON r.oid = up.oid WHERE r.rolname = %s)",
        (name, group)).fetchone()
    return bool(row[0])


def _group(name: str) -> str:
    return (f"DO $$ BEGIN CREATE ROLE {_ident(name)} NOLOGIN; "
            "EXCEPTION WHEN duplicate_object THEN NULL; END $$")


def _member(name: str, group: str) -> list[str]:
    return [f"DO $$ BEGIN CREATE ROLE {_ident(name)} LOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $$",
            f"GRANT {_ident(group)} TO {_ident(name)}"]


def secure(db: pw.Database, *, engines: list[str], sres: list[str]) -> list[str]:
    """Create the two groups (and the login roles named), grant them what they may do, and mark
    the store as enforcing roles. In one transaction; run by the store's owner. Returns what was
    done, in words."""
    from cockpit.store.db import set_meta
    from cockpit.store.models import ALL_MODELS

    if not is_postgres(db):
        raise StoreError("store secure: roles are enforced by PostgreSQL only; on SQLite the store file's "
                         "mode and group decide who may write (chmod/chgrp it)")
    if len(engines) + len(sres) > MAX_ROLES:
        raise StoreError(f"store secure: at most {MAX_ROLES} roles at once")
    both = set(engines) & set(sres)
    both |= {n for n in engines if _member_of(db, n, SRE_GROUP)} | {n for n in sres if _member_of(db, n, ENGINE_GROUP)}
    if both:
        raise StoreError(f"store secure: {', '.join(sorted(both))}: a role is an engine or an SRE, not both "
                         f"(REVOKE it from {ENGINE_GROUP} or {SRE_GROUP} first)")
    tables = [m._meta.table_name for m in ALL_MODELS]
    statements = [_group(ENGINE_GROUP), _group(SRE_GROUP), *_grants(tables)]
    for name in engines:
        statements += _member(name, ENGINE_GROUP)
    for name in sres:
        statements += _member(name, SRE_GROUP)
    with db.atomic():
        install_triggers(db)
        for sql in statements + _sequences(db, tables):
            db.execute_sql(sql)
        set_meta(SECURED_KEY, "1")
    said = [f"groups {ENGINE_GROUP} (writes the platform) and {SRE_GROUP} (reads, asks the engine)"]
    said += [f"engine role {n}" for n in engines] + [f"SRE role {n}" for n in sres]
    return said


def regrant(db: pw.Database) -> None:
    """After an upgrade or a reset of a secured store: new tables get the groups' privileges too."""
    from cockpit.store.models import ALL_MODELS

    tables = [m._meta.table_name for m in ALL_MODELS]
    for sql in _grants(tables) + _sequences(db, tables):
        db.execute_sql(sql)


def secured(db: pw.Database) -> bool:
    from cockpit.store.db import get_meta

    return is_postgres(db) and get_meta(SECURED_KEY) == "1"


def may_write(db: pw.Database) -> bool:
    """Whether this connection may change the platform itself (an engine's role, the owner, a
    superuser), rather than ask an engine. True on SQLite and on a store that enforces no roles."""
    if not secured(db):
        return True
    row = db.execute_sql(
        "SELECT pg_has_role(session_user, %s, 'MEMBER') OR (SELECT rolsuper FROM pg_roles WHERE rolname = session_user)"
        " OR (SELECT tableowner = session_user FROM pg_tables WHERE tablename = 'audit' LIMIT 1)",
        (ENGINE_GROUP,)).fetchone()
    return bool(row[0])
