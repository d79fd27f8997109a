"""A real etcd for the tests (Debian's etcd-server, cockpit.lab.procs.start_etcd: one member on
127.0.0.1, its data in a temporary directory, stopped by its PID), and a raw reader of its keys
that goes around the discovery backend, to check what nginx-upsync-module would see.

Use the fixture by importing it into a test module:
    from tests.etcd import etcd_server  # noqa: F401 (fixture)
"""

from __future__ import annotations

import base64
from collections.abc import Iterator

import httpx
import pytest

from cockpit.lab import procs

@pytest.fixture(scope="module")
def etcd_server(tmp_path_factory) -> Iterator[procs.Etcd]:
    """One etcd for a test module (about 1 s to start); tests keep apart by key prefix."""
    etcd = procs.start_etcd(tmp_path_factory.mktemp("etcd"))
    yield etcd
    etcd.stop()


def raw_keys(url: str, prefix: str) -> dict[str, str]:
    """Every key under `prefix` and its value, read straight from etcd's v3 gateway."""
    end = prefix.encode()[:-1] + bytes([prefix.encode()[-1] + 1])
    r = httpx.post(f"{url}/v3/kv/range", json={"key": base64.b64encode(prefix.encode()).decode(),
                                               "range_end": base64.b64encode(end).decode()}, timeout=3, trust_env=False)
    r.raise_for_status()
    return {base64.b64decode(kv["key"]).decode(): base64.b64decode(kv.get("value", "")).decode()
            for kv in r.json().get("kvs", [])}
