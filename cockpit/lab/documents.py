"""The two files `lab up` writes for Cockpit: the lab's world (its IDCs, hosts with their real
addresses, pools, services, registries) and a config that opens it on the lab's real engines."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import yaml

from cockpit.lab.layout import SHARED_POOL, WEB_POOL, Group

HARDWARE = {"name": "lab", "cores": 2, "memory_gb": 2, "disk_gb": 20}
# The services: each answers HTTP on $PORT with $NAME (the lab's image), small enough that
# several fit on a host. Images are tags of the one pushed rootfs, so they share its layer.
SERVICES = (
    {"name": "feed", "port": 8080, "peak_qps": 200},
    {"name": "user", "port": 8081, "peak_qps": 100},
)
IMAGE_TAG = "1"
REPLICATION_SCHEDULE = "* * * * *"


def image_of(service: str) -> str:
    return f"lab/{service}"


@dataclass
class Facts:
    """What the files are made from: the lab as `up` built it."""

    dir: Path
    groups: list[Group]
    names: dict[int, tuple[str, str]]  # host number -> (name, IDC)
    addresses: dict[int, str]  # host number -> address
    docker_urls: dict[str, str]  # host name -> unix:// socket URL
    registries: dict[str, tuple[str, str, int]]  # IDC -> (registry name, bridge address, port)
    private_key: Path
    image_mb: float
    etcd_url: str
    front: dict = field(default_factory=dict)  # backends.front, when nginx runs


def registry_name(idc: str) -> str:
    return f"reg-{idc}"


def world(f: Facts, now: datetime) -> dict:
    idcs = [g.idc for g in f.groups if g.pool == WEB_POOL]
    offset = now.strftime("%z")
    doc: dict = {
        "name": "lab",
        "seed": 1,
        "start": now.replace(second=0, microsecond=0).isoformat(),
        "traffic": {"utc_offset": f"{offset[:3]}:{offset[3:]}", "night_floor": 0.2, "day_level": 0.5,
                    "peaks": [{"at": "12:30", "height": 0.9, "width_h": 1.0}, {"at": "21:00", "height": 1.0, "width_h": 1.5}]},
        "idcs": [{"name": idc, "kind": "private"} for idc in idcs],
        "hardware": [dict(HARDWARE)],
        "clusters": [{"name": "web", "pools": [{"name": WEB_POOL, "kind": "online"}]},
                     {"name": "platform", "pools": [{"name": SHARED_POOL, "kind": "shared"}]}],
        "host_groups": [{"name": g.name, "idc": g.idc, "pool": g.pool, "count": len(g.hosts), "hardware": "lab",
                         "source": "vm", "charge": {"type": "owned", "price": 0}, "labels": {"role": "web"},
                         "addresses": [f.addresses[n] for n in g.hosts]} for g in f.groups],
        "layers": [{"name": "busybox-rootfs", "size_mb": max(0.001, round(f.image_mb, 3))}],
        "images": [{"name": image_of(s["name"]), "tag": IMAGE_TAG, "layers": ["busybox-rootfs"]} for s in SERVICES],
        "services": [_service(s, idcs) for s in SERVICES],
        "registries": _registries(idcs),
        "replication": ([{"name": "lab-sync", "source": registry_name(idcs[0]),
                          "destinations": [registry_name(i) for i in idcs[1:]], "trigger": "cron",
                          "schedule": REPLICATION_SCHEDULE}] if len(idcs) > 1 else []),
        "templates": [
            {"sid": 101, "name": "feed-expand", "service": "feed", "strategy": "spread",
             "dependencies": [{"sid": 102, "ratio": 0.5, "elastic_count": 0}]},
            {"sid": 102, "name": "user-expand", "service": "user", "strategy": "spread"},
        ],
    }
    return doc


def _service(s: dict, idcs: list[str]) -> dict:
    # No container at first: the store would say they run while no engine has them. The first
    # ones come by a flow (`cockpit flow start expand feed 4`, or `+` in :services).
    return {"name": s["name"], "kind": "http", "image": f"{image_of(s['name'])}:{IMAGE_TAG}", "pool": WEB_POOL,
            "cpu": 0.1, "memory_gb": 0.125, "disk_gb": 0.1, "ports": [s["port"]],
            "containers": {idc: 0 for idc in idcs},
            "traffic": {"peak_qps": s["peak_qps"], "cores_per_kqps": 0.2},
            "placement": {"max_per_host": 8}}


def _registries(idcs: list[str]) -> list[dict]:
    first = registry_name(idcs[0])
    return [{"name": first, "idc": idcs[0], "role": "master"}] + [
        {"name": registry_name(i), "idc": i, "role": "slave", "replicates_from": first} for i in idcs[1:]]


def config(f: Facts, world_path: Path) -> dict:
    by_host = {name: idc for name, idc in f.names.values()}
    backends: dict = {
        "runtime": {"kind": "docker", "api_version": "1.41", "timeout_s": 5, "hosts": dict(f.docker_urls),
                    "registries": {h: f"{f.registries[idc][1]}:{f.registries[idc][2]}" for h, idc in by_host.items()}},
        "init": {"kind": "ansible", "connection": "ssh", "user": "root", "private_key_file": str(f.private_key),
                 "forks": 4},
        # Cockpit's registry client talks plain http to loopback only: each registry also listens there.
        "registry": {"kind": "oci", "registries": {name: {"url": f"http://127.0.0.1:{port}"}
                                                   for name, _, port in f.registries.values()}},
        "discovery": {"kind": "etcd", "url": f.etcd_url},
    }
    if f.front:
        backends["front"] = dict(f.front)
    return {"world": str(world_path), "db": str(f.dir / "store" / "cockpit.db"), "speed": 1, "backends": backends}


def write(path: Path, doc: dict, header: str) -> Path:
    text = "".join(f"# {line}\n" for line in header.splitlines())
    text += yaml.safe_dump(doc, sort_keys=False, default_flow_style=None, width=110)
    tmp = path.with_name(f".{path.name}.part")
    tmp.write_text(text)
    tmp.replace(path)
    return path


def image_size_mb(tar: Path) -> float:
    return math.ceil(tar.stat().st_size / 1e3) / 1e3
