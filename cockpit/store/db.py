"""Opening the store: SQLite in WAL mode under the user's data directory, or any peewee URL.

Several threads and processes write (the engine's jobs, the init-status writer, a second
cockpit), so SQLite runs in WAL mode with a busy timeout: writers queue instead of failing.
"""

from __future__ import annotations

import os
import sqlite3
import uuid
from collections.abc import Callable
from pathlib import Path

import peewee as pw
from playhouse.migrate import SchemaMigrator, migrate

from cockpit.store.models import ALL_MODELS, JSONField, Meta, proxy

SCHEMA_VERSION = 3
BUSY_TIMEOUT_MS = 10_000

Migration = Callable[[pw.Database, SchemaMigrator], None]


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


# Upgrades in place: MIGRATIONS[n] takes a store at version n-1 to version n.
MIGRATIONS: dict[int, Migration] = {2: _v2_container_ref, 3: _v3_hosts_orders_moves}


class StoreError(Exception):
    """The store cannot be opened or used; the message says which and why."""


def data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return Path(base) / "cockpit"


def default_url(world_name: str) -> str:
    return str(data_dir() / f"{world_name}.db")


def _sqlite(path: str) -> pw.SqliteDatabase:
    if path != ":memory:":
        parent = Path(path).expanduser().resolve().parent
        try:
            parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise StoreError(f"store {path}: cannot create directory {parent}: {e.strerror}") from None
    return pw.SqliteDatabase(
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


def connect(url: str) -> pw.Database:
    """A database from a path or a URL (sqlite:///x.db, postgresql://…, mysql://…)."""
    if "://" not in url:
        return _sqlite(url)
    if url.startswith("sqlite:///"):
        return _sqlite(url[len("sqlite:///") :] or ":memory:")
    from playhouse.db_url import connect as url_connect

    try:
        return url_connect(url)
    except (RuntimeError, ValueError, ImportError, pw.ImproperlyConfigured) as e:
        raise StoreError(f"store {url}: {e}") from None


def open_store(url: str) -> pw.Database:
    """Connect, bind the models, create or upgrade the schema. Raises StoreError."""
    db = connect(url)
    proxy.initialize(db)
    try:
        db.connect(reuse_if_open=True)
        ensure_schema(db)
    except (pw.OperationalError, pw.DatabaseError, sqlite3.Error) as e:
        db.close()
        raise StoreError(f"store {url}: {e}") from None
    return db


def schema_version(db: pw.Database) -> int | None:
    if not db.table_exists("meta"):
        return None
    row = Meta.get_or_none(Meta.key == "schema_version")
    return int(row.value) if row else None


def ensure_schema(db: pw.Database) -> None:
    with db.atomic():
        version = schema_version(db)
        if version is None:
            db.create_tables(ALL_MODELS, safe=True)
            Meta.replace(key="schema_version", value=str(SCHEMA_VERSION)).execute()
            Meta.replace(key="store_id", value=uuid.uuid4().hex[:12]).execute()
            return
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"the store has schema version {version}, newer than this Cockpit's {SCHEMA_VERSION}: "
                "upgrade Cockpit, or use another --db"
            )
        migrator = SchemaMigrator.from_database(db)
        for target in range(version + 1, SCHEMA_VERSION + 1):
            MIGRATIONS[target](db, migrator)
            Meta.replace(key="schema_version", value=str(target)).execute()
        db.create_tables(ALL_MODELS, safe=True)
        if Meta.get_or_none(Meta.key == "store_id") is None:
            Meta.replace(key="store_id", value=uuid.uuid4().hex[:12]).execute()


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


def get_meta(key: str, default: str | None = None) -> str | None:
    row = Meta.get_or_none(Meta.key == key)
    return row.value if row else default


def set_meta(key: str, value: str) -> None:
    Meta.replace(key=key, value=value).execute()
