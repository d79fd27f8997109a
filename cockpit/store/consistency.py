"""Does the platform in a store hold together? What a damaged store looks like past its schema:
a missing clock, services that cannot be read, hosts whose numbers are not numbers, containers on
hosts that are not there. Checked whenever a seeded store is opened (a few milliseconds for the
demo platform) and by `cockpit store check`."""

from __future__ import annotations

import peewee as pw

from cockpit.store.db import is_sqlite
from cockpit.store.errors import StoreError
from cockpit.store.models import ClockRow, ContainerRow, HostRow, ServiceRow, TemplateRow


def platform_problems(db: pw.Database) -> list[str]:
    out = []
    if not ClockRow.select().where(ClockRow.id == 1).exists():
        out.append("the platform clock is missing (table clock is empty)")
    for model, what in ((ServiceRow, "service"), (TemplateRow, "template")):
        key = model._meta.primary_key
        try:
            bad = [getattr(r, key.name) for r in model.select(key, model.spec) if not isinstance(r.spec, dict)]
        except StoreError as e:
            out.append(str(e).split(": the store is damaged")[0].removeprefix("store: "))
            continue
        if bad:
            out.append(f"{what} {bad[0]!r} has a spec that is not a mapping")
    if is_sqlite(db):  # PostgreSQL keeps a column's type itself
        for col in ("cores", "memory_gb", "disk_gb"):
            row = db.execute_sql(f'SELECT name FROM host WHERE typeof("{col}") != \'integer\' LIMIT 1').fetchone()
            if row:
                out.append(f"host {row[0]!r} has a {col} that is not a whole number")
    orphan = (ContainerRow.select(ContainerRow.name, ContainerRow.host)
              .where(ContainerRow.host.not_in(HostRow.select(HostRow.id))).first())
    if orphan is not None:
        out.append(f"container {orphan.name!r} is on host id {orphan.host}, which is not in the store")
    return out
