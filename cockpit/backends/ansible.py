"""Host initialisation with Ansible: the playbook in data/playbooks/ through ansible-runner.

The run happens in a child process (backends/ansible_job.py) whose environment holds only
what Ansible needs: ansible-runner records its whole environment in its artifacts, and the
cockpit's own environment may hold cloud keys. `ansible-playbook` must be on that PATH: the
virtual environment's bin directory comes first.

A local connection makes every host this machine, so it is confined: each host's init_root is
a directory of its own inside root_dir, and nothing that acts on the machine itself (sysctl,
packages, services) runs. Extra vars outrank every host variable in Ansible, so the variables
that would undo this are refused in them, not merely overridden; the playbook guards itself too.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path

from cockpit.backends.base import InitEvent, InitTarget

PLAYBOOK = Path(__file__).resolve().parent.parent.parent / "data" / "playbooks" / "init.yml"
CONNECTIONS = {"ssh": "an ssh connection", "local": "a local connection"}
CONFINED_TASK = "local connection confined"  # also the name of the playbook's guard task

# What a local run's extra vars may not set, and why (besides every `ansible_*` variable).
LOCAL_FORBIDDEN_VARS = {
    "init_root": "each host's root is root_dir/<host>",
    "apply_sysctl": "sysctl is never applied to this machine",
    "manage_docker": "packages and services of this machine are never touched",
}
# Trees of the operating system: no hosts' root directory may be one or lie inside one.
# /var is one (libraries' state, logs, spools) except what lies inside its temporary directory.
SYSTEM_TREES = ("/bin", "/boot", "/dev", "/etc", "/proc", "/run", "/sbin", "/sys", "/usr", "/var")
NOT_SYSTEM = ("/var/tmp",)


_TEMPLATE_MARKS = ("{{", "{%", "{#")


def _templated(value) -> bool:
    """Does a value (or anything inside it) hold Jinja, which Ansible would run on this machine?"""
    if isinstance(value, str):
        return any(m in value for m in _TEMPLATE_MARKS)
    if isinstance(value, dict):
        return any(_templated(k) or _templated(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_templated(v) for v in value)
    return False


def forbidden_extravars(extravars: dict, connection: str) -> dict[str, str]:
    """The extra vars this connection may not take, each with why. Never Ansible's own variables
    (`ansible_host: 127.0.0.1` or an ssh ProxyCommand would reach this machine; the connection
    and how hosts are reached are the config's own settings), never `init_root` (each host's
    root is the engine's to give), and never a template: Ansible expands `{{ lookup('pipe', …) }}`
    in extra vars on the machine that runs it."""
    out = {}
    for key, value in extravars.items():
        name = str(key)
        if name.startswith("ansible_"):
            out[name] = "how hosts are reached is backends.init's own settings (connection, user, private_key_file)"
        elif name == "init_root":
            out[name] = "each host's root is given by the engine" + (" (root_dir/<host>)" if connection == "local" else "")
        elif connection == "local" and name in LOCAL_FORBIDDEN_VARS:
            out[name] = LOCAL_FORBIDDEN_VARS[name]
        elif _templated(value) or _templated(name):
            out[name] = "a template ({{ }}, {% %}) would be run on this machine by Ansible: give plain values"
    return out


def loopback(address: str) -> bool:
    """Is this address this machine? (An ssh run must never initialise the machine running it.)"""
    import ipaddress
    import socket

    host = address.strip("[]")
    if host.lower() in ("localhost", "localhost.localdomain", socket.gethostname().lower()):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _within(path: str, tree: str) -> bool:
    return path == tree or path.startswith(tree.rstrip("/") + "/")


def root_dir_problem(root_dir: str | os.PathLike) -> str | None:
    """Why a directory cannot hold the roots of local-connection hosts, or None.

    The rule, on the path with symbolic links resolved: it is an existing directory at least two
    levels below / (so never /, /tmp, /home or /root themselves), and neither is nor lies inside a
    system tree: /bin /boot /dev /etc /lib* /proc /run /sbin /sys /usr, or /var (but inside
    /var/tmp is fine)."""
    given = str(root_dir)
    if not os.path.isabs(given):
        return f"{given} is not an absolute path"
    real = os.path.realpath(given)
    shown = given if real == given else f"{given} (that is {real})"
    parts = [p for p in real.split("/") if p]
    system = [t for t in SYSTEM_TREES if _within(real, t)] + ["/" + p for p in parts[:1] if p.startswith("lib")]
    if system and not any(real.startswith(t + "/") for t in NOT_SYSTEM):
        return f"{shown} is inside the system directory {system[0]}"
    if len(parts) < 2:
        return f"{shown} is / or a directory right below it: use a directory of its own, such as /srv/cockpit/hosts"
    if not os.path.isdir(real):
        return f"{shown} is not a directory (create it first)"
    return None


def confined_root(host: InitTarget, root_dir: str) -> str:
    """The host's init_root with links resolved, when it is an absolute path strictly inside the
    (resolved) root_dir; ValueError naming the host otherwise."""
    root = host.vars.get("init_root")
    if not isinstance(root, str) or not root.strip("/"):
        raise ValueError(f"host {host.name}: a local-connection run needs an init_root other than /")
    if not os.path.isabs(root):
        raise ValueError(f"host {host.name}: init_root {root} is not an absolute path")
    real, top = os.path.realpath(root), os.path.realpath(root_dir)
    if real == top or not _within(real, top):
        raise ValueError(f"host {host.name}: init_root {root} is not a directory inside root_dir {top}")
    return real


def scrubbed_env(home: str) -> dict[str, str]:
    """What an Ansible run may see of the environment: a PATH with the venv first, and nothing secret."""
    venv_bin = str(Path(sys.executable).parent)
    return {
        "PATH": os.pathsep.join([venv_bin, "/usr/local/bin", "/usr/bin", "/bin", "/usr/sbin", "/sbin"]),
        "HOME": home,
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "ANSIBLE_HOST_KEY_CHECKING": "False",
        "ANSIBLE_RETRY_FILES_ENABLED": "False",
        "ANSIBLE_LOCAL_TEMP": os.path.join(home, ".ansible-tmp"),
    }


class AnsibleInit:
    def __init__(
        self,
        *,
        work_dir: str | Path,
        playbook: str | Path = PLAYBOOK,
        connection: str = "ssh",  # or "local": every host is this machine, with its root in root_dir
        root_dir: str | Path | None = None,
        user: str | None = None,
        private_key_file: str | None = None,
        forks: int = 10,
        extravars: dict | None = None,
    ):
        if connection not in CONNECTIONS:
            raise ValueError(f"connection: {connection!r} is not one of {', '.join(CONNECTIONS)}")
        self.work_dir = Path(work_dir)
        self.playbook = str(Path(playbook).resolve())
        self.connection = connection
        self.root_dir = str(root_dir) if root_dir is not None else None
        self.user = user
        self.private_key_file = private_key_file
        self.forks = forks
        self.extravars = dict(extravars or {})
        self.job_extravars()  # refuse at once what every run would refuse

    def job_extravars(self) -> dict:
        """The extra vars of a run; ValueError when the connection may not take them.

        Checked again at each run: the object may have been changed since it was built."""
        if self.connection == "local":
            self.local_root()
        bad = forbidden_extravars(self.extravars, self.connection)
        if bad:
            key = sorted(bad)[0]
            raise ValueError(f"extravars.{key}: {CONNECTIONS[self.connection]} may not set it ({bad[key]})")
        if self.connection == "local":  # extra vars outrank everything: host-level changes stay off
            return {**self.extravars, "apply_sysctl": False, "manage_docker": False}
        return dict(self.extravars)

    def local_root(self) -> str:
        """root_dir, when it may hold the hosts' roots (see root_dir_problem); ValueError otherwise."""
        if self.root_dir is None:
            raise ValueError("root_dir: a local connection needs a directory for the hosts' roots")
        problem = root_dir_problem(self.root_dir)
        if problem:
            raise ValueError(f"root_dir: {problem}")
        return self.root_dir

    def host_vars(self, h: InitTarget) -> dict:
        """The host's inventory variables; ValueError naming the host when a local one would leave its root."""
        v = dict(h.vars)
        if self.connection == "local":
            bad = sorted(k for k in v if k in ("apply_sysctl", "manage_docker") or str(k).startswith("ansible_"))
            if bad:
                raise ValueError(f"host {h.name}: a local connection may not set {bad[0]}")
            v["init_root"] = confined_root(h, self.local_root())
            v["ansible_python_interpreter"] = sys.executable
        else:
            bad = sorted(k for k in v if str(k).startswith("ansible_") or k == "init_root")
            if bad:
                raise ValueError(f"host {h.name}: its variables may not set {bad[0]}")
            v["ansible_host"] = h.address or h.name
            if loopback(v["ansible_host"]):
                raise ValueError(f"host {h.name}: {v['ansible_host']} is this machine; an ssh run never "
                                 "initialises the machine running Cockpit (a local connection is confined)")
            if self.user:
                v["ansible_user"] = self.user
            if self.private_key_file:
                v["ansible_ssh_private_key_file"] = self.private_key_file
        v["ansible_connection"] = self.connection  # last: no host variable chooses the connection
        return v

    def inventory(self, hosts: list[InitTarget]) -> dict:
        return {"all": {"hosts": {h.name: self.host_vars(h) for h in hosts}}}

    def run(self, hosts: list[InitTarget], emit: Callable[[InitEvent], None], timeout_s: float,
            stop: threading.Event | None = None) -> None:
        extravars = self.job_extravars()
        inventory = {}
        for h in hosts:  # a host that would leave its root fails alone, before Ansible starts
            try:
                inventory[h.name] = self.host_vars(h)
            except ValueError as e:
                emit(InitEvent(h.name, "failed", CONFINED_TASK, str(e)))
        if not inventory:
            return
        self.work_dir.mkdir(parents=True, exist_ok=True)
        run_dir = tempfile.mkdtemp(prefix="run-", dir=self.work_dir)
        job = {
            "private_data_dir": run_dir, "playbook": self.playbook, "inventory": {"all": {"hosts": inventory}},
            "extravars": extravars, "forks": self.forks, "timeout": int(timeout_s),
        }
        self._run_job(job, set(inventory), emit, timeout_s, stop)

    def _run_job(self, job: dict, names: set[str], emit: Callable[[InitEvent], None], timeout_s: float,
                 stop: threading.Event | None = None) -> None:
        run_dir = job["private_data_dir"]
        # ssh's control sockets need a short path (108 bytes at most); the run's own directory, so
        # its lingering ControlPersist masters are found and ended with it
        control = tempfile.mkdtemp(prefix="ckcp-", dir="/tmp")
        proc = subprocess.Popen(
            [sys.executable, "-m", "cockpit.backends.ansible_job"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
            env={**scrubbed_env(run_dir), "ANSIBLE_SSH_CONTROL_PATH_DIR": control}, cwd=run_dir,
            start_new_session=True,  # a hang-up of the cockpit's terminal is not the run's
        )
        timer = threading.Timer(timeout_s + 30, proc.kill)  # ansible-runner's own timeout, with a margin
        timer.start()
        done = threading.Event()

        def watch() -> None:  # told to stop: the whole run goes, Ansible's children with it
            while not done.wait(0.2):
                if stop is not None and stop.is_set():
                    _kill_group(proc)
                    return

        threading.Thread(target=watch, name="ansible-stop", daemon=True).start()
        try:
            proc.stdin.write(json.dumps(job))
            proc.stdin.close()
            for line in proc.stdout:
                try:
                    ev = json.loads(line)
                except ValueError:
                    continue
                if ev.get("host") == "*":
                    for name in names:
                        emit(InitEvent(name, "failed", ev.get("task"), ev.get("message")))
                elif ev.get("host") in names:
                    emit(InitEvent(ev["host"], ev["status"], ev.get("task"), ev.get("message")))
            proc.wait()
        finally:
            done.set()
            timer.cancel()
            if proc.poll() is None:
                _kill_group(proc)
                proc.wait()
            _end_masters(control)


def _end_masters(control: str) -> None:
    """End the ssh ControlPersist masters of a run (they rename themselves `ssh: PATH [mux]` and
    would linger a minute) and remove its control directory."""
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/cmdline", "rb") as f:
                cmd = f.read().decode(errors="replace")
        except OSError:
            continue
        if control in cmd:
            try:
                os.kill(int(entry.name), signal.SIGTERM)
            except ProcessLookupError:
                pass
    shutil.rmtree(control, ignore_errors=True)


def _kill_group(proc: subprocess.Popen) -> None:
    """The run and everything it started (it leads its own session)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        proc.kill()
