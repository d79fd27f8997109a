"""A lab host: a network namespace with an sshd confined to its own view of the filesystem
(lab/confine.py) and a dockerd of its own.

Keys: the lab has one client key (`ssh/id_ed25519`, root's authorized key on every host) and
each host its own host key; `ssh/known_hosts` lists every host's, so `ssh -i` with the lab's
key and `UserKnownHostsFile` set to it needs no `StrictHostKeyChecking=no`.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from cockpit.lab import procs
from cockpit.lab.procs import LabError, Proc, need

SSH_PORT = 22  # each host's own network namespace has its own ports
# The longest socket path below a lab's directory (containerd's, of host 16), and the most a
# unix socket's path may hold for containerd.
LONGEST_SOCKET = "/docker/h16/exec/containerd/containerd-debug.sock"
SOCKET_PATH_MAX = 104


@dataclass(frozen=True)
class LabHost:
    name: str  # the world's host name, also its hostname
    idc: str
    n: int  # 1-based, in the lab
    netns: str
    address: str

    def dir(self, lab_dir: Path) -> Path:
        return lab_dir / "hosts" / self.name

    def docker_dir(self, lab_dir: Path) -> Path:
        """Short: containerd's sockets go below it, and a socket's path holds at most 104 bytes."""
        return lab_dir / "docker" / f"h{self.n}"


def keygen(path: Path, comment: str) -> Path:
    """An ed25519 key pair without a passphrase at `path` (and `path`.pub), made once."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        r = subprocess.run([need("ssh-keygen", "openssh-client"), "-q", "-t", "ed25519", "-N", "", "-C", comment,
                            "-f", str(path)], capture_output=True, text=True, timeout=30)
        if r.returncode != 0:
            raise LabError(f"ssh-keygen {path}: {r.stderr.strip() or 'failed'}")
    return path


def client_key(lab_dir: Path) -> Path:
    return keygen(lab_dir / "ssh" / "id_ed25519", "cockpit-lab")


def sshd_config(h: LabHost, hdir: Path, authorized_keys: Path) -> str:
    # StrictModes would refuse keys below a world-writable /tmp; the files are ours, mode 0600.
    return "\n".join([
        f"ListenAddress {h.address}:{SSH_PORT}",
        f"HostKey {hdir / 'ssh_host_ed25519_key'}",
        f"AuthorizedKeysFile {authorized_keys}",
        "PidFile none",
        "PermitRootLogin prohibit-password",
        "AllowUsers root",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "UsePAM no",
        "StrictModes no",
        "UseDNS no",
        "X11Forwarding no",
        "PrintMotd no",
        "PrintLastLog no",
        "Subsystem sftp internal-sftp",
        "LogLevel INFO",
        "",
    ])


def prepare(h: LabHost, lab_dir: Path) -> Path:
    """The host's directory with its host key, sshd config and authorized key; returns it."""
    hdir = h.dir(lab_dir)
    hdir.mkdir(parents=True, exist_ok=True)
    h.docker_dir(lab_dir).mkdir(parents=True, exist_ok=True)
    keygen(hdir / "ssh_host_ed25519_key", h.name)
    authorized = hdir / "authorized_keys"
    authorized.write_text((client_key(lab_dir).with_suffix(".pub")).read_text())
    authorized.chmod(0o600)
    (hdir / "sshd_config").write_text(sshd_config(h, hdir, authorized))
    return hdir


def known_hosts(lab_dir: Path, hosts: list[LabHost]) -> Path:
    path = lab_dir / "ssh" / "known_hosts"
    lines = []
    for h in hosts:
        kind, key = (h.dir(lab_dir) / "ssh_host_ed25519_key.pub").read_text().split()[:2]
        lines.append(f"{h.address} {kind} {key}\n")
    path.write_text("".join(lines))
    return path


def start_sshd(h: LabHost, lab_dir: Path, timeout_s: float = 10.0) -> Proc:
    """sshd -D in the host's network namespace and a mount and UTS namespace of its own; ready
    when its port answers from here. Its PID is sshd's (nsenter, unshare and the confining
    Python each exec the next)."""
    hdir = h.dir(lab_dir)
    sshd = need("sshd", "openssh-server")
    docker_dir = h.docker_dir(lab_dir)
    spec = {"host_dir": str(hdir), "hostname": h.name, "keep": [str(docker_dir)],
            "links": {"/run/docker.sock": str(docker_dir / "docker.sock")},  # `docker` on the host: its own
            "argv": [sshd, "-D", "-e", "-f", str(hdir / "sshd_config")]}
    argv = [need("unshare", "util-linux"), "--mount", "--uts", "--propagation", "private",
            sys.executable, "-m", "cockpit.lab.confine", json.dumps(spec)]
    p = procs.spawn("sshd", argv, hdir, netns=h.netns, env=procs._plain_env())
    procs.wait_for(lambda: procs.listening(h.address, SSH_PORT), timeout_s, f"sshd of lab host {h.name}", p)
    return p


def start_dockerd(h: LabHost, lab_dir: Path, insecure: list[str], label: str) -> procs.Dockerd:
    return procs.start_dockerd(h.docker_dir(lab_dir), netns=h.netns, label=label, insecure_registries=insecure)
