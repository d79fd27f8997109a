"""Service discovery on etcd v3, through its JSON gateway (one small httpx client, no etcd library).

Keys under the prefix (default `/cockpit`):

    <prefix>/upstreams/<service>/<address:port>   Member.value()   (nginx-upsync-module's layout)
    <prefix>/rpc/<service>/<idc>/<id>             the instance as JSON
    <prefix>/locks/<name>                         the holder's name, on a lease of the lock's TTL

The gateway speaks JSON with keys and values in base64 and 64-bit numbers as strings. A member's
`index` is etcd's revision; `wait_members` is a streaming watch of the service's prefix from
index + 1, closed when the first event arrives or `wait_s` passes.
"""

from __future__ import annotations

import base64
import json
import logging
import math
import time

import httpx

from cockpit.backends.discovery import (UPSTREAMS, DiscoveryError, Member, Members, RpcInstance, check_lock_name,
                                        check_member, check_name)

log = logging.getLogger(__name__)

MAX_ERROR = 300  # characters of a refusal kept in a message


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _text(b64: str | None) -> str:
    return base64.b64decode(b64 or "").decode(errors="replace")


def _range_end(prefix: str) -> str:
    """The end of the range of every key starting with `prefix` (its last byte plus one)."""
    raw = prefix.encode()
    return base64.b64encode(raw[:-1] + bytes([raw[-1] + 1])).decode()


def _one_line(text: str) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= MAX_ERROR else text[: MAX_ERROR - 1] + "…"


class EtcdDiscovery:
    """A Discovery on one etcd cluster (its client URL)."""

    name = "etcd"

    def __init__(self, url: str, prefix: str = "/cockpit", timeout_s: float = 3.0):
        self.url = url.rstrip("/")
        self.prefix = prefix.rstrip("/")
        self.timeout_s = timeout_s
        self.who = f"etcd at {self.url}"
        # trust_env off: no proxy or .netrc from the environment between us and the store
        self._http = httpx.Client(base_url=self.url, timeout=httpx.Timeout(timeout_s), trust_env=False)

    def __repr__(self) -> str:
        return f"EtcdDiscovery({self.url!r}, prefix={self.prefix!r})"

    # --- the wire ------------------------------------------------------------------------------

    def call(self, path: str, body: dict, *, missing_ok: bool = False) -> dict:
        """POST one gateway call; its answer, or DiscoveryError (transient when the store is away).
        `missing_ok`: a 404 (a lease that is gone) answers {}."""
        try:
            r = self._http.post(path, json=body)
        except httpx.TimeoutException:
            raise DiscoveryError(self.who, f"{path}: no answer within {self.timeout_s:g} s", transient=True) from None
        except httpx.TransportError as e:
            raise DiscoveryError(self.who, f"{path}: {_one_line(e) or type(e).__name__}", transient=True) from None
        if missing_ok and r.status_code == 404:
            return {}
        return self._answer(path, r.status_code, r.text)

    def _answer(self, path: str, status: int, text: str) -> dict:
        try:
            doc = json.loads(text) if text.strip() else {}
        except ValueError:
            doc = None
        if status >= 400:
            why = doc.get("message") or doc.get("error") if isinstance(doc, dict) else None
            raise DiscoveryError(self.who, f"{path}: {status} {_one_line(why or text)}",
                                 transient=status >= 500 or status == 429)
        if not isinstance(doc, dict):
            raise DiscoveryError(self.who, f"{path}: the answer is not etcd's JSON: {_one_line(text)}")
        return doc

    def _range(self, key: str, *, prefix: bool = False, keys_only: bool = False) -> tuple[list[dict], int]:
        body: dict = {"key": _b64(key)}
        if prefix:
            body["range_end"] = _range_end(key)
        if keys_only:
            body["keys_only"] = True
        doc = self.call("/v3/kv/range", body)
        return doc.get("kvs", []), int(doc.get("header", {}).get("revision", 0))

    def _put(self, key: str, value: str, lease: str | None = None) -> None:
        body = {"key": _b64(key), "value": _b64(value)}
        if lease:
            body["lease"] = lease
        self.call("/v3/kv/put", body)

    def _delete(self, key: str) -> None:
        self.call("/v3/kv/deleterange", {"key": _b64(key)})

    # --- keys ------------------------------------------------------------------------------------

    def _members_prefix(self, service: str) -> str:
        return f"{self.prefix}/{UPSTREAMS}/{check_name('service', service)}/"

    def _rpc_prefix(self, service: str) -> str:
        return f"{self.prefix}/rpc/{check_name('service', service)}/"

    def lock_key(self, name: str) -> str:
        return f"{self.prefix}/locks/{check_lock_name(name)}"

    # --- the Discovery protocol -------------------------------------------------------------------

    def ping(self) -> None:
        self.call("/v3/maintenance/status", {})

    def set_member(self, service: str, member: Member) -> None:
        check_member(member)
        self._put(self._members_prefix(service) + member.key, member.value())

    def remove_member(self, service: str, address: str, port: int) -> None:
        check_member(Member(address, port))
        self._delete(f"{self._members_prefix(service)}{address}:{port}")

    def members(self, service: str) -> Members:
        base = self._members_prefix(service)
        kvs, revision = self._range(base, prefix=True)
        out = []
        for kv in kvs:
            key = _text(kv.get("key"))[len(base):]
            if "/" in key:  # deeper keys are not members in nginx-upsync-module's layout
                continue
            try:
                out.append(Member.parse(key, _text(kv.get("value"))))
            except ValueError as e:  # somebody else's bad entry: the other members still serve
                log.warning("%s: %s%s skipped: %s", self.who, base, key, e)
        return Members(service, tuple(sorted(out, key=lambda m: (m.address, m.port))), revision)

    def wait_members(self, service: str, index: int, wait_s: float) -> Members:
        if index <= 0 or wait_s <= 0:
            return self.members(service)
        base = self._members_prefix(service)
        watch = {"create_request": {"key": _b64(base), "range_end": _range_end(base), "start_revision": str(index + 1)}}
        # The read timeout bounds the wait for the next message: the whole watch ends within wait_s
        # (plus the few milliseconds of the "created" message).
        timeout = httpx.Timeout(self.timeout_s, read=wait_s)
        deadline = time.monotonic() + wait_s
        try:
            with self._http.stream("POST", "/v3/watch", json=watch, timeout=timeout) as r:
                if r.status_code >= 400:
                    self._answer("/v3/watch", r.status_code, r.read().decode(errors="replace"))
                for line in r.iter_lines():
                    if self._watch_done(line, index) or time.monotonic() >= deadline:
                        break
        except httpx.ReadTimeout:
            pass  # wait_s passed without a change
        except httpx.TimeoutException:
            raise DiscoveryError(self.who, f"/v3/watch: no answer within {self.timeout_s:g} s",
                                 transient=True) from None
        except httpx.TransportError as e:
            raise DiscoveryError(self.who, f"/v3/watch: {_one_line(e) or type(e).__name__}", transient=True) from None
        return self.members(service)

    def _watch_done(self, line: str, index: int) -> bool:
        """Whether one message of the watch stream ends the wait."""
        if not line.strip():
            return False
        try:
            msg = json.loads(line)
        except ValueError:
            raise DiscoveryError(self.who, f"/v3/watch: not etcd's JSON: {_one_line(line)}") from None
        if "error" in msg:
            err = msg["error"]
            why = err.get("message", err) if isinstance(err, dict) else err
            raise DiscoveryError(self.who, f"/v3/watch: {_one_line(why)}", transient=True)
        result = msg.get("result", {})
        if result.get("events") or result.get("canceled") or result.get("compact_revision"):
            return True  # a change, or history compacted away: read the members as they are
        # an index from the future (a store restored from an older backup): resynchronise now
        return int(result.get("header", {}).get("revision", 0)) < index

    def register(self, instance: RpcInstance) -> None:
        base = self._rpc_prefix(instance.service)
        key = f"{base}{check_name('IDC', instance.idc)}/{check_name('instance id', instance.id)}"
        for tag in instance.tags:
            if not isinstance(tag, str) or not tag or len(tag) > 256:
                raise ValueError(f"instance {instance.id}: tag {tag!r} is not 1-256 characters of text")
        for stale in self._instance_keys(base, instance.id):  # an id is unique per service
            if stale != key:
                self._delete(stale)
        self._put(key, json.dumps({"service": instance.service, "idc": instance.idc, "id": instance.id,
                                   "address": instance.address, "port": instance.port, "tags": list(instance.tags),
                                   "healthy": instance.healthy, "meta": instance.meta}, sort_keys=True))

    def _instance_keys(self, base: str, instance_id: str) -> list[str]:
        kvs, _ = self._range(base, prefix=True, keys_only=True)
        return [k for k in (_text(kv.get("key")) for kv in kvs) if k.rsplit("/", 1)[-1] == instance_id]

    def deregister(self, service: str, instance_id: str) -> None:
        for key in self._instance_keys(self._rpc_prefix(service), check_name("instance id", instance_id)):
            self._delete(key)

    def instances(self, service: str) -> list[RpcInstance]:
        kvs, _ = self._range(self._rpc_prefix(service), prefix=True)
        out = []
        for kv in kvs:
            try:
                d = json.loads(_text(kv.get("value")))
                out.append(RpcInstance(service, str(d["idc"]), str(d["id"]), str(d["address"]), int(d["port"]),
                                       tuple(d.get("tags", ())), bool(d.get("healthy", True)), dict(d.get("meta", {}))))
            except (ValueError, KeyError, TypeError) as e:
                log.warning("%s: %s skipped: not an instance (%s)", self.who, _text(kv.get("key")), e)
        return sorted(out, key=lambda i: (i.idc, i.id))

    def lock(self, name: str, holder: str, ttl_s: float) -> EtcdLock:
        return EtcdLock(self, name, holder, ttl_s)

    def lock_holder(self, name: str) -> str | None:
        kvs, _ = self._range(self.lock_key(name))
        return _text(kvs[0].get("value")) if kvs else None

    def close(self) -> None:
        self._http.close()


class EtcdLock:
    """A lock key created only if absent (create_revision == 0), attached to a lease of `ttl_s`
    (whole seconds, at least etcd's minimum of about 2 s) that `renew` keeps alive. When the
    holder stops renewing, etcd revokes the lease and deletes the key: the lock is free again."""

    def __init__(self, store: EtcdDiscovery, name: str, holder: str, ttl_s: float):
        if not 0 < ttl_s <= 86400:
            raise ValueError(f"lock {name}: ttl_s {ttl_s!r} is not in (0, 86400]")
        if not holder or len(holder) > 256:
            raise ValueError(f"lock {name}: the holder's name must be 1-256 characters")
        self.name, self.holder, self.ttl_s = name, holder, ttl_s
        self._store = store
        self._key = store.lock_key(name)
        self._lease: str | None = None

    def __repr__(self) -> str:
        return f"EtcdLock({self.name!r}, holder={self.holder!r})"

    def _keepalive(self) -> bool:
        """Whether our lease is still alive (and now renewed)."""
        if self._lease is None:
            return False
        doc = self._store.call("/v3/lease/keepalive", {"ID": self._lease})
        if int(doc.get("result", {}).get("TTL", 0) or 0) <= 0:
            self._lease = None
            return False
        return True

    def acquire(self) -> bool:
        if not self._keepalive():  # a standby keeps one lease across attempts rather than one per try
            self._lease = str(self._store.call("/v3/lease/grant", {"TTL": math.ceil(self.ttl_s)})["ID"])
        key = _b64(self._key)
        doc = self._store.call("/v3/kv/txn", {
            "compare": [{"key": key, "target": "CREATE", "result": "EQUAL", "create_revision": "0"}],
            "success": [{"request_put": {"key": key, "value": _b64(self.holder), "lease": self._lease}}],
            "failure": [{"request_range": {"key": key}}]})
        if doc.get("succeeded"):
            return True
        kvs = doc.get("responses", [{}])[0].get("response_range", {}).get("kvs", [])
        return bool(kvs) and kvs[0].get("lease") == self._lease

    def renew(self) -> bool:
        if not self._keepalive():
            return False
        kvs, _ = self._store._range(self._key)
        return bool(kvs) and kvs[0].get("lease") == self._lease

    def release(self) -> None:
        """Revoking the lease deletes the key; a lease already gone is released."""
        if self._lease is not None:
            self._store.call("/v3/lease/revoke", {"ID": self._lease}, missing_ok=True)
            self._lease = None
