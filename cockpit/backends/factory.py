"""Each concern's backend, from the config: the simulation by default, or the real system."""

from __future__ import annotations

import os

from dataclasses import dataclass
from pathlib import Path

from cockpit.backends.base import Cloud, HostInit, InitTarget
from cockpit.domain import World


class BackendError(ValueError):
    """A backend cannot be set up from the config; the message names the setting."""


@dataclass(frozen=True)
class InitSettings:
    batch: int = 20
    timeout_s: float = 600.0
    root_dir: str | None = None  # local connection only: each host's init_root is root_dir/<host>


def init_problem(init: dict) -> str | None:
    """What is wrong with an Ansible init config, as "backends.init.SETTING: why", or None.

    A local connection makes every host this machine: it needs a root_dir that may hold the
    hosts' roots, and its extravars may not move a root or reach the machine itself."""
    if init.get("kind") != "ansible":
        return None
    from cockpit.backends.ansible import CONNECTIONS, forbidden_extravars, root_dir_problem

    connection = init.get("connection", "ssh")
    if connection == "local":
        if not init.get("root_dir"):
            return "backends.init.root_dir: a local connection needs a directory for the hosts' roots"
        problem = root_dir_problem(init["root_dir"])
        if problem:
            return f"backends.init.root_dir: {problem}"
    bad = forbidden_extravars(init.get("extravars") or {}, connection)
    if bad:
        key = sorted(bad)[0]
        return f"backends.init.extravars.{key}: {CONNECTIONS.get(connection, connection)} may not set it ({bad[key]})"
    return None


def check(backends: dict) -> None:
    """Fail early, with the setting named, on what would stop the engine later: missing keys,
    plain http to a remote endpoint, a local Ansible connection that could leave its root."""
    cloud = backends.get("cloud", {})
    if cloud.get("kind") == "aliyun":
        from cockpit.backends.aliyun import Credentials, CredentialsError, _loopback

        c = cloud.get("credentials", {})
        try:
            if "file" in c:
                Credentials.from_file(c["file"], c.get("profile", "default"))
            else:
                Credentials.from_env(c.get("id_env", "ALIBABA_CLOUD_ACCESS_KEY_ID"),
                                     c.get("secret_env", "ALIBABA_CLOUD_ACCESS_KEY_SECRET"))
        except CredentialsError as e:
            raise BackendError(f"backends.cloud: {e}") from None
        endpoint = cloud.get("endpoint")
        if cloud.get("protocol") == "http" and not (endpoint and _loopback(endpoint)):
            raise BackendError("backends.cloud.protocol: plain http is only for a loopback endpoint")
    problem = init_problem(backends.get("init", {})) or registry_problem(backends.get("registry", {}))
    if problem:
        raise BackendError(problem)


def registry_problem(settings: dict) -> str | None:
    """A real registry's URL we may not talk to (plain http off loopback) or credentials that are
    not where the config says, or a webhook without its token; None when all is well."""
    hook = settings.get("webhook")
    if hook:
        env = webhook_token_env(hook)
        if not os.environ.get(env, "").strip():
            return (f"backends.registry.webhook: the bearer token is not set: put it in ${env} "
                    "(an open webhook would let anyone start replications)")
    if settings.get("kind", "sim") != "oci":
        return None
    from cockpit.backends.registry_oci import check_url
    from cockpit.engine.registries import RegistryConfigError, credentials

    for name, where in sorted(settings.get("registries", {}).items()):
        try:
            check_url(where["url"])
        except ValueError as e:
            return f"backends.registry.registries.{name}.url: {e}"
        try:
            credentials(name, where.get("credentials", {}))
        except RegistryConfigError as e:
            return str(e)
    return None


def webhook_token_env(hook: dict) -> str:
    """The environment variable that holds the webhook's bearer token."""
    return hook.get("token_env", "COCKPIT_WEBHOOK_TOKEN")


def make_cloud(settings: dict, world: World, known_instances: list[tuple[str, str, str]] = ()) -> Cloud | None:
    """The cloud backend (None for a world without a cloud IDC and no cloud configured). The
    in-process sim learns the instances the store already has (id, zone, charge), so releasing
    or renewing them works after a restart."""
    kind = settings.get("kind", "sim")
    if kind == "sim" and not any(i.kind == "cloud" for i in world.idcs):
        return None
    region = settings.get("region") or next((i.region for i in world.idcs if i.kind == "cloud"), None)
    if kind == "aliyun":
        from cockpit.backends.aliyun import AliyunCloud, Credentials, CredentialsError

        c = settings.get("credentials", {})
        try:
            creds = (Credentials.from_file(c["file"], c.get("profile", "default")) if "file" in c
                     else Credentials.from_env(c.get("id_env", "ALIBABA_CLOUD_ACCESS_KEY_ID"),
                                               c.get("secret_env", "ALIBABA_CLOUD_ACCESS_KEY_SECRET")))
        except CredentialsError as e:
            raise BackendError(f"backends.cloud: {e}") from None
        if not region:
            raise BackendError("backends.cloud.region: the world has no cloud IDC to take it from")
        try:
            return AliyunCloud(region, creds, endpoint=settings.get("endpoint"), protocol=settings.get("protocol"),
                               timeout_s=float(settings.get("timeout_s", 10.0)))
        except ValueError as e:
            raise BackendError(f"backends.cloud: {e}") from None
    from cockpit.backends.sim.cloud import SimCloud, SimCloudModel, SimInstance

    try:
        model = SimCloudModel.from_world(world, latency_s=settings.get("latency_ms", 300) / 1000,
                                         max_in_flight=settings.get("max_in_flight", 20))
    except ValueError as e:
        raise BackendError(f"backends.cloud: {e}") from None
    for iid, zone, charge in known_instances:
        if iid not in model.instances and zone in model.zones:
            z = model.zones[zone]
            model.instances[iid] = SimInstance(iid, zone, "", sorted(z.vswitches)[0], sorted(z.security_groups)[0],
                                               "PostPaid" if charge == "payg" else "PrePaid", 0.0)
    return SimCloud(model)


def make_init(settings: dict, world: World, work_dir: Path) -> tuple[HostInit, InitSettings]:
    kind = settings.get("kind", "sim")
    local = kind == "ansible" and settings.get("connection", "ssh") == "local"
    s = InitSettings(batch=settings.get("batch", 20), timeout_s=settings.get("timeout_s", 600.0),
                     root_dir=settings.get("root_dir") if local else None)  # a real host's root is its own /
    if kind == "ansible":
        from cockpit.backends.ansible import AnsibleInit

        problem = init_problem(settings)
        if problem:
            raise BackendError(problem)
        try:
            return AnsibleInit(work_dir=work_dir / "ansible", connection=settings.get("connection", "ssh"),
                               root_dir=s.root_dir, user=settings.get("user"),
                               private_key_file=settings.get("private_key_file"), forks=settings.get("forks", 10),
                               extravars=settings.get("extravars")), s
        except ValueError as e:
            raise BackendError(f"backends.init.{e}") from None
    from cockpit.backends.sim.init import SimInit

    return SimInit(seed=world.seed, forks=settings.get("forks", 10)), s


def init_target(world: World, settings: InitSettings):
    """How the engine describes a host to the init backend: its address and playbook variables."""
    mirrors = {r.idc: [] for r in world.registries}
    for r in world.registries:
        mirrors[r.idc].append(f"https://{r.name}.registry.internal")

    def target(row) -> InitTarget:
        v = {"registry_mirrors": mirrors.get(row.idc, [])}
        if settings.root_dir:
            v["init_root"] = str(Path(settings.root_dir) / row.name)
        return InitTarget(row.name, getattr(row, "address", None), v)

    return target


def make_runtime(settings: dict):
    """The container runtime: None for the simulation (the engine builds it from the store), or a
    Docker Engine per host."""
    if settings.get("kind", "sim") == "sim":
        return None
    from cockpit.backends.docker_engine import DockerRuntime

    try:
        return DockerRuntime.from_settings(settings)
    except BackendError:
        raise
    except ValueError as e:
        raise BackendError(f"backends.runtime: {e}") from None


def make_discovery(settings: dict):
    """The discovery store: None for the simulated one (the engine fills it from the store), or
    etcd or Consul."""
    if settings.get("kind", "sim") == "sim":
        return None
    from cockpit.backends.discovery_open import open_discovery

    try:  # the lock's TTL is the engine's, not the store's
        return open_discovery({k: v for k, v in settings.items() if k != "lock_ttl_s"})
    except ValueError as e:
        text = str(e)
        raise BackendError(f"backends.{text}" if text.startswith("discovery.") else f"backends.discovery: {text}") from None


def make_front(settings: dict):
    """The front door of HTTP services (nginx), or None when the config names none."""
    if not settings:
        return None
    from cockpit.backends.nginx_front import NginxFront

    try:
        return NginxFront.from_settings(settings)
    except ValueError as e:
        raise BackendError(str(e)) from None


def real_platform_problem(backends: dict, world: World) -> str | None:
    """What would make a real platform's engine act on the wrong thing: runtime hosts the world
    does not have (their containers would go nowhere), a real runtime with the simulated discovery
    store (the flows would say containers are in upstreams that no front door reads)."""
    runtime = backends.get("runtime", {})
    if runtime.get("kind", "sim") == "sim":
        return None
    names = {f"{g.name}-{i:04d}" for g in world.host_groups for i in range(1, g.count + 1)}
    for host in sorted(runtime.get("hosts", {})):
        if host not in names:
            return f"backends.runtime.hosts.{host}: the world has no such host (its hosts are named like {min(names)})"
    if backends.get("discovery", {}).get("kind", "sim") == "sim":
        return ("backends.discovery: a real container runtime needs a real discovery store (etcd or consul): "
                "the simulated one would list containers in upstreams no front door reads")
    return None
