"""The engine's working copy of the platform, read straight from the cursor with containers
counted by the database, is the platform the store holds, as the model layer reads it."""

from __future__ import annotations

import numpy as np
import pytest

from cockpit.core.placement import HostTable
from cockpit.engine.state import PlatformState, current_table, host_rows
from cockpit.store import records
from cockpit.store.errors import StoreError
from cockpit.store.models import ContainerRow, HostRow, ServiceRow


def _by_models() -> HostTable:
    """The table built the plain way: model rows, one (host, service) pair per container."""
    services = [records.service(r) for r in ServiceRow.select().order_by(ServiceRow.name)]
    rows = list(HostRow.select().where(HostRow.released_t.is_null()).order_by(HostRow.id).dicts())
    pairs = [(c.host, c.service) for c in ContainerRow.select()]
    return HostTable.build([records.host(r) for r in rows], services, pairs)


def test_the_table_is_the_platform_the_store_holds(session):
    HostRow.update(alive=False, labels={"role": "web", "rack": "r7"}).where(HostRow.name == "tc-feed-new-0001").execute()
    HostRow.update(released_t=1.0).where(HostRow.name == "ali-shared-0001").execute()  # gone: not in the table
    table, services, rows = current_table()
    want = _by_models()
    assert table.names == want.names and "ali-shared-0001" not in table.names
    assert table.services == want.services == sorted(services)
    for column in ("ids", "counts", "cpu_used", "mem_used", "disk_used", "cpu_cap", "mem_cap", "alive", "status"):
        assert np.array_equal(getattr(table, column), getattr(want, column)), column
    assert table.labels == want.labels
    assert rows == list(HostRow.select().where(HostRow.released_t.is_null()).order_by(HostRow.id).dicts())
    i = table.names.index("tc-feed-new-0001")
    assert rows[i]["alive"] is False and rows[i]["labels"] == {"role": "web", "rack": "r7"}
    assert rows[i]["labels"] is not rows[i + 1]["labels"]  # each row its own labels, even when they are alike


def test_the_engine_state_counts_every_container(session):
    st = PlatformState.load()
    assert int(st.layout.counts.sum()) == ContainerRow.select().count()
    assert [h.name for h in st.hosts] == [r["name"] for r in host_rows()]


def test_labels_that_are_not_json_are_a_damaged_store(session):
    session.db.execute_sql("UPDATE host SET labels = 'not json' WHERE name = 'yf-feed-new-0001'")
    with pytest.raises(StoreError, match="host.labels holds 'not json', which is not JSON"):
        current_table()
