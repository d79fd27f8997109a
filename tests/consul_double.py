"""A Consul HTTP API double for the tests: no Consul server can be installed here.

It implements, as Consul's agent and servers do, what the discovery backend's py-consul calls use,
and refuses everything else (unknown paths 404, wrong methods 405, bodies that do not decode 400),
so a client that sends the wrong thing fails here as it would against Consul:

- KV: GET (one key, `?recurse`, `?keys` with `?separator`, `?raw`), PUT (`?flags`, `?cas`,
  `?acquire`, `?release`; 512 KiB at most), DELETE (`?recurse`, `?cas`); Consul's key checks.
- Blocking queries (`?index=&wait=`) on KV, health and catalog reads: they return once the
  result's index moves past `index`, or after `wait` plus up to wait/16 of jitter, as Consul does.
  Indexes only grow: one counter for every write (Consul's Raft index); a KV prefix's index is
  the highest ModifyIndex or tombstone under it, else the KV table's.
- Sessions: create (`Name`, `Node`, `Checks`, `LockDelay`, `Behavior` release|delete, `TTL`
  between `session_ttl_min_s` and 24 h), renew, destroy, info, list. A reaper thread invalidates
  a session 2 x TTL after its last renewal (Consul's multiplier); invalidation releases or
  deletes its keys and starts their lock-delay, during which `?acquire` answers false.
- The agent: service register (with TTL checks only: the double cannot run HTTP or TCP checks)
  and deregister; the catalog's services and service; health service with `?passing` and `?tag`.
- ACLs: a double given a token answers 403 to any request without it ("ACL not found" for a
  wrong one, "Permission denied" for none).

Each request is recorded (`requests`: method, path with query, the X-Consul-Token it carried) so
a test can see what reached the agent. Start it in a test, stop it by `stop()`: 127.0.0.1 only.
"""

from __future__ import annotations

import base64
import http.server
import json
import random
import re
import threading
import time
import uuid
from dataclasses import dataclass, field
from urllib.parse import parse_qs, unquote, urlsplit

KV_MAX = 512 * 1024  # Consul's kv_max_value_size
BODY_MAX = 1 << 20
MAX_WAIT = 600.0  # Consul caps a blocking query's wait at 10 minutes
DEFAULT_WAIT = 300.0
MAX_LOCK_DELAY = 60.0
SESSION_TTL_MAX = 86400.0
DURATION = re.compile(r"^(?:(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h))+$")
UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
META_KEY = re.compile(r"^[a-zA-Z0-9_-]{1,128}$")
CHECK_KINDS = ("ttl", "http", "tcp", "udp", "grpc", "script", "args", "dockercontainerid", "h2ping", "aliasservice",
               "aliasnode", "osservice")


class ApiError(Exception):
    """An answer other than 200: Consul's status and its text."""

    def __init__(self, status: int, text: str):
        super().__init__(text)
        self.status, self.text = status, text


def parse_duration(text: str, what: str) -> float:
    """A Go duration in seconds ("0" too); ApiError 400 otherwise."""
    if text == "0":
        return 0.0
    if not isinstance(text, str) or not DURATION.match(text):
        raise ApiError(400, f"Invalid {what}: {text!r}")
    return sum(float(n) * UNITS[u] for n, u in re.findall(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)", text))


def _fold(body: object, known: set[str], what: str) -> dict:
    """A JSON object's fields by lower-cased name without `_`/`-` (Consul decodes field names so);
    ApiError 400 for anything but an object, or a field Consul does not know (stricter than
    Consul, which ignores some: a misspelt field is the client's bug either way)."""
    if not isinstance(body, dict):
        raise ApiError(400, f"Request decode failed: {what}: expected a JSON object")
    out = {}
    for k, v in body.items():
        name = str(k).lower().replace("_", "").replace("-", "")
        if name not in known:
            raise ApiError(400, f"Request decode failed: {what}: unknown field {k!r}")
        out[name] = v
    return out


@dataclass
class Entry:
    key: str
    value: bytes | None
    flags: int
    create: int
    modify: int
    lock_index: int = 0
    session: str = ""

    def json(self) -> dict:
        d = {"LockIndex": self.lock_index, "Key": self.key, "Flags": self.flags,
             "Value": base64.b64encode(self.value).decode() if self.value else None,
             "CreateIndex": self.create, "ModifyIndex": self.modify}
        if self.session:
            d["Session"] = self.session
        return d


@dataclass
class Session:
    id: str
    name: str
    node: str
    checks: list[str]
    lock_delay: float
    behavior: str
    ttl: str
    ttl_s: float
    create: int
    expires: float | None = None  # monotonic time of invalidation

    def json(self) -> dict:
        return {"ID": self.id, "Name": self.name, "Node": self.node, "LockDelay": int(self.lock_delay * 1e9),
                "Behavior": self.behavior, "TTL": self.ttl, "NodeChecks": list(self.checks), "ServiceChecks": None,
                "CreateIndex": self.create, "ModifyIndex": self.create}


@dataclass
class Check:
    id: str
    name: str
    status: str
    service_id: str = ""
    service_name: str = ""
    notes: str = ""
    output: str = ""
    ttl_s: float = 0.0
    expires: float | None = None
    create: int = 0
    modify: int = 0

    def json(self, node: str, tags: list[str]) -> dict:
        return {"Node": node, "CheckID": self.id, "Name": self.name, "Status": self.status, "Notes": self.notes,
                "Output": self.output, "ServiceID": self.service_id, "ServiceName": self.service_name,
                "ServiceTags": tags, "Type": "ttl" if self.ttl_s else "", "CreateIndex": self.create,
                "ModifyIndex": self.modify}


@dataclass
class Service:
    id: str
    name: str
    address: str
    port: int
    tags: list[str]
    meta: dict[str, str]
    create: int
    modify: int
    checks: list[str] = field(default_factory=list)

    def json(self) -> dict:
        return {"ID": self.id, "Service": self.name, "Tags": list(self.tags), "Address": self.address,
                "Meta": dict(self.meta), "Port": self.port, "Weights": {"Passing": 1, "Warning": 1},
                "EnableTagOverride": False, "CreateIndex": self.create, "ModifyIndex": self.modify}


class ConsulState:
    """Everything the double knows, behind one condition (writes wake blocked queries)."""

    def __init__(self, node: str, dc: str, session_ttl_min_s: float):
        self.node, self.dc, self.session_ttl_min_s = node, dc, session_ttl_min_s
        self.cond = threading.Condition()
        self.index = 1
        self.kv: dict[str, Entry] = {}
        self.tombstones: dict[str, int] = {}
        self.kv_index = 1
        self.sessions: dict[str, Session] = {}
        self.sessions_index = 1
        self.lock_delays: dict[str, float] = {}
        self.services: dict[str, Service] = {}
        self.checks: dict[str, Check] = {"serfHealth": Check("serfHealth", "Serf Health Status", "passing",
                                                             output="Agent alive and reachable", create=1, modify=1)}
        self.services_index = 1
        self.node_id = str(uuid.uuid4())
        self.stopping = False

    def next_index(self) -> int:
        self.index += 1
        return self.index

    def changed(self) -> None:
        self.cond.notify_all()

    # --- KV ------------------------------------------------------------------------------------

    def prefix_index(self, prefix: str) -> int:
        got = max([e.modify for k, e in self.kv.items() if k.startswith(prefix)]
                  + [i for k, i in self.tombstones.items() if k.startswith(prefix)], default=0)
        return got or self.kv_index

    def kv_set(self, key: str, value: bytes | None, flags: int, idx: int, session: str | None = None,
               new_lock: bool = False) -> None:
        old = self.kv.get(key)
        e = Entry(key, value, flags, old.create if old else idx, idx, old.lock_index if old else 0,
                  old.session if old else "")
        if session is not None:
            e.session = session
        if new_lock:
            e.lock_index += 1
        self.kv[key] = e
        self.tombstones.pop(key, None)
        self.kv_index = idx

    def kv_delete(self, key: str, idx: int) -> None:
        if self.kv.pop(key, None) is not None:
            self.tombstones[key] = idx
            self.kv_index = idx

    # --- sessions --------------------------------------------------------------------------------

    def invalidate(self, sid: str, now: float) -> None:
        """Destroy a session: its keys are released or deleted, and their lock-delay starts."""
        s = self.sessions.pop(sid, None)
        if s is None:
            return
        idx = self.next_index()
        self.sessions_index = idx
        for key in [k for k, e in self.kv.items() if e.session == sid]:
            if s.lock_delay > 0:
                self.lock_delays[key] = now + s.lock_delay
            if s.behavior == "delete":
                self.kv_delete(key, idx)
            else:
                e = self.kv[key]
                e.session, e.modify = "", idx
                self.kv_index = idx
        self.changed()

    def reap(self, now: float) -> None:
        for sid in [s.id for s in self.sessions.values() if s.expires is not None and s.expires <= now]:
            self.invalidate(sid, now)
        for c in self.checks.values():
            if c.expires is not None and c.expires <= now:
                c.expires = None
                if c.status != "critical":
                    c.status, c.output = "critical", "TTL expired"
                    c.modify = self.services_index = self.next_index()
                    self.changed()


class ConsulDouble:
    """The HTTP server: `start()`, then `url`; `stop()` ends it (and any query it holds)."""

    def __init__(self, *, token: str | None = None, session_ttl_min_s: float = 10.0, node: str = "double-node",
                 dc: str = "dc1"):
        self.token = token
        self.state = ConsulState(node, dc, session_ttl_min_s)
        self.requests: list[tuple[str, str, str | None]] = []
        self._server: http.server.ThreadingHTTPServer | None = None
        self._threads: list[threading.Thread] = []

    @property
    def url(self) -> str:
        assert self._server is not None, "the double is not started"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> ConsulDouble:
        double = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"  # one request a connection: stop() leaves none open

            def do_GET(self):  # noqa: N802 - http.server's names
                _Api(double, self).handle()

            do_PUT = do_DELETE = do_POST = do_HEAD = do_PATCH = do_GET  # noqa: N815

            def log_message(self, *args):  # quiet: pytest shows what matters
                return

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._threads = [threading.Thread(target=self._server.serve_forever, args=(0.05,), name="consul-double",
                                         daemon=True),
                         threading.Thread(target=self._reaper, name="consul-double-reaper", daemon=True)]
        for t in self._threads:
            t.start()
        return self

    def _reaper(self) -> None:
        st = self.state
        with st.cond:
            while not st.stopping:
                st.reap(time.monotonic())
                st.cond.wait(0.05)

    def stop(self) -> None:
        with self.state.cond:
            self.state.stopping = True
            self.state.changed()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        for t in self._threads:
            t.join(5)

    def __enter__(self) -> ConsulDouble:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def keys(self, prefix: str = "") -> dict[str, bytes | None]:
        """The raw KV store under `prefix`: key -> value (what nginx-upsync-module would read)."""
        with self.state.cond:
            return {k: e.value for k, e in sorted(self.state.kv.items()) if k.startswith(prefix)}

    def set_check(self, check_id: str, status: str) -> None:
        """What the agent does when a check's probe passes or fails (`serfHealth`: the node's
        agent stops answering its peers); a session tied to a check that turns critical is
        invalidated, as Consul does."""
        st = self.state
        with st.cond:
            c = st.checks[check_id]
            c.status, c.modify = status, st.next_index()
            st.services_index = c.modify
            if status == "critical":
                for sid in [s.id for s in st.sessions.values() if check_id in s.checks]:
                    st.invalidate(sid, time.monotonic())
            st.changed()


class _Api:
    """One request: its routing and the endpoint that answers it (holding the state's condition
    while it reads or writes)."""

    ROUTES = [
        (re.compile(r"^/v1/kv/(?P<key>.*)$"), {"GET": "kv_get", "PUT": "kv_put", "DELETE": "kv_delete"}),
        (re.compile(r"^/v1/session/create$"), {"PUT": "session_create"}),
        (re.compile(r"^/v1/session/destroy/(?P<id>[^/]*)$"), {"PUT": "session_destroy"}),
        (re.compile(r"^/v1/session/renew/(?P<id>[^/]*)$"), {"PUT": "session_renew"}),
        (re.compile(r"^/v1/session/info/(?P<id>[^/]*)$"), {"GET": "session_info"}),
        (re.compile(r"^/v1/session/list$"), {"GET": "session_list"}),
        (re.compile(r"^/v1/agent/service/register$"), {"PUT": "service_register"}),
        (re.compile(r"^/v1/agent/service/deregister/(?P<id>.+)$"), {"PUT": "service_deregister"}),
        (re.compile(r"^/v1/catalog/services$"), {"GET": "catalog_services"}),
        (re.compile(r"^/v1/catalog/service/(?P<name>.+)$"), {"GET": "catalog_service"}),
        (re.compile(r"^/v1/health/service/(?P<name>.+)$"), {"GET": "health_service"}),
        (re.compile(r"^/v1/status/leader$"), {"GET": "status_leader"}),
    ]

    def __init__(self, double: ConsulDouble, h: http.server.BaseHTTPRequestHandler):
        self.d, self.st, self.h = double, double.state, h
        self.q = parse_qs(urlsplit(h.path).query, keep_blank_values=True)

    # --- the request -----------------------------------------------------------------------------

    def handle(self) -> None:
        h = self.h
        token = h.headers.get("X-Consul-Token")
        self.d.requests.append((h.command, h.path, token))
        parts = urlsplit(h.path)
        index = None
        try:
            body = self._body()
            self._acl(token)
            handler, args = self._route(h.command, parts.path)
            if self.q.get("dc", [self.st.dc])[0] != self.st.dc:
                raise ApiError(500, "No path to datacenter")
            status, answer, index = getattr(self, handler)(body, **args)
        except ApiError as e:
            status, answer = e.status, e.text
        self._send(h, status, answer, index)

    def _body(self) -> bytes:
        n = int(self.h.headers.get("Content-Length") or 0)
        if n > max(KV_MAX, BODY_MAX):
            raise ApiError(413, f"Request body({n} bytes) too large, max size: {KV_MAX} bytes.")
        return self.h.rfile.read(n) if n else b""

    def _acl(self, token: str | None) -> None:
        if self.d.token is None:
            return
        token = token or self.q.get("token", [None])[0]
        auth = self.h.headers.get("Authorization", "")
        if not token and auth.startswith("Bearer "):
            token = auth[7:]
        if not token:
            raise ApiError(403, "Permission denied: anonymous token lacks permission")
        if token != self.d.token:
            raise ApiError(403, "ACL not found")

    def _route(self, method: str, path: str) -> tuple[str, dict]:
        raw = path
        if "../" in raw or "..\\" in raw or "%2e%2e" in raw.lower() or "..%2f" in raw.lower():
            raise ApiError(400, "URL path contains invalid traversal sequence")
        path = unquote(path)
        for pattern, methods in self.ROUTES:
            m = pattern.match(path)
            if m:
                if method not in methods:
                    raise ApiError(405, f"method {method} not allowed")
                return methods[method], m.groupdict()
        raise ApiError(404, f"Invalid URL path: {path!r} is not an endpoint the double knows")

    @staticmethod
    def _send(h, status: int, answer: object, index: int | None) -> None:
        if isinstance(answer, bytes):
            data, ctype = answer, "text/plain"
        elif isinstance(answer, str):
            data, ctype = answer.encode(), "text/plain; charset=utf-8"
        else:
            data, ctype = json.dumps(answer).encode(), "application/json"
        try:
            h.send_response(status)
            h.send_header("Content-Type", ctype)
            h.send_header("Content-Length", str(len(data)))
            if index is not None:
                h.send_header("X-Consul-Index", str(max(1, index)))
                h.send_header("X-Consul-Knownleader", "true")
                h.send_header("X-Consul-Lastcontact", "0")
            h.end_headers()
            if h.command != "HEAD":
                h.wfile.write(data)
        except OSError:  # the client went away
            pass

    def _uint(self, name: str) -> int | None:
        if name not in self.q:
            return None
        text = self.q[name][0]
        if not text.isdigit():
            raise ApiError(400, f"Invalid {name} {text!r}")
        return int(text)

    def _blocking(self, compute):
        """Run `compute() -> (index, answer)` as Consul's blocking query does."""
        min_index = self._uint("index") or 0
        wait = parse_duration(self.q["wait"][0], "wait time") if "wait" in self.q else DEFAULT_WAIT
        wait = min(wait or DEFAULT_WAIT, MAX_WAIT)
        st = self.st
        with st.cond:
            index, answer = compute()
            if min_index:
                deadline = time.monotonic() + wait + random.uniform(0, wait / 16)
                while index <= min_index and not st.stopping:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    st.cond.wait(left)
                    index, answer = compute()
        return index, answer

    def _json(self, body: bytes) -> object:
        if not body.strip():
            return {}
        try:
            return json.loads(body)
        except ValueError as e:
            raise ApiError(400, f"Request decode failed: {e}") from None

    # --- KV ------------------------------------------------------------------------------------

    @staticmethod
    def _check_key(key: str) -> None:
        if key.startswith("/"):
            raise ApiError(400, "key must not begin with a '/'")
        if key != key.strip():
            raise ApiError(400, "key must not begin or end with a space")
        if "../" in key or "..\\" in key or key.endswith("/..") or key == "..":
            raise ApiError(400, "key contains path traversal sequence")

    def kv_get(self, body: bytes, key: str):
        if key:
            self._check_key(key)
        st = self.st
        if "keys" in self.q:
            sep = self.q.get("separator", self.q.get("seperator", [""]))[0]

            def compute():
                found = set()
                for k in st.kv:
                    if k.startswith(key):
                        cut = k.find(sep, len(key)) if sep else -1
                        found.add(k[: cut + len(sep)] if cut >= 0 else k)
                return st.prefix_index(key), sorted(found)

            index, keys = self._blocking(compute)
            return (404 if not keys and key else 200), ("" if not keys and key else keys), index
        if "recurse" in self.q:
            index, entries = self._blocking(
                lambda: (st.prefix_index(key), [e.json() for k, e in sorted(st.kv.items()) if k.startswith(key)]))
            return (200, entries, index) if entries else (404, "", index)
        if not key:
            raise ApiError(400, "Missing key name")

        def one():
            e = st.kv.get(key)
            return (e.modify, e) if e else (max(st.kv_index, *st.tombstones.values(), 1), None)

        index, e = self._blocking(one)
        if e is None:
            return 404, "", index
        if "raw" in self.q:
            return 200, e.value or b"", index
        return 200, [e.json()], index

    def kv_put(self, body: bytes, key: str):
        if not key:
            raise ApiError(400, "Missing key name")
        self._check_key(key)
        modes = [m for m in ("cas", "acquire", "release") if m in self.q]
        if len(modes) > 1:
            raise ApiError(400, f"Conflicting flags: {', '.join(modes)}")
        if len(body) > KV_MAX:
            raise ApiError(413, f"Request body({len(body)} bytes) too large, max size: {KV_MAX} bytes.")
        flags = self._uint("flags") or 0
        value = body or None
        st = self.st
        with st.cond:
            ok = self._kv_apply(key, value, flags, modes[0] if modes else None)
            st.changed()
        return 200, ok, None

    def _kv_apply(self, key: str, value: bytes | None, flags: int, mode: str | None) -> bool:
        st = self.st
        old = st.kv.get(key)
        if mode == "cas":
            cas = self._uint("cas")
            if (cas == 0 and old is not None) or (cas != 0 and (old is None or old.modify != cas)):
                return False
        elif mode in ("acquire", "release"):
            sid = self.q[mode][0]
            if not sid:
                raise ApiError(500, "missing session")
            if sid not in st.sessions:
                raise ApiError(500, f'invalid session "{sid}"')
            if mode == "acquire":
                if st.lock_delays.get(key, 0) > time.monotonic():
                    return False  # Consul: "lock delay in effect"
                if old is not None and old.session and old.session != sid:
                    return False
                st.kv_set(key, value, flags, st.next_index(), session=sid,
                          new_lock=old is None or old.session != sid)
                return True
            if old is None or old.session != sid:
                return False
            st.kv_set(key, value, flags, st.next_index(), session="")
            return True
        st.kv_set(key, value, flags, st.next_index())
        return True

    def kv_delete(self, body: bytes, key: str):
        if key:
            self._check_key(key)
        recurse, cas = "recurse" in self.q, self._uint("cas")
        if recurse and cas is not None:
            raise ApiError(400, "Conflicting flags: recurse, cas")
        if not key and not recurse:
            raise ApiError(400, "Missing key name")
        st = self.st
        with st.cond:
            old = st.kv.get(key)
            if cas is not None and (old is None or cas == 0 or old.modify != cas):
                return 200, False, None
            idx = st.next_index()
            for k in [k for k in st.kv if (k.startswith(key) if recurse else k == key)]:
                st.kv_delete(k, idx)
            st.changed()
        return 200, True, None

    # --- sessions ------------------------------------------------------------------------------

    def session_create(self, body: bytes):
        d = _fold(self._json(body), {"id", "name", "node", "checks", "nodechecks", "servicechecks", "lockdelay",
                                     "behavior", "ttl", "namespace"}, "session")
        st = self.st
        behavior = d.get("behavior") or "release"
        if behavior not in ("release", "delete"):
            raise ApiError(500, f"Invalid Behavior setting '{behavior}'")
        ttl = d.get("ttl") or ""
        if not isinstance(ttl, str):
            raise ApiError(400, "Request decode failed: TTL: expected a duration string")
        ttl_s = parse_duration(ttl, "Session TTL") if ttl else 0.0
        if ttl_s and not st.session_ttl_min_s <= ttl_s <= SESSION_TTL_MAX:
            raise ApiError(500, f"Invalid Session TTL '{int(ttl_s * 1e9)}', must be between "
                                f"[{st.session_ttl_min_s:g}s={SESSION_TTL_MAX / 3600:g}h0m0s]")
        delay = self._lock_delay(d.get("lockdelay", 15))
        node = d.get("node") or st.node
        checks = d.get("checks", d.get("nodechecks", ["serfHealth"]))
        if not isinstance(checks, list) or not all(isinstance(c, str) for c in checks):
            raise ApiError(400, "Request decode failed: Checks: expected a list of check IDs")
        with st.cond:
            if node != st.node:
                raise ApiError(500, "Missing node registration")
            for c in checks:
                if c not in st.checks:
                    raise ApiError(500, f"Missing check '{c}' registration")
                if st.checks[c].status == "critical":
                    raise ApiError(500, f"Check '{c}' is in critical state")
            idx = st.next_index()
            s = Session(str(uuid.uuid4()), str(d.get("name") or ""), node, checks, delay, behavior, ttl, ttl_s, idx)
            if ttl_s:
                s.expires = time.monotonic() + 2 * ttl_s  # Consul's SessionTTLMultiplier
            st.sessions[s.id] = s
            st.sessions_index = idx
            st.changed()
        return 200, {"ID": s.id}, None

    @staticmethod
    def _lock_delay(raw: object) -> float:
        """Consul's FixupLockDelay: a duration string, or a number of nanoseconds (seconds if < 1000)."""
        if isinstance(raw, str):
            seconds = parse_duration(raw, "LockDelay")
            seconds = seconds * 1e9 if seconds < 1000e-9 else seconds
        elif isinstance(raw, (int, float)) and not isinstance(raw, bool) and raw >= 0:
            seconds = raw if raw < 1000 else raw / 1e9
        else:
            raise ApiError(400, "Request decode failed: LockDelay: expected a duration")
        return min(seconds, MAX_LOCK_DELAY)

    def session_destroy(self, body: bytes, id: str):  # noqa: A002 - the route's name
        if not id:
            raise ApiError(400, "Missing session")
        with self.st.cond:
            self.st.invalidate(id, time.monotonic())
        return 200, True, None

    def session_renew(self, body: bytes, id: str):  # noqa: A002
        st = self.st
        with st.cond:
            s = st.sessions.get(id)
            if s is None:
                raise ApiError(404, f"Session id '{id}' not found")
            if s.ttl_s:
                s.expires = time.monotonic() + 2 * s.ttl_s
            return 200, [s.json()], st.sessions_index

    def session_info(self, body: bytes, id: str):  # noqa: A002
        st = self.st
        index, found = self._blocking(lambda: (st.sessions_index, [s.json() for s in [st.sessions.get(id)] if s]))
        return 200, found, index

    def session_list(self, body: bytes):
        st = self.st
        index, found = self._blocking(lambda: (st.sessions_index, [s.json() for s in st.sessions.values()]))
        return 200, found, index

    # --- the agent, the catalog, health ----------------------------------------------------------

    SERVICE_FIELDS = {"name", "id", "tags", "address", "port", "meta", "check", "checks", "weights",
                      "enabletagoverride", "taggedaddresses", "kind", "proxy", "connect", "socketpath", "locality"}
    CHECK_FIELDS = {"checkid", "id", "name", "status", "notes", "ttl", "http", "tcp", "udp", "grpc", "grpcusetls",
                    "script", "args", "interval", "timeout", "deregistercriticalserviceafter", "header", "method",
                    "tlsskipverify", "dockercontainerid", "shell", "h2ping", "aliasservice", "aliasnode",
                    "osservice", "successbeforepassing", "failuresbeforecritical"}

    def service_register(self, body: bytes):
        d = _fold(self._json(body), self.SERVICE_FIELDS, "service")
        name = d.get("name")
        if not isinstance(name, str) or not name:
            raise ApiError(400, "Missing service name")
        sid = d.get("id") or name
        port = d.get("port", 0)
        if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
            raise ApiError(400, f"Invalid Service port: {port!r}")
        tags = d.get("tags") or []
        if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
            raise ApiError(400, "Request decode failed: Tags: expected a list of strings")
        meta = d.get("meta") or {}
        if not isinstance(meta, dict) or len(meta) > 64 or not all(
                META_KEY.match(str(k)) and isinstance(v, str) and len(v) <= 512 for k, v in meta.items()):
            raise ApiError(400, "Invalid Service Meta: keys of [a-zA-Z0-9_-] (up to 64), values text up to 512")
        defs = ([d["check"]] if d.get("check") else []) + list(d.get("checks") or [])
        replace = self.q.get("replace-existing-checks", ["false"])[0].lower() in ("true", "1", "")
        st = self.st
        with st.cond:
            idx = st.next_index()
            old = st.services.get(sid)
            checks = [self._check(c, sid, name, k, len(defs), idx) for k, c in enumerate(defs, 1)]
            keep = [] if (replace or old is None) else [c for c in old.checks if c not in {ch.id for ch in checks}]
            for c in (old.checks if old else []):
                if c not in keep:
                    st.checks.pop(c, None)
            for c in checks:
                st.checks[c.id] = c
            st.services[sid] = Service(sid, name, str(d.get("address") or ""), port, tags, dict(meta),
                                       old.create if old else idx, idx, keep + [c.id for c in checks])
            st.services_index = idx
            st.changed()
        return 200, "", None

    def _check(self, raw: object, sid: str, name: str, k: int, n: int, idx: int) -> Check:
        c = _fold(raw, self.CHECK_FIELDS, "check")
        kinds = [kind for kind in CHECK_KINDS if c.get(kind)]
        if len(kinds) != 1:
            raise ApiError(400, "Invalid check: exactly one of TTL, HTTP, TCP, UDP, gRPC, script... is needed")
        if kinds != ["ttl"]:
            raise ApiError(400, f"the double runs TTL checks only, not {kinds[0]}")
        status = c.get("status") or "critical"
        if status not in ("passing", "warning", "critical"):
            raise ApiError(400, f"Invalid check status: {status!r}")
        ttl_s = parse_duration(str(c["ttl"]), "TTL")
        if ttl_s <= 0:
            raise ApiError(400, "TTL must be > 0 for TTL checks")
        cid = str(c.get("checkid") or c.get("id") or (f"service:{sid}" if n == 1 else f"service:{sid}:{k}"))
        return Check(cid, str(c.get("name") or f"Service '{name}' check"), status, sid, name, str(c.get("notes") or ""),
                     ttl_s=ttl_s, expires=time.monotonic() + ttl_s, create=idx, modify=idx)

    def service_deregister(self, body: bytes, id: str):  # noqa: A002
        st = self.st
        with st.cond:
            s = st.services.pop(id, None)
            if s is None:
                raise ApiError(404, f'Unknown service ID "{id}". Ensure that the service ID is passed, '
                                    "not the service name.")
            for c in s.checks:
                st.checks.pop(c, None)
            st.services_index = st.next_index()
            st.changed()
        return 200, "", None

    def _node(self) -> dict:
        st = self.st
        return {"ID": st.node_id, "Node": st.node, "Address": "127.0.0.1", "Datacenter": st.dc,
                "TaggedAddresses": {"lan": "127.0.0.1", "wan": "127.0.0.1"}, "Meta": {}, "CreateIndex": 1,
                "ModifyIndex": 1}

    def catalog_services(self, body: bytes):
        st = self.st

        def compute():
            out: dict[str, list[str]] = {"consul": []}
            for s in st.services.values():
                out[s.name] = sorted(set(out.get(s.name, [])) | set(s.tags))
            return st.services_index, out

        index, out = self._blocking(compute)
        return 200, out, index

    def _instances(self, name: str) -> list[Service]:
        tags = self.q.get("tag", [])
        return [s for _, s in sorted(self.st.services.items()) if s.name == name and all(t in s.tags for t in tags)]

    def catalog_service(self, body: bytes, name: str):
        st = self.st

        def compute():
            node = self._node()
            return st.services_index, [{
                "ID": node["ID"], "Node": node["Node"], "Address": node["Address"], "Datacenter": st.dc,
                "TaggedAddresses": node["TaggedAddresses"], "NodeMeta": {}, "ServiceID": s.id, "ServiceName": s.name,
                "ServiceTags": list(s.tags), "ServiceAddress": s.address, "ServicePort": s.port,
                "ServiceMeta": dict(s.meta), "ServiceEnableTagOverride": False, "CreateIndex": s.create,
                "ModifyIndex": s.modify} for s in self._instances(name)]

        index, out = self._blocking(compute)
        return 200, out, index

    def health_service(self, body: bytes, name: str):
        st = self.st
        passing = "passing" in self.q

        def compute():
            out = []
            for s in self._instances(name):
                checks = [st.checks["serfHealth"]] + [st.checks[c] for c in s.checks if c in st.checks]
                if passing and any(c.status != "passing" for c in checks):
                    continue
                out.append({"Node": self._node(), "Service": s.json(),
                            "Checks": [c.json(st.node, list(s.tags) if c.service_id else []) for c in checks]})
            return st.services_index, out

        index, out = self._blocking(compute)
        return 200, out, index

    def status_leader(self, body: bytes):
        return 200, "127.0.0.1:8300", None
