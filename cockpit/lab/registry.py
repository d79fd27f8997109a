"""An IDC's registry in the lab, and the lab's service image.

Each registry is one storage directory served by two docker-registry processes on the same
port: on the bridge's address, where the hosts' dockerd daemons pull from it (plain http, named
with --insecure-registry), and on 127.0.0.1, where Cockpit's registry client reaches it (it
speaks plain http to loopback only). docker-registry listens on one address; two instances on
one storage is how it scales out, with the same `http.secret` so an upload begun on one may end
on the other, and no blob descriptor cache, which would not see the other's deletions.

The image: `docker import` of a busybox root filesystem with a CMD that serves HTTP on $PORT
and answers with $NAME, pushed through a lab host's dockerd.
"""

from __future__ import annotations

import json
import secrets
import socket
from pathlib import Path

import yaml

from cockpit.lab import procs
from cockpit.lab.procs import LabError, Proc, need

IMAGE_CMD = ["/bin/sh", "-c",
             "mkdir -p /tmp/www && echo $NAME > /tmp/www/index.html && exec httpd -f -p $PORT -h /tmp/www"]
IMAGE_ENV = {"PORT": "8080", "NAME": "lab"}
PORT_TRIES = 5


def registry_config(storage: Path, addr: str, port: int, secret: str) -> dict:
    return {
        "version": 0.1,
        "log": {"level": "warn", "accesslog": {"disabled": True}},
        "storage": {"filesystem": {"rootdirectory": str(storage)}, "delete": {"enabled": True},
                    "maintenance": {"uploadpurging": {"enabled": False}}},
        "http": {"addr": f"{addr}:{port}", "secret": secret},
    }


def _bindable(addr: str, port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind((addr, port))
            return True
        except OSError:
            return False


def start_registry(d: Path, name: str, addresses: list[str], timeout_s: float = 10.0) -> tuple[int, list[Proc]]:
    """The registry `name`: one storage under `d`, a docker-registry on each address, all on one
    port free on every address; (port, processes)."""
    program = need("docker-registry", "docker-registry")
    d.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_hex(16)  # signs upload state between its instances; not a credential
    last = ""
    for _ in range(PORT_TRIES):
        port = procs.free_port(addresses[0])
        if not all(_bindable(a, port) for a in addresses[1:]):
            continue
        started: list[Proc] = []
        try:
            for addr in addresses:
                cfg = d / f"config-{addr}.yml"
                cfg.write_text(yaml.safe_dump(registry_config(d / "storage", addr, port, secret)))
                p = procs.spawn(f"registry-{addr}", [program, "serve", str(cfg)], d, env=procs._plain_env())
                started.append(p)
                procs.wait_for(lambda a=addr: procs.listening(a, port), timeout_s, f"registry {name} on {addr}:{port}", p)
            return port, started
        except LabError as e:  # another process took the port between the check and the start
            last = str(e)
            for p in started:
                p.stop(2.0)
    raise LabError(f"registry {name}: no port would serve on {', '.join(addresses)}: {last}")


def push_image(docker_url: str, rootfs_tar: Path, registry: str, repositories: list[str], tag: str) -> list[str]:
    """Import the rootfs once as `registry/<first repository>:tag` in the dockerd at `docker_url`,
    tag it under the other repositories too, and push them all (they share the one layer);
    returns the references as the registry names them (`lab/feed:1`)."""
    import docker

    refs = [f"{registry}/{r}" for r in repositories]
    changes = [f"ENV {k}={v}" for k, v in IMAGE_ENV.items()]
    changes.append("CMD " + json.dumps(IMAGE_CMD))
    client = docker.DockerClient(base_url=docker_url, version="1.41", timeout=60)
    try:
        client.api.import_image(src=str(rootfs_tar), repository=refs[0], tag=tag, changes=changes)
        for ref in refs[1:]:
            client.api.tag(f"{refs[0]}:{tag}", ref, tag=tag)
        for ref in refs:
            for line in client.api.push(ref, tag=tag, stream=True, decode=True):
                if "error" in line:
                    raise LabError(f"push {ref}:{tag}: {line.get('error')}")
    except docker.errors.DockerException as e:
        raise LabError(f"image {refs[0]}:{tag}: {e}") from None
    finally:
        client.close()
    return [f"{r}:{tag}" for r in repositories]
