"""Service discovery on Consul, through py-consul.

- Upstream members live in the KV store at `upstreams/<service>/<address:port>`, exactly what
  nginx-upsync-module reads (`upsync <consul>/v1/kv/upstreams/<service> upsync_type=consul`);
  `wait_members` is a blocking query on that prefix (`?index=&wait=`).
- RPC instances are agent services: the name is the service, the ID `<service>:<id>` (service
  IDs are unique per agent, instance ids only per service), tags `idc:<idc>` plus the instance's
  own, its meta as Consul meta (text). An instance the engine reports unhealthy carries one
  critical check, so `/v1/health/service?passing`, DNS and every other Consul client skip it too;
  a healthy one carries none (a TTL check would lapse between the engine's reports).
- Locks are KV keys under `cockpit/locks/` taken with `?acquire=<session>`: a session of
  behavior release whose TTL is a third of the lock's, with a lock-delay of another third.
  Consul invalidates a session up to twice its TTL after the last renewal and then keeps the
  key from others for the lock-delay, so another holder may take the lock `ttl_s` after the
  last renewal, as with etcd. Consul's servers refuse session TTLs under their
  `session_ttl_min` (10 s unless configured): with stock servers `ttl_s` is at least 30 s.

The token is held in memory only and goes out as X-Consul-Token; it is never in a message.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
from collections.abc import Iterator
from urllib.parse import urlsplit

import consul
import requests
from consul.callback import CB
from consul.exceptions import ACLDisabled, ACLPermissionDenied, BadRequest, ClientError, ConsulException, NotFound

from cockpit.backends.discovery import (UPSTREAMS, DiscoveryError, Member, Members, RpcInstance, check_lock_name,
                                        check_member, check_name)

log = logging.getLogger(__name__)

LOCKS = "cockpit/locks"
IDC_TAG = "idc:"
UNHEALTHY_CHECK = "cockpit-unhealthy"
# Consul holds a blocking query up to wait + wait/16 of jitter: ask for 16/17 of the caller's wait.
JITTER = 16 / 17
MAX_ERROR = 300


def _one_line(text: object) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= MAX_ERROR else text[: MAX_ERROR - 1] + "…"


def _duration(seconds: float) -> str:
    """A Go duration Consul parses, to the millisecond."""
    return f"{max(1, round(seconds * 1000))}ms"


class ConsulDiscovery:
    """A Discovery on one Consul agent (its HTTP API URL)."""

    name = "consul"

    def __init__(self, url: str, token: str | None = None, timeout_s: float = 3.0, dc: str | None = None,
                 token_env: str | None = None):
        parts = urlsplit(url)
        if parts.username or parts.password:  # checked first: such a URL is never echoed
            raise ValueError("credentials do not go in the Consul URL (the token comes from the environment)")
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"{url!r} is not an http(s) URL")
        self.url = f"{parts.scheme}://{parts.netloc}"
        self.timeout_s = timeout_s
        self.who = f"consul at {self.url}"
        self._token_hint = f" (the token in ${token_env})" if token_env else ""
        port = parts.port or (443 if parts.scheme == "https" else 80)
        host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname  # py-consul joins host:port
        self._c = consul.Consul(host=host, port=port, scheme=parts.scheme, token=token, dc=dc,
                                verify=True, connections_timeout=timeout_s)
        # py-consul lets CONSUL_HTTP_TOKEN override the token it is given: the config's choice wins.
        self._c.token = token
        # no proxy or .netrc credentials from the environment between us and the agent
        self._c.http.session.trust_env = False

    def __repr__(self) -> str:  # never the token
        return f"ConsulDiscovery({self.url!r})"

    @contextlib.contextmanager
    def calling(self, what: str) -> Iterator[None]:
        """py-consul's and requests' failures as one DiscoveryError line naming the agent."""
        try:
            yield
        except requests.Timeout:
            raise DiscoveryError(self.who, f"{what}: no answer within {self.timeout_s:g} s", transient=True) from None
        except requests.RequestException as e:
            # requests' text repeats the pool and the URL: the OS's reason is what helps
            m = re.search(r"\[Errno -?\d+\] ([^'\")\]]+)", str(e))
            raise DiscoveryError(self.who, f"{what}: {m.group(1) if m else type(e).__name__}", transient=True) from None
        except (ACLPermissionDenied, ACLDisabled) as e:
            raise DiscoveryError(self.who, f"{what}: refused: {_one_line(e)}{self._token_hint}") from None
        except (BadRequest, ClientError, NotFound) as e:
            raise DiscoveryError(self.who, f"{what}: {_one_line(e)}") from None
        except ConsulException as e:  # 5xx: no leader, a server restarting... or a refused session TTL
            text = _one_line(e)
            transient = text[:1] == "5" and "Session TTL" not in text
            raise DiscoveryError(self.who, f"{what}: {text}", transient=transient) from None

    # --- the Discovery protocol -------------------------------------------------------------------

    def ping(self) -> None:
        with self.calling("ping"):
            self._c.kv.get(f"{UPSTREAMS}/", keys=True, separator="/")

    @staticmethod
    def _members_prefix(service: str) -> str:
        return f"{UPSTREAMS}/{check_name('service', service)}/"

    def set_member(self, service: str, member: Member) -> None:
        check_member(member)
        key = self._members_prefix(service) + member.key
        with self.calling(f"PUT {key}"):
            self._c.kv.put(key, member.value())

    def remove_member(self, service: str, address: str, port: int) -> None:
        check_member(Member(address, port))
        key = f"{self._members_prefix(service)}{address}:{port}"
        with self.calling(f"DELETE {key}"):
            self._c.kv.delete(key)

    def members(self, service: str) -> Members:
        return self._read_members(service, None, None)

    def wait_members(self, service: str, index: int, wait_s: float) -> Members:
        if index <= 0 or wait_s <= 0:
            return self.members(service)
        return self._read_members(service, index, _duration(wait_s * JITTER))

    def _read_members(self, service: str, index: int | None, wait: str | None) -> Members:
        base = self._members_prefix(service)
        with self.calling(f"GET {base}"):
            got, items = self._c.kv.get(base, recurse=True, index=index, wait=wait)
        out = []
        for item in items or ():
            key = item.get("Key", "")[len(base):]
            if not key or "/" in key:  # the folder itself, or deeper keys: not members
                continue
            try:
                out.append(Member.parse(key, item.get("Value")))
            except ValueError as e:  # somebody else's bad entry: the other members still serve
                log.warning("%s: %s%s skipped: %s", self.who, base, key, e)
        return Members(service, tuple(sorted(out, key=lambda m: (m.address, m.port))), int(got))

    @staticmethod
    def service_id(service: str, instance_id: str) -> str:
        return f"{check_name('service', service)}:{check_name('instance id', instance_id)}"

    def register(self, instance: RpcInstance) -> None:
        sid = self.service_id(instance.service, instance.id)
        check_name("IDC", instance.idc)
        for tag in instance.tags:
            if not isinstance(tag, str) or not tag or len(tag) > 256 or tag.startswith(IDC_TAG):
                raise ValueError(f"instance {instance.id}: tag {tag!r} is not 1-256 characters (nor idc:...)")
        meta = {str(k): v if isinstance(v, str) else json.dumps(v) for k, v in instance.meta.items()}
        check = None if instance.healthy else {
            # TTL is the only check Consul lets a registrant set the status of; it is born
            # critical, and when its TTL lapses it stays critical.
            "CheckID": f"{UNHEALTHY_CHECK}:{sid}", "Name": "cockpit: unhealthy", "TTL": "24h",
            "Status": "critical", "Notes": "the cockpit engine reports this instance unhealthy"}
        with self.calling(f"register {sid}"):
            self._c.agent.service.register(instance.service, service_id=sid, address=instance.address,
                                           port=instance.port, tags=[f"{IDC_TAG}{instance.idc}", *instance.tags],
                                           meta=meta or None, check=check, replace_existing_checks=True)

    def deregister(self, service: str, instance_id: str) -> None:
        sid = self.service_id(service, instance_id)
        with self.calling(f"deregister {sid}"):
            self._c.agent.service.deregister(sid)  # an unknown ID is a 404: done

    def instances(self, service: str) -> list[RpcInstance]:
        check_name("service", service)
        with self.calling(f"health of {service}"):
            _, entries = self._c.health.service(service)
        out = []
        for entry in entries or ():
            inst = self._instance(service, entry)
            if inst is not None:
                out.append(inst)
        return sorted(out, key=lambda i: (i.idc, i.id))

    def _instance(self, service: str, entry: dict) -> RpcInstance | None:
        s = entry.get("Service") or {}
        tags = list(s.get("Tags") or ())
        idcs = [t[len(IDC_TAG):] for t in tags if t.startswith(IDC_TAG)]
        if not idcs:  # registered by someone else without an IDC: not ours to route to
            return None
        sid = str(s.get("ID", ""))
        address = s.get("Address") or (entry.get("Node") or {}).get("Address", "")
        healthy = all(c.get("Status") == "passing" for c in entry.get("Checks") or ())
        return RpcInstance(service, idcs[0], sid.removeprefix(f"{service}:"), address, int(s.get("Port", 0)),
                           tuple(t for t in tags if not t.startswith(IDC_TAG)), healthy, dict(s.get("Meta") or {}))

    def lock(self, name: str, holder: str, ttl_s: float) -> ConsulLock:
        return ConsulLock(self, name, holder, ttl_s)

    def lock_holder(self, name: str) -> str | None:
        key = f"{LOCKS}/{check_lock_name(name)}"
        with self.calling(f"GET {key}"):
            _, item = self._c.kv.get(key)
        if not item or not item.get("Session"):
            return None
        return (item.get("Value") or b"").decode(errors="replace")

    def close(self) -> None:
        self._c.http.session.close()


class ConsulLock:
    """A KV key held through a session; see the module's note on TTL and lock-delay."""

    def __init__(self, store: ConsulDiscovery, name: str, holder: str, ttl_s: float):
        if not 0 < ttl_s <= 3 * 86400:
            raise ValueError(f"lock {name}: ttl_s {ttl_s!r} is not in (0, 259200]")
        if not holder or len(holder) > 256:
            raise ValueError(f"lock {name}: the holder's name must be 1-256 characters")
        self.name, self.holder, self.ttl_s = name, holder, ttl_s
        self._store = store
        self._c = store._c
        self._key = f"{LOCKS}/{check_lock_name(name)}"
        self._session: str | None = None

    def __repr__(self) -> str:
        return f"ConsulLock({self.name!r}, holder={self.holder!r})"

    def _new_session(self) -> str:
        body = {"Name": f"cockpit lock {self.name}", "Behavior": "release",
                "TTL": _duration(self.ttl_s / 3), "LockDelay": _duration(self.ttl_s / 3)}
        # py-consul's session.create takes whole seconds of at least 10 (Consul's default
        # session_ttl_min): the request goes through its transport as it is, and the servers judge it.
        try:
            with self._store.calling(f"lock {self.name}: create a session"):
                return self._c.http.put(CB.json(is_id=True), "/v1/session/create", params=self._dc(),
                                        headers=self._c.prepare_headers(), data=json.dumps(body))
        except DiscoveryError as e:
            if "Session TTL" not in e.message:
                raise
            hint = f"a lock's session TTL is a third of its ttl_s {self.ttl_s:g}: lower session_ttl_min or raise ttl_s"
            raise DiscoveryError(e.backend, f"{e.message} ({hint})") from None

    def _dc(self) -> list[tuple[str, str]]:
        return [("dc", self._c.dc)] if self._c.dc else []

    def acquire(self) -> bool:
        for attempt in (1, 2):
            if self._session is None:
                self._session = self._new_session()
            try:
                with self._store.calling(f"lock {self.name}: acquire"):
                    return bool(self._c.kv.put(self._key, self.holder, acquire=self._session))
            except DiscoveryError as e:
                # our session lapsed since (Consul: "invalid session"): start a new one, once
                if attempt == 2 or "invalid session" not in e.message.lower():
                    raise
                self._session = None
        return False

    def renew(self) -> bool:
        if self._session is None:
            return False
        try:
            with self._store.calling(f"lock {self.name}: renew"):
                self._c.session.renew(self._session)
        except DiscoveryError as e:
            if e.transient or "not found" not in e.message:
                raise
            self._session = None  # invalidated: the lock was released (or deleted)
            return False
        with self._store.calling(f"lock {self.name}: read"):
            _, item = self._c.kv.get(self._key)
        return bool(item) and item.get("Session") == self._session

    def release(self) -> None:
        """Release the key (no lock-delay for others), then end the session."""
        if self._session is None:
            return
        with self._store.calling(f"lock {self.name}: release"):
            self._c.kv.put(self._key, "", release=self._session)
            self._c.session.destroy(self._session)
        self._session = None
