"""Each concern's backend, from the config: the simulation by default, or the real system."""

from __future__ import annotations

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
    root_dir: str | None = None  # local connection: each host's init_root is root_dir/<host>


def check(backends: dict) -> None:
    """Fail early, with the setting named, on what would stop the engine later: missing keys,
    plain http to a remote endpoint, a local Ansible connection without its root directory."""
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
    init = backends.get("init", {})
    if init.get("kind") == "ansible" and init.get("connection") == "local" and not init.get("root_dir"):
        raise BackendError("backends.init.root_dir: a local connection needs a directory for the hosts' roots")


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
            return AliyunCloud(region, creds, endpoint=settings.get("endpoint"), protocol=settings.get("protocol"))
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
    s = InitSettings(batch=settings.get("batch", 20), timeout_s=settings.get("timeout_s", 600.0),
                     root_dir=settings.get("root_dir"))
    if kind == "ansible":
        from cockpit.backends.ansible import AnsibleInit

        connection = settings.get("connection", "ssh")
        if connection == "local" and not s.root_dir:
            raise BackendError("backends.init.root_dir: a local connection needs a directory for the hosts' roots")
        return AnsibleInit(work_dir=work_dir / "ansible", connection=connection, user=settings.get("user"),
                           private_key_file=settings.get("private_key_file"), forks=settings.get("forks", 10),
                           extravars=settings.get("extravars")), s
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
        return InitTarget(row.name, None, v)

    return target
