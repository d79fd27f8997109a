"""Private Docker Engines for the tests: dockerd daemons (cockpit.lab.procs.start_dockerd), each
in its own temporary directory and stopped by its PID, and a busybox web image that the engines
pull through a real docker-registry on 127.0.0.1, as hosts pull from their IDC's registry.

The image serves HTTP on $PORT and answers with the container's $NAME. Use the fixtures by
importing them into a test module:
    from tests.dockerd import docker_hosts, lone_dockerd, web_image  # noqa: F401 (fixtures)
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

import docker
import pytest

from cockpit.backends.docker_engine import DockerRuntime
from cockpit.lab import procs
from tests.registries import DockerRegistry

# Serves /tmp/www on $PORT; stops at once on SIGTERM (a bare httpd as PID 1 would ignore it).
WEB_CMD = ["/bin/sh", "-c",
           "mkdir -p /tmp/www && echo $NAME > /tmp/www/index.html || exit 1; "
           "httpd -f -p $PORT -h /tmp/www & pid=$!; trap 'kill $pid; exit 0' TERM; wait $pid"]
# For containers that should bind no port: ends at once on SIGTERM too.
IDLE_CMD = ("/bin/sh", "-c", "trap 'exit 0' TERM; while :; do sleep 1 & wait $!; done")
HOSTS = ("h1", "h2")


@dataclass
class WebImage:
    registry: DockerRegistry
    ref: str  # the world's reference (no registry), e.g. "web:1"

    @property
    def addr(self) -> str:
        return f"127.0.0.1:{self.registry.port}"


@dataclass
class DockerHosts:
    """Two hosts, each its own dockerd, both pulling from one registry."""

    daemons: dict[str, procs.Dockerd]
    image: WebImage

    def engines(self) -> dict[str, str]:
        return {h: d.url for h, d in self.daemons.items()}

    def registries(self) -> dict[str, str]:
        return {h: self.image.addr for h in self.daemons}

    def runtime(self, **kw) -> DockerRuntime:
        return DockerRuntime(self.engines(), self.registries(), **kw)

    def client(self, host: str) -> docker.DockerClient:
        return docker.DockerClient(base_url=self.daemons[host].url, version="1.41", timeout=10)


def start_daemon(d: Path) -> procs.Dockerd:
    try:
        return procs.start_dockerd(d)
    except BaseException:
        procs.release_under(d)
        raise


def stop_daemon(dk: procs.Dockerd, d: Path) -> None:
    """Containers first (their processes would outlive the daemon), then the daemon by its PID
    and its containerd (killed: a test's engine keeps nothing worth a clean shutdown, which takes
    a second), then whatever it left mounted under its directory."""
    if dk.alive():
        try:
            with closing(docker.DockerClient(base_url=dk.url, version="1.41", timeout=10)) as c:
                for row in c.api.containers(all=True):
                    c.api.remove_container(row["Id"], force=True, v=True)
        except (docker.errors.DockerException, OSError):  # requests' errors are OSErrors
            pass  # a daemon that does not answer: stopping it is what is left to do
    dk.kill()  # its containerd and mounts go with it


def build_web_image(work: Path, registry: DockerRegistry, ref: str = "web:1") -> WebImage:
    """`docker import` of the busybox root filesystem (CMD = WEB_CMD) on a daemon of its own,
    pushed to `registry` as <registry>/<ref>; the daemon is stopped afterwards."""
    d = work / "builder"
    dk = start_daemon(d)
    try:
        with closing(docker.DockerClient(base_url=dk.url, version="1.41", timeout=30)) as c:
            tar = procs.busybox_rootfs(work)
            full = f"127.0.0.1:{registry.port}/{ref}"
            repo, tag = full.rsplit(":", 1)
            c.api.import_image_from_data(tar.read_bytes(), repository=repo, tag=tag,
                                         changes=["CMD " + json.dumps(WEB_CMD)])
            for line in c.api.push(repo, tag=tag, stream=True, decode=True):
                if "error" in line:
                    raise RuntimeError(f"push {full}: {line['error']}")
    finally:
        stop_daemon(dk, d)
    return WebImage(registry, ref)


# --- fixtures ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def web_image(tmp_path_factory) -> Iterator[WebImage]:
    """A registry holding the web image, shared by a module's tests (on one xdist worker)."""
    root = daemon_dir(tmp_path_factory, "img")
    with DockerRegistry(root / "registry", name="images") as reg:
        yield build_web_image(root, reg)


def daemon_dir(tmp_path_factory, name: str) -> Path:
    """A fresh directory for one dockerd, with a short path: containerd's sockets under it must
    fit a unix socket's 108 bytes, which a test's own tmp_path (named after the test) may not."""
    return tmp_path_factory.mktemp(name)


@pytest.fixture
def docker_hosts(tmp_path_factory, web_image) -> Iterator[DockerHosts]:
    """Two fresh engines (h1, h2) for one test: nothing on them, the image not pulled yet."""
    dirs = {h: daemon_dir(tmp_path_factory, f"dk-{h}") for h in HOSTS}
    with ThreadPoolExecutor(len(dirs)) as pool:
        futures = {h: pool.submit(start_daemon, d) for h, d in dirs.items()}
    try:
        yield DockerHosts({h: f.result() for h, f in futures.items()}, web_image)
    finally:
        with ThreadPoolExecutor(len(dirs)) as pool:
            stops = [pool.submit(stop_daemon, f.result(), dirs[h]) for h, f in futures.items() if f.exception() is None]
        for f in stops:
            f.result()


@pytest.fixture
def lone_dockerd(tmp_path_factory) -> Iterator[procs.Dockerd]:
    """One engine of its own, for a test that kills it."""
    d = daemon_dir(tmp_path_factory, "dk-lone")
    dk = start_daemon(d)
    try:
        yield dk
    finally:
        stop_daemon(dk, d)
