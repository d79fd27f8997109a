"""Opening the store: SQLite in WAL mode under the user's data directory, or PostgreSQL by URL.

A new (empty) store is created. Any other store is only opened, after a check that it is whole:
it is never migrated, repaired or re-seeded by a command that did not ask for it. An older
schema is upgraded by `cockpit store upgrade` (which keeps a backup); a damaged store is refused
with one line that says what is wrong and the way out.

Several threads and processes write (the engine's jobs, the init-status writer, a second
cockpit), so SQLite runs in WAL mode with a busy timeout: writers queue instead of failing.
"""

from __future__ import annotations

import os
import sqlite3
import stat
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import peewee as pw
from playhouse.migrate import SchemaMigrator, migrate

from cockpit.store.errors import WAY_OUT, StoreError
from cockpit.store.models import ALL_MODELS, JSONField, Meta, proxy

SCHEMA_VERSION = 9
BUSY_TIMEOUT_MS = 10_000

Migration = Callable[[pw.Database, SchemaMigrator], None]

__all__ = ["StoreError", "open_store", "upgrade_store", "reset_store", "all_or_nothing", "now_sql", "SCHEMA_VERSION"]


def _v2_container_ref(db: pw.Database, migrator: SchemaMigrator) -> None:
    migrate(migrator.add_column("container", "ref", pw.CharField(null=True)))


def _v3_hosts_orders_moves(db: pw.Database, migrator: SchemaMigrator) -> None:
    from cockpit.store.models import EcsCallRow, EcsOrderRow, PoolMoveRow

    migrate(
        migrator.add_column("host", "init_task", pw.CharField(null=True)),
        migrator.add_column("host", "order", pw.IntegerField(null=True)),
        migrator.add_column("host", "expiry_warned", pw.BooleanField(default=False)),
        migrator.add_index("host", ("status",), False),
    )
    db.create_tables([EcsOrderRow, EcsCallRow, PoolMoveRow])


def _v4_addresses_and_calls(db: pw.Database, migrator: SchemaMigrator) -> None:
    from cockpit.store.addressing import backfill_addresses
    from cockpit.store.models import CallRow

    migrate(
        migrator.add_column("host", "address", pw.CharField(null=True)),
        migrator.add_column("container", "name", pw.CharField(null=True)),
        migrator.add_column("container", "state", pw.CharField(default="running")),
        migrator.add_column("container", "address", pw.CharField(null=True)),
        migrator.add_column("container", "ports", JSONField(default=list)),
    )
    db.create_tables([CallRow])
    backfill_addresses(db)
    migrate(migrator.add_index("container", ("name",), True))


def _v5_registries(db: pw.Database, migrator: SchemaMigrator) -> None:
    from cockpit.store.models import ManifestRow, RegistryHealthRow, RegistryImageRow, ReplicationRow, ReplicationTaskRow

    db.create_tables([RegistryImageRow, ManifestRow, ReplicationRow, ReplicationTaskRow, RegistryHealthRow])


def _v6_autoscaling(db: pw.Database, migrator: SchemaMigrator) -> None:
    from cockpit.store.models import ScaleDecisionRow, ScaleMemoryRow, ScaleRuleRow, ServiceMetricRow

    db.create_tables([ScaleRuleRow, ScaleMemoryRow, ScaleDecisionRow, ServiceMetricRow])
    set_meta("scale_rules", "from_world")  # the world's rules are written when it is next opened with it


def _v7_flows(db: pw.Database, migrator: SchemaMigrator) -> None:
    from cockpit.store.models import FlowItemRow

    db.create_tables([FlowItemRow])


def _v8_audit_chain(db: pw.Database, migrator: SchemaMigrator) -> None:
    """The audit log gets its host and its hash chain; the entries it holds are chained in id order."""
    have = {c.name for c in db.get_columns("audit")}
    wanted = [("host", pw.CharField(default="")), ("prev_hash", pw.CharField(max_length=64, default="")),
              ("hash", pw.CharField(max_length=64, default=""))]
    migrate(*[migrator.add_column("audit", name, f) for name, f in wanted if name not in have])
    db.execute_sql('DROP INDEX IF EXISTS "audit_prev_hash"')  # chained again below, then made unique
    chain_audit(db)
    migrate(migrator.add_index("audit", ("prev_hash",), True))


def _v9_requests(db: pw.Database, migrator: SchemaMigrator) -> None:
    """Action requests (asked of the engine where roles are enforced), the database role of each
    audit entry (which PostgreSQL's triggers keep honest), and how each backend last answered."""
    from cockpit.store.guards import install_triggers
    from cockpit.store.models import BackendRow, RequestRow

    if "db_user" not in {c.name for c in db.get_columns("audit")}:
        migrate(migrator.add_column("audit", "db_user", pw.CharField(null=True)))
    db.create_tables([RequestRow, BackendRow])
    install_triggers(db)


def chain_audit(db: pw.Database) -> int:
    """Chain every audit entry in id order (the v8 upgrade). Returns how many there are."""
    from cockpit.core.audit_chain import FIELDS, GENESIS, entry_hash
    from cockpit.store.models import AuditRow

    prev, rows = GENESIS, []
    cols = [AuditRow.id] + [getattr(AuditRow, k) for k in FIELDS if k != "id"]  # the columns of schema 8
    for r in AuditRow.select(*cols).order_by(AuditRow.id):
        h = entry_hash(prev, {k: getattr(r, k) for k in FIELDS})
        rows.append((prev, h, r.id))
        prev = h
    q0, q1 = db.quote[0], db.quote[1]
    sql = (f"UPDATE {q0}audit{q1} SET {q0}prev_hash{q1} = {db.param}, {q0}hash{q1} = {db.param} "
           f"WHERE {q0}id{q1} = {db.param}")
    for i in range(0, len(rows), 5000):
        db.cursor().executemany(sql, rows[i:i + 5000])
    return len(rows)


# Upgrades in place: MIGRATIONS[n] takes a store at version n-1 to version n.
MIGRATIONS: dict[int, Migration] = {2: _v2_container_ref, 3: _v3_hosts_orders_moves, 4: _v4_addresses_and_calls,
                                    5: _v5_registries, 6: _v6_autoscaling, 7: _v7_flows, 8: _v8_audit_chain,
                                    9: _v9_requests}


def data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return Path(base) / "cockpit"


def default_url(world_name: str) -> str:
    return str(data_dir() / f"{world_name}.db")


# --- connecting ------------------------------------------------------------------------------


class StoreFault(StoreError, pw.DatabaseError):
    """A damaged or full store met in the middle of work: a StoreError for the user, and still a
    database error for code that handles those (the engine shows it and carries on trying)."""


class _Sqlite(pw.SqliteDatabase):
    def execute_sql(self, sql, params=None):
        try:
            return super().execute_sql(sql, params)
        except pw.DatabaseError as e:
            text = str(e)
            if "malformed" in text or "not a database" in text or "disk is full" in text or "disk I/O" in text:
                raise StoreFault(f"store {self.database}: {describe(e, self.database)}") from e
            raise


def _sqlite(path: str) -> pw.SqliteDatabase:
    if path != ":memory:":
        p = Path(path).expanduser()
        parent = p.resolve().parent
        try:
            parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise StoreError(f"store {path}: cannot create directory {parent}: {e.strerror}") from None
        try:
            mode = os.stat(p).st_mode
        except OSError:
            mode = None
        if mode is not None and not stat.S_ISREG(mode):
            raise StoreError(f"store {path}: not a regular file")
    return _Sqlite(
        path,
        pragmas={
            "journal_mode": "wal",
            "busy_timeout": BUSY_TIMEOUT_MS,
            "synchronous": "normal",
            "foreign_keys": 1,
        },
        timeout=BUSY_TIMEOUT_MS / 1000,
        check_same_thread=False,
        # A transaction that reads, then writes, fails at once (not after the busy timeout) if
        # another connection wrote in between: take the write lock when the transaction begins.
        lock_type="IMMEDIATE",
    )


class _Postgres(pw.PostgresqlDatabase):
    """PostgreSQL that gets over a server restart: a connection the server dropped is replaced
    before the next statement outside a transaction (the statement that met the drop failed, and
    its caller said so; nothing is retried behind its back)."""

    def cursor(self, named_cursor=None):
        conn = self._state.conn
        if conn is not None and not self._state.closed and getattr(conn, "broken", False) \
                and self.transaction_depth() == 0:
            self.close()
        return super().cursor(named_cursor)

    def rollback(self):
        conn = self._state.conn
        if conn is not None and getattr(conn, "broken", False):
            return  # nothing to roll back on a dropped connection: the error that dropped it stands
        super().rollback()


def connect(url: str) -> pw.Database:
    """A database from a path or a URL (sqlite:///x.db, postgresql://…)."""
    if "://" not in url:
        return _sqlite(url)
    if url.startswith("sqlite:///"):
        return _sqlite(url[len("sqlite:///") :] or ":memory:")
    from playhouse.db_url import connect as url_connect
    from playhouse.db_url import parse

    try:
        if url.startswith(("postgresql://", "postgres://")):
            return _Postgres(**parse(url))
        return url_connect(url)
    except (RuntimeError, ValueError, ImportError, pw.ImproperlyConfigured) as e:
        raise StoreError(f"store {shown(url)}: {e}") from None


def shown(url: str) -> str:
    """A URL fit for a message: without a password, in the user part or the query."""
    if "://" not in url:
        return url
    import re

    scheme, rest = url.split("://", 1)
    if "@" in rest.split("?", 1)[0]:
        cred, host = rest.split("@", 1)
        rest = f"{cred.split(':', 1)[0]}@{host}"
    return f"{scheme}://" + re.sub(r"(?i)((?:^|[?&])password=)[^&]*", r"\1***", rest)


def _real(db: pw.Database) -> pw.Database:
    return db.obj if isinstance(db, pw.DatabaseProxy) else db


def is_sqlite(db: pw.Database) -> bool:
    return isinstance(_real(db), pw.SqliteDatabase)


def is_postgres(db: pw.Database) -> bool:
    return isinstance(_real(db), pw.PostgresqlDatabase)


def now_sql(db: pw.Database) -> pw.SQL:
    """The database's clock, as epoch seconds: one clock for every process and host on the store."""
    db = _real(db)
    if isinstance(db, pw.PostgresqlDatabase):
        return pw.SQL("extract(epoch from clock_timestamp())::double precision")
    return pw.SQL("((julianday('now') - 2440587.5) * 86400.0)")


def db_now(db: pw.Database) -> float:
    return float(db.execute(pw.Select(columns=[now_sql(db)])).fetchone()[0])


# --- errors and transactions -----------------------------------------------------------------

_ROLLBACK_NOISE = ("cannot rollback", "no such savepoint", "no transaction is active")


FULL_BELOW = 1 << 20  # free bytes under which an I/O error on the store's disk is read as that disk full


def describe(e: BaseException, path: str | None = None) -> str:
    """What a database error means for the user. SQLite rolls a transaction back by itself on a
    full disk; the ROLLBACK that follows then fails and hides the real cause: find it. A full disk
    often shows as an I/O error instead (growing the WAL's shared memory file fails first): with
    the store's `path`, its disk's free space tells which."""
    if isinstance(e, StoreFault) and e.__cause__ is not None:  # described once already: from its cause
        return describe(e.__cause__, path)
    seen = e
    while seen is not None and any(n in str(seen) for n in _ROLLBACK_NOISE) and seen.__context__ is not None:
        seen = seen.__context__
    text = " ".join(str(seen).split()) or type(seen).__name__  # drivers' messages run over several lines
    if "disk is full" in text or "disk I/O" in text:
        free = _free_bytes(path) if path else None
        left = f", {free:,} bytes free there" if free is not None else ""
        if "disk is full" in text or (free is not None and free < FULL_BELOW):
            return f"the disk is full ({text}{left})"
        return f"the disk failed a read or write ({text}, {_sqlite_name(seen) or 'I/O error'}{left}): check that disk"
    if "malformed" in text or "not a database" in text:
        return f"the store is damaged ({text}): {WAY_OUT}"
    return text


def _sqlite_name(e: BaseException | None) -> str | None:
    """SQLite's own name for the error (SQLITE_IOERR_SHMSIZE), from the driver's exception."""
    while e is not None:
        name = getattr(e, "sqlite_errorname", None)
        if name:
            return name
        e = e.__cause__ or e.__context__
    return None


def _free_bytes(path: str) -> int | None:
    """Free bytes on the filesystem holding the SQLite file `path` (None for a URL or no answer)."""
    if "://" in path or path == ":memory:":
        return None
    try:
        st = os.statvfs(Path(path).expanduser().resolve().parent)
    except OSError:
        return None
    return st.f_bavail * st.f_frsize


@contextmanager
def all_or_nothing(db: pw.Database, what: str) -> Iterator[None]:
    """One transaction: all of it lands, or nothing does and StoreError says why."""
    try:
        with db.atomic():
            yield
    except (pw.PeeweeException, sqlite3.Error) as e:  # a StoreFault too (described from its cause)
        raise StoreError(f"{what}: {describe_for(e, db)}; nothing was written") from None


def describe_for(e: BaseException, db: pw.Database) -> str:
    """`describe` for an error met on `db`: its file's disk is asked about when it is SQLite."""
    real = _real(db)
    return describe(e, real.database if isinstance(real, pw.SqliteDatabase) else None)


# --- opening, checking, upgrading --------------------------------------------------------------

_TABLES = {m._meta.table_name: m for m in ALL_MODELS}


def _version(db: pw.Database, url: str) -> int:
    row = Meta.get_or_none(Meta.key == "schema_version")
    if row is None:
        raise StoreError(f"store {url}: it records no schema version: the store is damaged; {WAY_OUT}")
    try:
        v = int(row.value)
    except (TypeError, ValueError):
        v = 0
    if v < 1:
        raise StoreError(f"store {url}: schema version {row.value!r} is not a version: the store is damaged; {WAY_OUT}")
    return v


def _state(db: pw.Database, url: str) -> int | None:
    """The store's schema version, or None when it is new (holds none of our tables)."""
    tables = set(db.get_tables())
    ours = tables & set(_TABLES)
    if not ours:
        if tables and is_sqlite(db):
            names = ", ".join(sorted(tables)[:5])
            raise StoreError(f"store {url}: not a Cockpit store (it holds other tables: {names})")
        return None
    if "meta" not in tables:
        raise StoreError(f"store {url}: its meta table is missing: the store is damaged; {WAY_OUT}")
    return _version(db, url)


def problems(db: pw.Database) -> list[str]:
    """What is missing from a store at the current schema: tables, and columns of tables."""
    out = []
    tables = set(db.get_tables())
    for name, model in _TABLES.items():
        if name not in tables:
            out.append(f"table {name} is missing")
            continue
        have = {c.name for c in db.get_columns(name)}
        lost = [f.column_name for f in model._meta.sorted_fields if f.column_name not in have]
        if lost:
            out.append(f"table {name} has lost column(s) {', '.join(lost)}")
    return out


def _create(db: pw.Database) -> None:
    from cockpit.store.guards import install_triggers

    with db.atomic():
        db.create_tables(ALL_MODELS)
        install_triggers(db)
        set_meta("schema_version", str(SCHEMA_VERSION))
        set_meta("store_id", uuid.uuid4().hex[:12])


def open_store(url: str, *, reset: bool = False) -> pw.Database:
    """Connect and bind the models; create the schema of a new store, check that of any other.
    With `reset` (the user asked to start again) a damaged or older store is let through: the
    caller empties it. Raises StoreError with a message fit for a user."""
    where = shown(url)
    db = connect(url)
    proxy.initialize(db)
    try:
        db.connect(reuse_if_open=True)
        if reset:
            if not set(db.get_tables()) & set(_TABLES):
                _state(db, where)  # a file of another program stays refused
            return db
        version = _state(db, where)
        if version is None:
            _create(db)
            return db
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"store {where}: schema version {version}, newer than this Cockpit's {SCHEMA_VERSION}: "
                "upgrade Cockpit, or use another --db"
            )
        if version < SCHEMA_VERSION:
            raise StoreError(
                f"store {where}: schema version {version}; this Cockpit uses {SCHEMA_VERSION}: "
                f"run `cockpit store upgrade --db {where}` (it keeps a backup), or use another --db"
            )
        wrong = problems(db)
        if wrong:
            raise StoreError(f"store {where}: {'; '.join(wrong[:3])}: the store is damaged; {WAY_OUT}")
    except StoreError:
        db.close()
        raise
    except (pw.PeeweeException, sqlite3.Error) as e:
        db.close()
        raise StoreError(f"store {where}: {describe(e, url)}") from None
    return db


def backup_path(url: str, version: int) -> Path:
    return Path(url).with_name(f"{Path(url).name}.v{version}.bak")


def upgrade_store(url: str) -> tuple[int, int, str | None]:
    """Take a store at an older schema to this Cockpit's, all migrations in one transaction, after
    a copy of a SQLite file is kept beside it. Returns (from, to, backup path or None)."""
    where = shown(url)
    db = connect(url)
    proxy.initialize(db)
    try:
        db.connect(reuse_if_open=True)
        version = _state(db, where)
        if version is None:
            raise StoreError(f"store {where}: it is empty: there is nothing to upgrade")
        if version > SCHEMA_VERSION:
            raise StoreError(f"store {where}: schema version {version} is newer than this Cockpit's {SCHEMA_VERSION}")
        if version == SCHEMA_VERSION:
            return version, version, None
        saved = None
        if is_sqlite(db) and db.database != ":memory:":
            saved = str(backup_path(db.database, version))
            target = sqlite3.connect(saved)
            try:  # SQLite's own copy: consistent even while another process writes
                db.connection().backup(target)
            finally:
                target.close()
        migrator = SchemaMigrator.from_database(db)
        with all_or_nothing(db, f"store {where}: upgrade from schema {version}"):
            for target in range(version + 1, SCHEMA_VERSION + 1):
                MIGRATIONS[target](db, migrator)
                set_meta("schema_version", str(target))
            from cockpit.store.guards import SECURED_KEY, regrant

            if get_meta(SECURED_KEY) == "1":  # the new tables get the roles' privileges too
                regrant(db)
        return version, SCHEMA_VERSION, saved
    except StoreError:
        raise
    except (pw.PeeweeException, sqlite3.Error, OSError) as e:
        raise StoreError(f"store {where}: {describe(e, url)}") from None
    finally:
        db.close()


def reset_store(db: pw.Database) -> None:
    """Drop every table of ours and create them again, in one transaction (the caller's). The store
    gets a new id: client tokens derive from it and from task and order ids, which start again
    from 1, so the new platform's calls are never taken for the old one's."""
    from cockpit.store.guards import SECURED_KEY, install_triggers, regrant

    try:  # a store that enforced roles goes on enforcing them (a savepoint: a damaged meta may fail)
        with db.atomic():
            secured = get_meta(SECURED_KEY) == "1"
    except (pw.PeeweeException, sqlite3.Error):
        secured = False
    db.drop_tables(ALL_MODELS, safe=True)
    db.create_tables(ALL_MODELS)
    install_triggers(db)
    if secured:
        regrant(db)
        set_meta(SECURED_KEY, "1")
    set_meta("schema_version", str(SCHEMA_VERSION))
    set_meta("store_id", uuid.uuid4().hex[:12])


def integrity(db: pw.Database) -> list[str]:
    """A full check of a SQLite file's pages and indexes against their tables (empty when whole),
    and of our schema."""
    out = problems(db)
    if is_sqlite(db):
        rows = [" ".join(r[0].split()) for r in db.execute_sql("PRAGMA integrity_check").fetchall()]
        out += [r for r in rows if r != "ok"]
    return out


# --- writing ---------------------------------------------------------------------------------


def bulk_insert(model: type[pw.Model], rows: list[dict]) -> None:
    """Insert many rows (dicts with the same keys) with one prepared statement.

    peewee's insert_many spends most of its time building SQL text, which made seeding 2,000
    hosts and their history take seconds; here values go to the driver as they are, defaults
    filled once, and only our JSON columns are encoded."""
    if not rows:
        return
    db = model._meta.database
    q0, q1 = db.quote[0], db.quote[1]
    given = [f for f in model._meta.sorted_fields if f.name in rows[0]]
    missing = [f for f in model._meta.sorted_fields if f.name not in rows[0] and not isinstance(f, pw.AutoField)]
    tail = tuple(f.db_value(f.default() if callable(f.default) else f.default) for f in missing)
    columns = given + missing
    sql = "INSERT INTO {} ({}) VALUES ({})".format(
        f"{q0}{model._meta.table_name}{q1}",
        ", ".join(f"{q0}{f.column_name}{q1}" for f in columns),
        ", ".join([db.param] * len(columns)),
    )
    names = [f.name for f in given]
    encode = [(i, f) for i, f in enumerate(given) if isinstance(f, JSONField)]
    if encode:
        values = []
        for row in rows:
            v = [row[n] for n in names]
            for i, f in encode:
                v[i] = f.db_value(v[i])
            values.append(tuple(v) + tail)
    else:
        values = [tuple(row[n] for n in names) + tail for row in rows]
    with db.atomic():
        db.cursor().executemany(sql, values)
    if "id" in names and is_postgres(db):
        sync_sequence(model)


def bulk_update(model: type[pw.Model], fields: tuple[str, ...], key: str, rows: list[tuple]) -> None:
    """Set `fields` of many rows, each found by its `key`, with one prepared statement: each row
    is the fields' values then the key's, encoded as the model's fields encode them. For what
    peewee would build one UPDATE per row for (the same reason as bulk_insert)."""
    if not rows:
        return
    db = model._meta.database
    q0, q1 = db.quote[0], db.quote[1]
    f = model._meta.fields
    sql = "UPDATE {} SET {} WHERE {} = {}".format(
        f"{q0}{model._meta.table_name}{q1}",
        ", ".join(f"{q0}{f[n].column_name}{q1} = {db.param}" for n in fields),
        f"{q0}{f[key].column_name}{q1}", db.param,
    )
    encode = [f[n].db_value for n in (*fields, key)]
    with db.atomic():
        db.cursor().executemany(sql, [tuple(e(v) for e, v in zip(encode, row)) for row in rows])


def sync_sequence(model: type[pw.Model]) -> None:
    """After rows were inserted with their ids given, PostgreSQL's sequence must move past them."""
    table = model._meta.table_name
    model._meta.database.execute_sql(
        f"SELECT setval(pg_get_serial_sequence('\"{table}\"', 'id'), COALESCE((SELECT MAX(id) FROM \"{table}\"), 1))"
    )


def get_meta(key: str, default: str | None = None) -> str | None:
    row = Meta.get_or_none(Meta.key == key)
    return row.value if row else default


def set_meta(key: str, value: str) -> None:
    Meta.insert(key=key, value=value).on_conflict(conflict_target=[Meta.key], update={Meta.value: value}).execute()


def bump_version() -> None:
    """Tell every reader that hosts or containers changed (the engine reloads its arrays)."""
    set_meta("platform_version", str(int(get_meta("platform_version", "0") or 0) + 1))
