"""Real services as child processes, each in its own directory and stopped by its PID: what the
local lab starts, and what the integration tests start. Nothing here touches a system service,
the machine's own Docker or nginx configuration: every daemon gets its own roots, sockets, pid
file and log under the directory it is given.

A process that should live in a lab host's network namespace is started through
`nsenter --net=/run/netns/<ns>` (not `ip netns exec`, which remounts /sys and hides the cgroup
hierarchy dockerd needs).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tarfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path


class LabError(RuntimeError):
    """A service would not start or answer; the message names it and ends with its log's tail."""


def need(program: str, package: str) -> str:
    """The path of `program`, or LabError naming the Debian package that has it."""
    path = shutil.which(program) or next(
        (p for d in ("/usr/sbin", "/sbin") if os.access(p := os.path.join(d, program), os.X_OK)), None)
    if path is None:
        raise LabError(f"{program} is not installed (apt-get install {package})")
    return path


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def listening(host: str, port: int, timeout_s: float = 0.2) -> bool:
    try:
        socket.create_connection((host, port), timeout=timeout_s).close()
        return True
    except OSError:
        return False


@dataclass
class Proc:
    """A started daemon: its PID (the leader of its own session) and its log."""

    name: str
    pid: int
    log: Path

    def alive(self) -> bool:
        try:
            pid, _ = os.waitpid(self.pid, os.WNOHANG)
            if pid == self.pid:
                return False
        except ChildProcessError:  # not our child (a lab started by another process)
            pass
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        return _state(self.pid) != "Z"

    def tail(self, lines: int = 5) -> str:
        try:
            text = self.log.read_text(errors="replace").strip().splitlines()
        except OSError:
            return "(no log)"
        return " | ".join(text[-lines:]) or "(empty log)"

    def stop(self, timeout_s: float = 10.0) -> None:
        """SIGTERM to its process group, SIGKILL after `timeout_s`; returns once it is gone."""
        stop_pid(self.pid, timeout_s)

    def kill(self) -> None:
        """SIGKILL, as a crash would."""
        _signal_group(self.pid, signal.SIGKILL)
        _reap(self.pid, 5.0)


def _state(pid: int) -> str | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return None


def _signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


def _reap(pid: int, timeout_s: float) -> bool:
    """Wait for `pid` to be gone (reaping it when it is our child); True when it is."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            done, _ = os.waitpid(pid, os.WNOHANG)
            if done == pid:
                return True
        except ChildProcessError:
            if _state(pid) in (None, "Z"):
                return True
        time.sleep(0.02)
    return False


def stop_pid(pid: int, timeout_s: float = 10.0) -> None:
    _signal_group(pid, signal.SIGTERM)
    if not _reap(pid, timeout_s):
        _signal_group(pid, signal.SIGKILL)
        _reap(pid, 5.0)


def spawn(name: str, argv: list[str], workdir: Path, *, netns: str | None = None,
          env: dict[str, str] | None = None) -> Proc:
    """Start `argv` in its own session, output to workdir/<name>.log, in `netns` when given."""
    workdir.mkdir(parents=True, exist_ok=True)
    if netns:
        argv = [need("nsenter", "util-linux"), f"--net=/run/netns/{netns}", *argv]
    log = workdir / f"{name}.log"
    with open(log, "ab") as out:
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                             cwd=workdir, env=env, start_new_session=True)
    return Proc(name, p.pid, log)


def wait_for(check: Callable[[], bool], timeout_s: float, what: str, proc: Proc | None = None) -> None:
    """Poll `check` until it holds; LabError naming `what` (and the log's tail) when it does not."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc is not None and not proc.alive():
            raise LabError(f"{what}: {proc.name} exited: {proc.tail()}")
        try:
            if check():
                return
        except Exception:  # noqa: BLE001 - not up yet, whatever the client says
            pass
        time.sleep(0.05)
    if proc is not None:
        proc.stop(2.0)
    raise LabError(f"{what}: not ready within {timeout_s:g} s" + (f": {proc.tail()}" if proc else ""))


# --- dockerd ---------------------------------------------------------------------------------------


@dataclass
class Dockerd(Proc):
    sock: Path = Path()

    @property
    def url(self) -> str:
        return f"unix://{self.sock}"

    def stop(self, timeout_s: float = 10.0) -> None:
        super().stop(timeout_s)
        release_under(self.sock.parent)

    def kill(self) -> None:
        super().kill()
        release_under(self.sock.parent)


def release_under(d: Path) -> None:
    """What a stopped or killed dockerd leaves inside its directory `d`: its containerd (a process
    group of its own) and shims, killed by PID; its data root and netns file, unmounted (deepest
    first). Nothing outside `d` is touched."""
    root = str(Path(d).resolve()).rstrip("/") + "/"
    for pid in _pids_naming(root):
        stop_pid(pid, 5.0)
    from cockpit.lab.down import lab_mounts
    from cockpit.lab.confine import ConfineError, umount

    for point in lab_mounts(Path(root.rstrip("/"))):
        try:
            umount(point)
        except ConfineError:
            continue


def _pids_naming(root: str) -> list[int]:
    """Processes whose command line names a path inside `root`."""
    out = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if any(a.decode(errors="replace").startswith(root) for a in argv):
            out.append(int(proc.name))
    return out


def start_dockerd(d: Path, *, netns: str | None = None, label: str | None = None,
                  timeout_s: float = 30.0, insecure_registries: list[str] | None = None) -> Dockerd:
    """A private dockerd: its own data and exec roots, pid file and socket under `d`; no bridge,
    no iptables (bridged containers here could send traffic to nowhere); vfs storage.
    `insecure_registries` (HOST:PORT) are pulled from over plain http (the lab's registries)."""
    d.mkdir(parents=True, exist_ok=True)
    sock = d / "docker.sock"
    argv = [need("dockerd", "docker.io"), "--iptables=false", "--ip6tables=false", "--bridge=none",
            "--storage-driver=vfs", "--data-root", str(d / "data"), "--exec-root", str(d / "exec"),
            "--pidfile", str(d / "dockerd.pid"), "-H", f"unix://{sock}"]
    if label:
        argv += ["--label", label]
    for registry in insecure_registries or ():
        argv += ["--insecure-registry", registry]
    p = spawn("dockerd", argv, d, netns=netns, env=_plain_env())
    dk = Dockerd(p.name, p.pid, p.log, sock)
    wait_for(lambda: _docker_ping(sock), timeout_s, f"dockerd in {d}", dk)
    return dk


def _docker_ping(sock: Path) -> bool:
    if not sock.exists():
        return False
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(1.0)
        s.connect(str(sock))
        s.sendall(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
        return b" 200 " in s.recv(256)


BUSYBOX_APPLETS = ("sh", "ls", "cat", "echo", "sleep", "httpd", "wget", "true", "false", "test", "kill",
                   "ps", "env", "mkdir", "printf", "nc", "grep")


def busybox_rootfs(d: Path) -> Path:
    """A root filesystem tarball holding /bin/busybox (Debian's busybox-static) and its applet
    links: what `docker import` turns into the lab's and the tests' image."""
    tar_path = d / "busybox-rootfs.tar"
    if tar_path.exists():
        return tar_path
    busybox = need("busybox", "busybox-static")
    d.mkdir(parents=True, exist_ok=True)
    tmp = tar_path.with_suffix(".part")
    with tarfile.open(tmp, "w") as tar:
        tar.add(busybox, arcname="bin/busybox")
        for applet in BUSYBOX_APPLETS:
            info = tarfile.TarInfo(f"bin/{applet}")
            info.type, info.linkname = tarfile.SYMTYPE, "busybox"
            tar.addfile(info)
        for empty in ("tmp", "www", "proc", "sys", "etc"):
            info = tarfile.TarInfo(empty)
            info.type, info.mode = tarfile.DIRTYPE, 0o1777 if empty == "tmp" else 0o755
            tar.addfile(info)
    os.replace(tmp, tar_path)
    return tar_path


# --- etcd ------------------------------------------------------------------------------------------


@dataclass
class Etcd(Proc):
    url: str = ""


def start_etcd(d: Path, *, client_port: int | None = None, peer_port: int | None = None,
               timeout_s: float = 20.0) -> Etcd:
    """A one-member etcd on 127.0.0.1 with its data under `d`; ready when /health says so."""
    import httpx

    cp, pp = client_port or free_port(), peer_port or free_port()
    url, peer = f"http://127.0.0.1:{cp}", f"http://127.0.0.1:{pp}"
    argv = [need("etcd", "etcd-server"), "--name", "n1", "--data-dir", str(d / "data"),
            "--listen-client-urls", url, "--advertise-client-urls", url, "--listen-peer-urls", peer,
            "--initial-advertise-peer-urls", peer, "--initial-cluster", f"n1={peer}"]
    # Debian's etcd 3.4 refuses to run on an architecture it does not list without this.
    env = {**_plain_env(), "ETCD_UNSUPPORTED_ARCH": os.uname().machine}
    p = spawn("etcd", argv, d, env=env)
    e = Etcd(p.name, p.pid, p.log, url)
    wait_for(lambda: httpx.get(f"{url}/health", timeout=1.0).json().get("health") == "true",
             timeout_s, f"etcd in {d}", e)
    return e


def _plain_env() -> dict[str, str]:
    """A daemon's environment: a PATH and a HOME, none of the caller's secrets."""
    return {"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"), "HOME": "/nonexistent", "LANG": "C.UTF-8"}


# --- nginx -----------------------------------------------------------------------------------------


@dataclass
class Nginx(Proc):
    prefix: Path = Path()
    conf: Path = Path()

    def _argv(self) -> list[str]:
        return [need("nginx", "nginx"), "-p", str(self.prefix), "-c", str(self.conf),
                "-e", str(self.prefix / "error.log")]

    def reload(self) -> None:
        """`nginx -s reload`; raises LabError (the old config keeps serving) when the new one is bad."""
        r = subprocess.run([*self._argv(), "-s", "reload"], capture_output=True, text=True, timeout=15)
        if r.returncode != 0:
            raise LabError(f"nginx reload in {self.prefix}: {(r.stderr or r.stdout).strip().splitlines()[-1:]}")

    def test_config(self) -> str | None:
        """None when `nginx -t` accepts the config, else its complaint."""
        r = subprocess.run([*self._argv(), "-t"], capture_output=True, text=True, timeout=15)
        return None if r.returncode == 0 else (r.stderr.strip().splitlines() or ["?"])[-1]


def start_nginx(prefix: Path, conf_text: str, port: int, *, host: str = "127.0.0.1",
                timeout_s: float = 10.0) -> Nginx:
    """nginx in the foreground (`daemon off`) with its prefix, config, pid and logs under `prefix`;
    `conf_text` is the whole nginx.conf (it should set `pid` inside the prefix); ready when
    `host:port` listens."""
    prefix.mkdir(parents=True, exist_ok=True)
    (prefix / "logs").mkdir(exist_ok=True)
    conf = prefix / "nginx.conf"
    conf.write_text(conf_text)
    n = Nginx("nginx", 0, prefix / "nginx.log", prefix, conf)
    p = spawn("nginx", [*n._argv(), "-g", "daemon off;"], prefix, env=_plain_env())
    n.pid = p.pid
    wait_for(lambda: listening(host, port), timeout_s, f"nginx in {prefix}", n)
    return n
