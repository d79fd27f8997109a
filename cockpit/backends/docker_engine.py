"""The container runtime on real Docker Engines: one engine per platform host, reached over its
API (unix:// or tcp://) with the docker SDK, one client per host made on first use.

Containers share their host's network (`network_mode=host`: hosts have no bridge), so the
runtime gives each container its host ports itself, by the same rule as the simulation
(`core.addressing.publish`, against the ports its own containers on that engine hold, read from
their labels), and tells the process through its environment: PORT (the first), PORTS (all,
comma separated), NAME and SERVICE. What the engine needs to know again later (service, host,
address, ports, pool, task) is kept in `cockpit.*` labels, so inspect and list need nothing else.

Every answer of an engine becomes a ContainerError naming the host, in one line: transient when
trying again may work (the engine or the registry does not answer, a 5xx), not for a refusal
(an unknown image, a conflict, a bad limit). No call waits longer than `timeout_s` (a stop also
waits its grace period; a pull `pull_timeout_s`).
"""

from __future__ import annotations

import json
import math
import re
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from urllib.parse import urlsplit

import docker
import docker.auth
import docker.errors
import docker.utils
import requests
import urllib3.exceptions

from cockpit.backends.base import ContainerError, ContainerInfo, ContainerSpec, ContainerStats
from cockpit.backends.factory import BackendError
from cockpit.core.addressing import AddressError, publish

LABEL_SERVICE, LABEL_HOST, LABEL_NAME = "cockpit.service", "cockpit.host", "cockpit.name"
LABEL_PORTS, LABEL_ADDRESS, LABEL_POOL, LABEL_TASK = "cockpit.ports", "cockpit.address", "cockpit.pool", "cockpit.task"

MAX_HOSTS = 10_000
STATS_PARALLEL = 16  # one-shot stats requests in flight on one engine
MIN_API_VERSION = (1, 41)  # one-shot stats
HEALTH = {"interval": 2_000_000_000, "timeout": 2_000_000_000, "retries": 3, "start_period": 5_000_000_000}  # ns
# Docker's states as the Protocol's: a paused or restarting container still holds its host's resources.
STATES = {"created": "created", "running": "running", "paused": "running", "restarting": "running",
          "removing": "exited", "exited": "exited", "dead": "exited"}
# Refusals that trying again will not change, whatever the status code says.
PERMANENT = ("manifest unknown", "not found", "no such image", "pull access denied", "unauthorized", "denied",
             "invalid reference", "no matching manifest", "repository name must")
_HEALTH_IN_STATUS = re.compile(r"\((healthy|unhealthy|health: starting)\)")
_REGISTRY = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?)(:\d{1,5})?$")


class DockerRuntime:
    """ContainerRuntime on one Docker Engine per host. Safe to call from several threads."""

    def __init__(self, engines: dict[str, str], registries: dict[str, str], api_version: str = "1.41",
                 timeout_s: float = 5.0, pull_timeout_s: float = 120.0) -> None:
        """`engines`: host name -> engine URL (unix:///path or tcp://addr:port); `registries`:
        host name -> the registry ("addr:port") its images are pulled from."""
        self.engines = dict(engines)
        self.registries = dict(registries)
        self.api_version = api_version
        self.timeout_s = float(timeout_s)
        self.pull_timeout_s = float(pull_timeout_s)
        self._clients: dict[str, docker.DockerClient] = {}
        self._port_locks: dict[str, threading.Lock] = {}
        self._pending: dict[str, set[int]] = {}  # host -> host ports of creations under way
        self._samples: dict[tuple[str, str], tuple[int, int]] = {}  # (host, id) -> (cpu ns, system ns)
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: dict) -> DockerRuntime:
        """From a config section {kind: docker, api_version, timeout_s, pull_timeout_s, hosts:
        {host: url}, registries: {host: "addr:port"}}; BackendError (a ValueError) naming the
        setting when something is wrong."""
        return cls(**settings_of(settings))

    def close(self) -> None:
        with self._lock:
            clients, self._clients = list(self._clients.values()), {}
        for c in clients:
            c.close()

    # --- the Protocol -------------------------------------------------------------------------------

    def start(self, spec: ContainerSpec) -> ContainerInfo:
        host, what = spec.host, f"start {spec.name}"
        client = self._client(host)
        with self._answers(host, what):
            have = self._find(client, spec.name)
            if have is not None and not _ours(have):
                raise ContainerError(host, f"{what}: a container named {spec.name} that cockpit did not make is there")
            if have is None:
                ref = self._image_ref(spec)
                self._ensure_image(client, host, ref)
                have = self._create(client, spec, ref, what)
            if have["State"]["Status"] not in ("running", "restarting", "paused"):
                have = self._start_existing(client, have)
            return _info_of(host, have)

    def stop(self, host: str, name: str, timeout_s: float = 10.0) -> None:
        """Stop it (SIGTERM, SIGKILL after timeout_s); done when it is not there or not ours."""
        client = self._client(host)
        with self._answers(host, f"stop {name}"):
            have = self._find(client, name)
            if have is None or not _ours(have):
                return
            try:
                client.api.stop(have["Id"], timeout=max(0, math.ceil(timeout_s)))  # a stopped one answers 304
            except docker.errors.NotFound:
                return

    def remove(self, host: str, name: str) -> None:
        """Remove a stopped container (and its anonymous volumes); done when it is not there or
        not ours (another's container of that name is never touched)."""
        client = self._client(host)
        with self._answers(host, f"remove {name}"):
            have = self._find(client, name)
            if have is None or not _ours(have):
                return
            try:
                client.api.remove_container(have["Id"], v=True)
            except docker.errors.NotFound:
                return
            except docker.errors.APIError as e:
                text = _explain(e).lower()
                if "already in progress" in text:
                    return
                if e.status_code == 409 and "running" in text:
                    raise ContainerError(host, f"container {name} is running: stop it first") from None
                raise

    def inspect(self, host: str, name: str) -> ContainerInfo | None:
        client = self._client(host)
        with self._answers(host, f"inspect {name}"):
            have = self._find(client, name)
            return _info_of(host, have) if have is not None and _ours(have) else None

    def list(self, host: str) -> list[ContainerInfo]:
        client = self._client(host)
        with self._answers(host, "list containers"):
            rows = client.api.containers(all=True, filters={"label": [LABEL_NAME, f"{LABEL_HOST}={host}"]})
        return sorted((_info_of_summary(host, r) for r in rows), key=lambda c: c.name)

    # --- live figures and reachability -------------------------------------------------------------

    def stats(self, host: str) -> list[ContainerStats]:
        """One sample of each running container on the host. Takes about a second: the engine
        samples its containers once a second and a one-shot request waits for the next sample,
        so the containers are asked all at once (STATS_PARALLEL at a time).

        cpu_pct is the share of one core since this runtime's previous sample of the same
        container: None the first time (and after its counters went back, as on a restart)."""
        client = self._client(host)
        with self._answers(host, "container stats"):
            rows = client.api.containers(filters={"label": [LABEL_NAME, f"{LABEL_HOST}={host}"],
                                                  "status": "running"})

        def sample(row: dict) -> ContainerStats | None:
            with self._answers(host, "container stats"):
                try:
                    return self._figures(host, row, client.api.stats(row["Id"], stream=False, one_shot=True))
                except docker.errors.NotFound:  # gone since the list
                    return None

        out = []
        if rows:
            with ThreadPoolExecutor(min(len(rows), STATS_PARALLEL), thread_name_prefix=f"stats-{host}") as pool:
                out = [s for s in pool.map(sample, rows) if s is not None]
        with self._lock:  # forget the containers that no longer run
            live = {r["Id"] for r in rows}
            for key in [k for k in self._samples if k[0] == host and k[1] not in live]:
                del self._samples[key]
        return sorted(out, key=lambda c: c.name)

    def probe(self, host: str) -> str | None:
        """None when the host's engine answers its ping within timeout_s, else why not (one line)."""
        try:
            client = self._client(host)
            with self._answers(host, ""):
                client.api.ping()
        except ContainerError as e:
            url = self.engines.get(host)
            return e.message if url is None or e.message.startswith("engine at") else \
                f"engine at {url} answers, but not as a Docker Engine: {e.message}"
        return None

    # --- helpers ------------------------------------------------------------------------------------

    def _client(self, host: str) -> docker.DockerClient:
        with self._lock:
            c = self._clients.get(host)
            if c is not None:
                return c
            url = self.engines.get(host)
            if url is None:
                raise ContainerError(host, f"no container engine is configured for host {host}")
            # The API version is pinned: making the client asks the engine nothing.
            c = docker.DockerClient(base_url=url, version=self.api_version, timeout=self.timeout_s,
                                    max_pool_size=STATS_PARALLEL + 8)
            c.api.trust_env = False  # no proxy from the environment between us and an engine
            self._clients[host] = c
            self._port_locks[host] = threading.Lock()
            self._pending[host] = set()
            return c

    @contextmanager
    def _answers(self, host: str, what: str, wait_s: float | None = None) -> Iterator[None]:
        """Whatever the SDK or its transport raises, as one ContainerError naming the host."""
        where = f"{what}: " if what else ""
        try:
            yield
        except ContainerError:
            raise
        except docker.errors.APIError as e:
            text = _explain(e)
            transient = (e.status_code or 500) >= 500 and not _permanent(text)
            raise ContainerError(host, f"{where}{text}", transient) from None
        except (requests.exceptions.RequestException, urllib3.exceptions.HTTPError, OSError) as e:
            raise ContainerError(host, f"{where}{self._unreachable(host, e, wait_s)}", transient=True) from None
        except docker.errors.DockerException as e:
            text = _one_line(str(e))
            raise ContainerError(host, f"{where}{text}", transient="connect" in text.lower()) from None

    def _unreachable(self, host: str, e: BaseException, wait_s: float | None = None) -> str:
        url = self.engines.get(host, "?")
        if _timed_out(e):
            return f"engine at {url} does not answer (no answer within {wait_s or self.timeout_s:g} s)"
        return f"engine at {url} does not answer ({_reason(e)})"

    def _find(self, client, name: str) -> dict | None:
        """The engine's view of the container of that name (its inspect), or None."""
        try:
            return client.api.inspect_container(name)
        except docker.errors.NotFound:
            return None

    def _image_ref(self, spec: ContainerSpec) -> str:
        registry = self.registries.get(spec.host)
        if not registry:
            raise ContainerError(spec.host, f"start {spec.name}: no registry is configured for host {spec.host}")
        image = spec.image.strip()
        if not image or any(ch.isspace() for ch in image) or "://" in image:
            raise ContainerError(spec.host, f"start {spec.name}: {spec.image!r} is not an image reference")
        return f"{registry}/{image}"

    def _ensure_image(self, client, host: str, ref: str) -> None:
        try:
            client.api.inspect_image(ref)
        except docker.errors.ImageNotFound:
            self._pull(client, host, ref)

    def _pull(self, client, host: str, ref: str) -> None:
        """Pull `ref` through the engine within pull_timeout_s. Not `api.pull`: it waits without
        a timeout. An empty X-Registry-Auth: never credentials from this machine's docker config."""
        registry = ref.split("/", 1)[0]
        image = ref.split("/", 1)[1]
        where = f"pull {image} from registry {registry}"
        repo, tag = docker.utils.parse_repository_tag(ref)
        api = client.api
        deadline = time.monotonic() + self.pull_timeout_s
        with self._answers(host, where, self.pull_timeout_s):
            resp = api.post(f"{api.base_url}/v{api.api_version}/images/create",
                            params={"fromImage": repo, "tag": tag or "latest"},
                            headers={"X-Registry-Auth": docker.auth.encode_header({})}, stream=True,
                            timeout=(self.timeout_s, self.pull_timeout_s))
            try:
                if resp.status_code >= 400:
                    text = _message_of(resp)
                    transient = resp.status_code >= 500 and not _permanent(text)
                    raise ContainerError(host, f"{where}: {text}", transient)
                for line in resp.iter_lines():
                    if time.monotonic() > deadline:
                        raise ContainerError(host, f"{where}: not done within {self.pull_timeout_s:g} s", True)
                    doc = _json(line)
                    if doc.get("error"):
                        text = _one_line(str(doc["error"]))
                        raise ContainerError(host, f"{where}: {text}", not _permanent(text))
            finally:
                resp.close()

    def _create(self, client, spec: ContainerSpec, ref: str, what: str) -> dict:
        """Create the container with host ports no other of its engine's containers holds: those
        in their labels, and those handed out to creations still under way (several threads
        create on one host at once)."""
        host = spec.host
        with self._port_locks[host]:
            taken = self._taken_ports(client) | self._pending[host]
            try:
                ports = publish(spec.ports, spec.host_ports, taken)
            except AddressError as e:
                raise ContainerError(host, f"{what}: {e}") from None
            mine = {hp for _, hp in ports}
            self._pending[host] |= mine
        try:
            return client.containers.create(ref, **_create_args(spec, ports)).attrs
        except docker.errors.APIError as e:
            if e.status_code != 409:
                raise
        finally:
            with self._port_locks[host]:
                self._pending[host] -= mine
        # Made meanwhile by another caller with the same name (a repeated call): that one it is.
        have = self._find(client, spec.name)
        if have is None or not _ours(have):
            raise ContainerError(spec.host, f"{what}: the name is taken and not by a container of cockpit's",
                                 have is None)
        return have

    def _taken_ports(self, client) -> set[int]:
        taken: set[int] = set()
        for r in client.api.containers(all=True, filters={"label": LABEL_PORTS}):
            taken.update(hp for _, hp in _ports_of(r.get("Labels") or {}))
        return taken

    def _start_existing(self, client, have: dict) -> dict:
        """Start a created or exited container; its inspect after. One that cannot start (a
        command that is not in the image) is removed, so it holds no ports once the engine
        gives up on it."""
        try:
            client.api.start(have["Id"])
        except docker.errors.APIError as e:
            if (e.status_code or 500) < 500 or _permanent(_explain(e)):
                try:
                    client.api.remove_container(have["Id"], v=True, force=True)
                except (docker.errors.DockerException, requests.exceptions.RequestException):
                    pass  # the failure to report is the start's
            raise
        return client.api.inspect_container(have["Id"])

    def _figures(self, host: str, row: dict, s: dict) -> ContainerStats:
        labels = row.get("Labels") or {}
        cpu = s.get("cpu_stats") or {}
        total = int((cpu.get("cpu_usage") or {}).get("total_usage") or 0)
        system = int(cpu.get("system_cpu_usage") or 0)
        cores = int(cpu.get("online_cpus") or len((cpu.get("cpu_usage") or {}).get("percpu_usage") or []) or 1)
        key = (host, row["Id"])
        with self._lock:
            before = self._samples.get(key)
            self._samples[key] = (total, system)
        pct = None
        if before is not None and system > before[1] and total >= before[0]:
            pct = round((total - before[0]) / (system - before[1]) * cores * 100.0, 2)
        mem = s.get("memory_stats") or {}
        detail = mem.get("stats") or {}
        usage = int(mem.get("usage") or 0)
        cache = int(detail.get("total_inactive_file", detail.get("inactive_file", 0)) or 0)
        m = _HEALTH_IN_STATUS.search(row.get("Status") or "")
        health = None if m is None else ("starting" if m.group(1) == "health: starting" else m.group(1))
        return ContainerStats(labels.get(LABEL_NAME) or _summary_name(row), labels.get(LABEL_SERVICE, ""), pct,
                              usage - cache if cache < usage else usage, int(mem.get("limit") or 0), health)


# --- what a container is made with -------------------------------------------------------------------


def _create_args(spec: ContainerSpec, ports: list[list[int]]) -> dict:
    host_ports = [hp for _, hp in ports]
    env = {"NAME": spec.name, "SERVICE": spec.service}
    if host_ports:
        env |= {"PORT": str(host_ports[0]), "PORTS": ",".join(map(str, host_ports))}
    labels = {LABEL_SERVICE: spec.service, LABEL_HOST: spec.host, LABEL_NAME: spec.name,
              LABEL_PORTS: json.dumps(ports)}
    if spec.host_address:
        labels[LABEL_ADDRESS] = spec.host_address
    if spec.pool is not None:
        labels[LABEL_POOL] = str(spec.pool)
    if spec.task is not None:
        labels[LABEL_TASK] = str(spec.task)
    # use_config_proxy=False: no proxy settings from this machine's docker config in the
    # container's environment (the health check's wget to 127.0.0.1 would go through them).
    args: dict = {"name": spec.name, "labels": labels, "environment": env, "network_mode": "host",
                  "detach": True, "restart_policy": {"Name": "unless-stopped"}, "use_config_proxy": False}
    if spec.command:
        args["command"] = [str(a) for a in spec.command]
    if spec.health_cmd:
        args["healthcheck"] = {"test": ["CMD", *map(str, spec.health_cmd)], **HEALTH}
    elif host_ports:
        probe = f"wget -q -O /dev/null http://127.0.0.1:{host_ports[0]}/ || exit 1"
        args["healthcheck"] = {"test": ["CMD-SHELL", probe], **HEALTH}
    if spec.cpu > 0:
        args["nano_cpus"] = int(round(spec.cpu * 1e9))
    if spec.memory_gb > 0:
        args["mem_limit"] = int(spec.memory_gb * 2**30)
    return args


# --- reading the engine's answers -----------------------------------------------------------------------


def _labels(attrs: dict) -> dict:
    return (attrs.get("Config") or {}).get("Labels") or {}


def _ours(attrs: dict) -> bool:
    return LABEL_NAME in _labels(attrs)


def _ports_of(labels: dict) -> tuple[tuple[int, int], ...]:
    try:
        return tuple((int(cp), int(hp)) for cp, hp in json.loads(labels.get(LABEL_PORTS) or "[]"))
    except (ValueError, TypeError):  # a label someone else wrote: no ports we know of
        return ()


def _info_of(host: str, attrs: dict) -> ContainerInfo:
    labels = _labels(attrs)
    state = STATES.get(((attrs.get("State") or {}).get("Status") or "").lower(), "exited")
    return ContainerInfo(attrs["Name"].lstrip("/"), host, labels.get(LABEL_SERVICE, ""), attrs["Id"], state,
                         labels.get(LABEL_ADDRESS), _ports_of(labels))


def _summary_name(row: dict) -> str:
    return ((row.get("Names") or ["?"])[0]).lstrip("/")


def _info_of_summary(host: str, row: dict) -> ContainerInfo:
    labels = row.get("Labels") or {}
    return ContainerInfo(_summary_name(row), host, labels.get(LABEL_SERVICE, ""), row["Id"],
                         STATES.get((row.get("State") or "").lower(), "exited"), labels.get(LABEL_ADDRESS),
                         _ports_of(labels))


def _one_line(text: str, limit: int = 300) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _explain(e: docker.errors.APIError) -> str:
    """The engine's own message; else the HTTP status (not the SDK's text, which holds the URL)."""
    if e.explanation:
        return _one_line(str(e.explanation))
    reason = getattr(e.response, "reason", "") or ""
    return _one_line(f"HTTP {e.status_code} {reason}".strip())


def _permanent(text: str) -> bool:
    low = text.lower()
    return any(p in low for p in PERMANENT)


def _json(line: bytes) -> dict:
    try:
        doc = json.loads(line)
    except ValueError:
        return {}
    return doc if isinstance(doc, dict) else {}


def _message_of(resp: requests.Response) -> str:
    try:
        body = resp.content[:4096]
    except (requests.exceptions.RequestException, urllib3.exceptions.HTTPError, OSError):
        body = b""
    doc = _json(body)
    return _one_line(str(doc.get("message") or body.decode(errors="replace") or f"HTTP {resp.status_code}"))


def _causes(e: BaseException) -> Iterator[BaseException]:
    """An exception and everything it wraps (requests and urllib3 nest their causes in args)."""
    seen: set[int] = set()
    todo: list[BaseException] = [e]
    while todo:
        x = todo.pop(0)
        if id(x) in seen:
            continue
        seen.add(id(x))
        yield x
        todo += [a for a in getattr(x, "args", ()) if isinstance(a, BaseException)]
        todo += [a for a in (getattr(x, "reason", None), x.__cause__, x.__context__) if isinstance(a, BaseException)]


def _timed_out(e: BaseException) -> bool:
    return any(isinstance(x, (requests.exceptions.Timeout, urllib3.exceptions.TimeoutError, TimeoutError))
               for x in _causes(e))


def _reason(e: BaseException) -> str:
    """The innermost OS-level cause of a transport error ("connection refused"), else its text."""
    for x in _causes(e):
        if isinstance(x, OSError) and x.strerror:
            return x.strerror.lower()
    return _one_line(str(e), 160)


# --- settings ---------------------------------------------------------------------------------------------

SETTINGS = ("kind", "api_version", "timeout_s", "pull_timeout_s", "hosts", "registries")
WHERE = "backends.runtime"  # the config section (see backends/factory.py: make_runtime)


def settings_of(settings: dict) -> dict:
    """DockerRuntime's arguments from its config section, or BackendError naming the setting."""
    if not isinstance(settings, dict):
        raise BackendError(f"{WHERE}: expected a mapping, not {type(settings).__name__}")
    unknown = sorted(_shown(k) for k in settings if k not in SETTINGS)
    if unknown:
        raise BackendError(f"{WHERE}.{unknown[0]}: unknown setting (known: {', '.join(SETTINGS)})")
    if settings.get("kind", "docker") != "docker":
        raise BackendError(f"{WHERE}.kind: {_val(settings.get('kind'))} is not docker")
    version = settings.get("api_version", "1.41")
    if isinstance(version, float):  # YAML reads 1.50 as 1.5: a version must be quoted
        raise BackendError(f"{WHERE}.api_version: {_val(version)}: quote it, such as \"1.41\" "
                           "(as a number 1.50 is 1.5)")
    m = re.fullmatch(r"1\.(\d{1,3})", str(version)) if isinstance(version, str) else None
    if m is None or (1, int(m.group(1))) < MIN_API_VERSION:
        raise BackendError(f"{WHERE}.api_version: {_val(version)}: expected 1.41 or later, such as \"1.41\"")
    return {"engines": _hosts(settings.get("hosts")),
            "registries": _registries(settings.get("registries"), settings.get("hosts")),
            "api_version": version,
            "timeout_s": _seconds(settings, "timeout_s", 5.0, 0.1, 300.0),
            "pull_timeout_s": _seconds(settings, "pull_timeout_s", 120.0, 1.0, 3600.0)}


def _seconds(settings: dict, key: str, default: float, low: float, high: float) -> float:
    v = settings.get(key, default)
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or not low <= v <= high:
        raise BackendError(f"{WHERE}.{key}: {_val(v)}: expected seconds from {low:g} to {high:g}")
    return float(v)


def _val(value: object) -> str:
    """A config value in a message: its repr (one line for any JSON or YAML value), cut short."""
    text = repr(value)
    return text if len(text) <= 80 else text[:79] + "…"


def _shown(key: object) -> str:
    """A config key as a message may show it: as it is when plain, else quoted and cut short."""
    text = str(key)
    plain = text and len(text) <= 60 and all(ch.isprintable() and not ch.isspace() for ch in text)
    return text if plain else repr(text[:60])


def _host_name(name: object, where: str) -> str:
    plain = isinstance(name, str) and all(ch.isprintable() and not ch.isspace() for ch in name)
    if not plain or not name or len(name) > 253:
        raise BackendError(f"{where}: {_shown(name)} is not a host name")
    return name


def _hosts(hosts: object) -> dict[str, str]:
    where = f"{WHERE}.hosts"
    if not isinstance(hosts, dict) or not hosts:
        raise BackendError(f"{where}: expected a mapping of host name to engine URL (unix:///path or tcp://addr:port)")
    if len(hosts) > MAX_HOSTS:
        raise BackendError(f"{where}: {len(hosts):,} hosts: at most {MAX_HOSTS:,}")
    out = {}
    for name, url in hosts.items():
        name = _host_name(name, where)
        problem = _url_problem(url)
        if problem:
            raise BackendError(f"{where}.{name}: {problem}")
        out[name] = url
    return out


def _url_problem(url: object) -> str | None:
    if not isinstance(url, str) or len(url) > 1000:
        return "expected an engine URL (unix:///path or tcp://addr:port)"
    try:
        u = urlsplit(url)
        port = u.port
    except ValueError:
        return f"{_val(url)} is not a URL"
    if u.scheme == "unix":
        return None if u.path.startswith("/") and not u.netloc and not u.query else \
            f"{_val(url)}: expected unix:///absolute/path"
    if u.scheme == "tcp":
        return None if u.hostname and port and u.path in ("", "/") and not u.query else \
            f"{_val(url)}: expected tcp://addr:port"
    return f"{_val(url)}: only unix:// and tcp:// engines"


def _registries(registries: object, hosts: object) -> dict[str, str]:
    where = f"{WHERE}.registries"
    if not isinstance(registries, dict):
        raise BackendError(f"{where}: expected a mapping of host name to registry (addr:port)")
    if len(registries) > MAX_HOSTS:
        raise BackendError(f"{where}: {len(registries):,} entries: at most {MAX_HOSTS:,}")
    out = {}
    for name, addr in registries.items():
        name = _host_name(name, where)
        if name not in hosts:
            raise BackendError(f"{where}.{name}: not a host of {WHERE}.hosts")
        if not isinstance(addr, str) or not _REGISTRY.match(addr) or not _port_ok(addr):
            raise BackendError(f"{where}.{name}: {_val(addr)}: expected a registry address such as 10.1.0.5:5000")
        out[name] = addr
    missing = sorted(h for h in hosts if h not in out)
    if missing:
        raise BackendError(f"{where}: host {missing[0]} has no registry" +
                           (f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""))
    return out


def _port_ok(addr: str) -> bool:
    head, sep, port = addr.rpartition(":")
    if not sep or head.endswith(":") or (addr.startswith("[") and not head.endswith("]")):
        return True  # no port (IPv6 brackets hold colons of their own)
    return port.isdigit() and 1 <= int(port) <= 65535
