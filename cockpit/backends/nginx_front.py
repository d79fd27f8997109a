"""The front door: nginx in front of the HTTP services, following each service's upstream members.

Each service is reachable at `http://<listen>/<service>/...` (the `/<service>` prefix is taken off
before the request reaches a member). Two ways to change a service's members:

- "lua": the members live in a `lua_shared_dict`; `balancer_by_lua` picks one per request
  (weights, `down`, `backup`, nginx-like `max_fails`/`fail_timeout`, a retry on another member
  when one refuses). An admin location on 127.0.0.1 reads and replaces a service's list: traffic
  moves with the same workers, no reload. This is what nginx-upsync-module does (a reload under
  load costs capacity and latency); Debian's nginx has no upsync, its Lua module does the job.
- "file": each service's `upstream` block is a file, `<prefix>/upstreams/<service>.conf`,
  rendered from the members and applied with `nginx -t` and a reload; a config nginx rejects
  is put back and the old one keeps serving.

A service with no live member answers 503 at once, saying so, in both modes.
"""

from __future__ import annotations

import fcntl
import ipaddress
import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit

import httpx

from cockpit.backends.discovery import Member
from cockpit.backends.nginx_lua import lua_http

MODES = ("lua", "file")
SERVICE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")  # the world's service names
_LISTEN_RE = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})$")
_ADDRESS_RE = re.compile(r"^[A-Za-z0-9:][A-Za-z0-9.:-]{0,252}$")  # an IP or a host name, nothing nginx would parse
MAX_MEMBERS = 1000
SETTINGS = {"kind", "mode", "admin_url", "prefix", "url"}
HEADER = "# cockpit-members: "  # the first line of an upstream file: the members as given, in JSON


class FrontError(Exception):
    """The front refused a change or could not be reached, as one line naming it.
    `transient`: trying again may work (nginx is down or reloading)."""

    def __init__(self, front: str, message: str, transient: bool = False):
        super().__init__(f"{front}: {message}")
        self.front = front
        self.message = message
        self.transient = transient


class Front(Protocol):
    """What follows discovery: a front door whose services' members can be read and replaced.
    Every call may raise FrontError."""

    name: str

    def set_members(self, service: str, members: Sequence[Member]) -> None: ...

    def members(self, service: str) -> list[Member]: ...


# --- the config ------------------------------------------------------------------------------------


def ident(service: str) -> str:
    """`service` as an nginx identifier (upstream and variable names): letters and digits kept,
    every other character as _XX (its hex), so two services never share one."""
    return "".join(c if c.isascii() and c.isalnum() else f"_{ord(c):02x}" for c in service)


def _quoted(path: Path) -> str:
    text = str(path)
    if any(c in text for c in '"\\$;{}') or any(ord(c) < 32 for c in text):
        raise ValueError(f"nginx prefix {text!r}: a path nginx could not quote")
    return f'"{text}"'


def _check_services(services: Sequence[str]) -> None:
    if not services:
        raise ValueError("nginx front: no services")
    if len(set(services)) != len(services):
        raise ValueError("nginx front: a service is listed twice")
    for s in services:
        if not SERVICE_RE.match(s):
            raise ValueError(f"nginx front: service {s!r} is not a name of letters, digits, '-', '_', '.'")


def _check_listen(listen: str) -> None:
    m = _LISTEN_RE.match(listen)
    if not m or not 0 < int(m.group(2)) < 65536:
        raise ValueError(f"nginx front: listen {listen!r} is not ADDRESS:PORT")


def front_conf(prefix: Path, listen: str, admin_port: int | None, services: list[str], mode: str = "lua") -> str:
    """The whole nginx.conf of a front in `prefix` (pid, temp files and logs inside it): each
    service at `http://<listen>/<service>/`. "lua" mode answers its admin location on
    127.0.0.1:`admin_port`; "file" mode has none and includes `<prefix>/upstreams/<service>.conf`,
    writing an empty one (which answers 503) for each service that has none yet."""
    prefix = Path(prefix).resolve()
    _check_services(services)
    _check_listen(listen)
    if mode not in MODES:
        raise ValueError(f"nginx front: mode {mode!r} is not one of {', '.join(MODES)}")
    if mode == "lua" and not (isinstance(admin_port, int) and 0 < admin_port < 65536):
        raise ValueError(f"nginx front: admin port {admin_port!r} is not a port")
    q = _quoted
    head = f"""# Written by cockpit: a front door in {prefix} ({mode} mode).
worker_processes 2;
worker_shutdown_timeout 10s;  # a reload does not wait on a slow request for long
pid {q(prefix / "nginx.pid")};
error_log {q(prefix / "error.log")} warn;
"""
    if mode == "lua":
        head += ("load_module /usr/lib/nginx/modules/ndk_http_module.so;\n"
                 "load_module /usr/lib/nginx/modules/ngx_http_lua_module.so;\n")
    http = [f"""events {{ worker_connections 1024; }}
http {{
    access_log off;
    default_type text/plain;
    client_body_temp_path {q(prefix / "client_body_temp")};
    proxy_temp_path {q(prefix / "proxy_temp")};
    fastcgi_temp_path {q(prefix / "fastcgi_temp")};
    uwsgi_temp_path {q(prefix / "uwsgi_temp")};
    scgi_temp_path {q(prefix / "scgi_temp")};
    # Workers run as an unprivileged user that may not reach the prefix: nothing they do touches disk.
    client_max_body_size 1m;
    client_body_buffer_size 1m;
    proxy_max_temp_file_size 0;
"""]
    if mode == "lua":
        http.append(lua_http(services, admin_port, ident))
    else:
        (prefix / "upstreams").mkdir(parents=True, exist_ok=True)
        for s in services:
            path = upstream_path(prefix, s)
            if not path.exists():
                _write_atomic(path, render_upstream(s, []))
            http.append(f"    include {q(path)};\n")
    http.append(f"    server {{\n        listen {listen};\n")
    http.extend(_location(s, mode) for s in services)
    http.append("        location / { return 404 \"no such service: the path starts with /<service>/\\n\"; }\n"
                "    }\n}\n")
    return head + "".join(http)


def _location(service: str, mode: str) -> str:
    i = ident(service)
    if mode == "lua":
        gate = f'access_by_lua_block {{ require("cockpit_front").check("{service}") }}'
    else:
        gate = f'if ($cockpit_live_{i} = 0) {{ return 503 "no live member for service {service}\\n"; }}'
    return f"""        location /{service}/ {{
            {gate}
            proxy_pass http://cockpit_{i}/;
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Prefix /{service};
            # A member that refuses or drops the connection: the request goes to another.
            proxy_next_upstream error timeout http_502 http_504;
            proxy_next_upstream_timeout 10s;
            proxy_connect_timeout 2s;
        }}
"""


# --- "file" mode: an upstream file per service ----------------------------------------------------


def upstream_path(prefix: Path, service: str) -> Path:
    return Path(prefix) / "upstreams" / f"{service}.conf"


def _member_dict(m: Member) -> dict:
    return {"address": m.address, "port": m.port, "weight": m.weight, "max_fails": m.max_fails,
            "fail_timeout": m.fail_timeout, "down": bool(m.down), "backup": bool(m.backup)}


def _member_from(d: dict) -> Member:
    return Member(str(d["address"]), int(d["port"]), int(d.get("weight", 1)), int(d.get("max_fails", 2)),
                  int(d.get("fail_timeout", 10)), bool(d.get("down", False)), bool(d.get("backup", False)))


def render_upstream(service: str, members: Sequence[Member]) -> str:
    """A service's upstream block (and its liveness variable) from its members. With no live
    member the block holds a placeholder that is down and the location answers 503."""
    i = ident(service)
    lines = [HEADER + json.dumps([_member_dict(m) for m in members]),
             f"upstream cockpit_{i} {{"]
    if not any(not m.backup for m in members):
        lines.append("    server 127.0.0.1:1 down;  # a placeholder: nginx wants one server that is not a backup")
    for m in members:
        host = f"[{m.address}]" if ":" in m.address else m.address
        lines.append(f"    server {host}:{m.port} weight={m.weight} max_fails={m.max_fails} "
                     f"fail_timeout={m.fail_timeout}s{' down' if m.down else ''}{' backup' if m.backup else ''};")
    live = int(any(not m.down for m in members))
    lines += ["}", f"geo $cockpit_live_{i} {{ default {live}; }}", ""]
    return "\n".join(lines)


def read_upstream(path: Path) -> list[Member]:
    """The members an upstream file was rendered from (its first line)."""
    first = path.read_text().split("\n", 1)[0]
    if not first.startswith(HEADER):
        raise ValueError(f"{path}: not an upstream file written by cockpit")
    return [_member_from(d) for d in json.loads(first[len(HEADER):])]


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _children(pid: int) -> set[int]:
    try:
        return {int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()}
    except (OSError, ValueError):
        return set()


def _serving(pid: int) -> bool:
    """A worker that still accepts connections (not one shutting down after a reload)."""
    try:
        title = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
    except OSError:
        return False
    return b"worker process" in title and b"shutting down" not in title


def worker_pids(master: int) -> set[int]:
    """The workers of nginx's master `master` that accept connections."""
    return {p for p in _children(master) if _serving(p)}


# --- the front -------------------------------------------------------------------------------------


def _valid_members(members: Sequence[Member]) -> list[Member]:
    members = list(members)
    if len(members) > MAX_MEMBERS:
        raise ValueError(f"more than {MAX_MEMBERS} members")
    seen = set()
    for m in members:
        if not isinstance(m.address, str) or not _ADDRESS_RE.match(m.address):
            raise ValueError(f"member {m.address!r}: not an address")
        if m.key in seen:
            raise ValueError(f"member {m.key} is listed twice")
        seen.add(m.key)
    return members


def _http_with_port(url: object) -> bool:
    try:
        return isinstance(url, str) and urlsplit(url).scheme == "http" and bool(urlsplit(url).port)
    except ValueError:  # a port out of range
        return False


def _loopback_url(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class NginxFront:
    """One nginx front door: "lua" mode through its admin location (`admin_url`, loopback only),
    "file" mode through the upstream files and reloads of the nginx in `prefix`."""

    def __init__(self, admin_url: str | None, prefix: Path | None, mode: str = "lua", *,
                 url: str | None = None, name: str = "nginx", timeout_s: float = 5.0):
        if mode not in MODES:
            raise ValueError(f"nginx front: mode {mode!r} is not one of {', '.join(MODES)}")
        if mode == "lua" and not admin_url:
            raise ValueError("nginx front: lua mode needs the admin location's URL")
        if mode == "file" and prefix is None:
            raise ValueError("nginx front: file mode needs nginx's prefix")
        self.mode, self.name, self.url, self.timeout_s = mode, name, url, timeout_s
        self.admin_url = admin_url.rstrip("/") if admin_url else None
        self.prefix = Path(prefix).resolve() if prefix is not None else None
        # trust_env off: no proxy from the environment between us and a loopback admin location
        self._http = httpx.Client(timeout=timeout_s, trust_env=False) if mode == "lua" else None

    @classmethod
    def from_settings(cls, settings: dict, where: str = "backends.front") -> NginxFront:
        """From a config section `{kind: nginx, mode: lua|file, admin_url, prefix, url}`;
        ValueError naming the setting."""
        if not isinstance(settings, dict):
            raise ValueError(f"{where}: not a mapping")
        unknown = sorted(set(settings) - SETTINGS)
        if unknown:
            raise ValueError(f"{where}.{unknown[0]}: not a setting of the nginx front "
                             f"(known: {', '.join(sorted(SETTINGS))})")
        if settings.get("kind", "nginx") != "nginx":
            raise ValueError(f"{where}.kind: {settings.get('kind')!r} is not nginx")
        mode = settings.get("mode", "lua")
        if mode not in MODES:
            raise ValueError(f"{where}.mode: {mode!r} is not one of {', '.join(MODES)}")
        admin_url, prefix, url = settings.get("admin_url"), settings.get("prefix"), settings.get("url")
        if url is not None and not (isinstance(url, str) and urlsplit(url).scheme in ("http", "https")
                                    and urlsplit(url).hostname):
            raise ValueError(f"{where}.url: {url!r} is not an http(s) URL")
        if prefix is not None and not (isinstance(prefix, str) and prefix):
            raise ValueError(f"{where}.prefix: {prefix!r} is not a directory's path")
        if mode == "lua":
            if not _http_with_port(admin_url):
                raise ValueError(f"{where}.admin_url: lua mode needs the admin location as http://127.0.0.1:PORT")
            if not _loopback_url(admin_url):
                raise ValueError(f"{where}.admin_url: the admin location is plain http: only a loopback address")
            return cls(admin_url, Path(prefix) if prefix else None, "lua", url=url)
        if prefix is None:
            raise ValueError(f"{where}.prefix: file mode needs nginx's prefix directory")
        if not (Path(prefix) / "nginx.conf").is_file():
            raise ValueError(f"{where}.prefix: {prefix} holds no nginx.conf")
        return cls(None, Path(prefix), "file", url=url)

    def __repr__(self) -> str:
        return f"NginxFront({self.mode}, {self.admin_url or self.prefix})"

    def close(self) -> None:
        if self._http is not None:
            self._http.close()

    def _error(self, message: str, transient: bool = False) -> FrontError:
        return FrontError(self.name, " ".join(message.split()), transient)

    def set_members(self, service: str, members: Sequence[Member]) -> None:
        """Replace `service`'s members; returns once nginx uses them."""
        if not SERVICE_RE.match(service):
            raise self._error(f"service {service!r}: not a service name")
        try:
            members = _valid_members(members)
        except ValueError as e:
            raise self._error(f"{service}: {e}") from None
        if self.mode == "lua":
            self._admin("POST", service, {"members": [_member_dict(m) for m in members]})
        else:
            self._apply_file(service, members)

    def members(self, service: str) -> list[Member]:
        """The members nginx uses now for `service`."""
        if not SERVICE_RE.match(service):
            raise self._error(f"service {service!r}: not a service name")
        if self.mode == "lua":
            return self._admin("GET", service, None)
        path = upstream_path(self.prefix, service)
        try:
            return read_upstream(path)
        except FileNotFoundError:
            raise self._error(f"{service}: no upstream file {path}") from None
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise self._error(f"{service}: {path}: {e}") from None

    # lua mode

    def _admin(self, method: str, service: str, body: dict | None) -> list[Member]:
        url = f"{self.admin_url}/upstreams/{service}"
        try:
            r = self._http.request(method, url, json=body)
        except httpx.HTTPError as e:
            raise self._error(f"{url}: {type(e).__name__}: {e}", transient=True) from None
        if r.status_code != 200:
            raise self._error(f"{service}: the admin location said {r.status_code}: {r.text.strip()[:200]}",
                              transient=r.status_code >= 500)
        try:
            return [_member_from(d) for d in r.json()["members"]]
        except (ValueError, KeyError, TypeError) as e:
            raise self._error(f"{url}: an answer this front cannot read: {e}") from None

    # file mode

    def _nginx(self, *args: str) -> subprocess.CompletedProcess:
        exe = shutil.which("nginx") or "/usr/sbin/nginx"
        argv = [exe, "-p", str(self.prefix), "-c", str(self.prefix / "nginx.conf"),
                "-e", str(self.prefix / "error.log"), *args]
        try:
            return subprocess.run(argv, capture_output=True, text=True, timeout=15)
        except (OSError, subprocess.TimeoutExpired) as e:
            raise self._error(f"nginx {' '.join(args)} in {self.prefix}: {e}", transient=True) from None

    def _master(self) -> int:
        try:
            pid = int((self.prefix / "nginx.pid").read_text().strip())
            os.kill(pid, 0)
            return pid
        except (OSError, ValueError):
            raise self._error(f"no nginx runs in {self.prefix}", transient=True) from None

    def _apply_file(self, service: str, members: list[Member]) -> None:
        path = upstream_path(self.prefix, service)
        if not path.parent.is_dir():
            raise self._error(f"{service}: {path.parent} does not exist (not a file-mode front?)")
        # One change at a time, also across processes: a reload applies every service's file.
        with open(self.prefix / "upstreams" / ".lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            old = path.read_text() if path.exists() else None
            _write_atomic(path, render_upstream(service, members))
            try:
                self._reload()
            except FrontError:
                if old is None:
                    path.unlink(missing_ok=True)
                else:
                    _write_atomic(path, old)
                raise

    def _reload(self) -> None:
        """`nginx -t`, then a reload; returns once the new workers serve and the old ones stopped
        taking connections."""
        master = self._master()
        r = self._nginx("-t")
        if r.returncode != 0:
            raise self._error(f"nginx rejected the config: {_last_line(r)}")
        old = worker_pids(master)
        r = self._nginx("-s", "reload")
        if r.returncode != 0:
            raise self._error(f"nginx reload: {_last_line(r)}", transient=True)
        deadline = time.monotonic() + self.timeout_s
        while time.monotonic() < deadline:
            now = worker_pids(master)
            if now and not now & old:
                return
            time.sleep(0.01)
        raise self._error(f"nginx did not start workers with the new config within {self.timeout_s:g} s "
                          f"(see {self.prefix / 'error.log'})", transient=True)


def _last_line(r: subprocess.CompletedProcess) -> str:
    lines = [ln for ln in (r.stderr or r.stdout or "").strip().splitlines()
             if "test failed" not in ln and "syntax is ok" not in ln]
    return lines[-1] if lines else f"exit status {r.returncode}"
