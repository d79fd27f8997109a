"""Host initialisation with Ansible: the playbook in data/playbooks/ through ansible-runner.

The run happens in a child process (backends/ansible_job.py) whose environment holds only
what Ansible needs: ansible-runner records its whole environment in its artifacts, and the
cockpit's own environment may hold cloud keys. `ansible-playbook` must be on that PATH: the
virtual environment's bin directory comes first.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path

from cockpit.backends.base import InitEvent, InitTarget

PLAYBOOK = Path(__file__).resolve().parent.parent.parent / "data" / "playbooks" / "init.yml"


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
        connection: str = "ssh",  # or "local": every host is this machine (tests)
        user: str | None = None,
        private_key_file: str | None = None,
        forks: int = 10,
        extravars: dict | None = None,
    ):
        self.work_dir = Path(work_dir)
        self.playbook = str(Path(playbook).resolve())
        self.connection = connection
        self.user = user
        self.private_key_file = private_key_file
        self.forks = forks
        self.extravars = dict(extravars or {})

    def inventory(self, hosts: list[InitTarget]) -> dict:
        out = {}
        for h in hosts:
            v = {"ansible_connection": self.connection, **h.vars}
            if self.connection == "local":
                # Every "host" is this machine: each must have a directory of its own, never "/".
                root = str(v.get("init_root", "/")).rstrip("/")
                if not root:
                    raise ValueError(f"host {h.name}: a local-connection run needs an init_root other than /")
                v["ansible_python_interpreter"] = sys.executable
            else:
                v["ansible_host"] = h.address or h.name
                if self.user:
                    v["ansible_user"] = self.user
                if self.private_key_file:
                    v["ansible_ssh_private_key_file"] = self.private_key_file
            out[h.name] = v
        return {"all": {"hosts": out}}

    def run(self, hosts: list[InitTarget], emit: Callable[[InitEvent], None], timeout_s: float) -> None:
        self.work_dir.mkdir(parents=True, exist_ok=True)
        run_dir = tempfile.mkdtemp(prefix="run-", dir=self.work_dir)
        job = {
            "private_data_dir": run_dir, "playbook": self.playbook, "inventory": self.inventory(hosts),
            "extravars": self.extravars, "forks": self.forks, "timeout": int(timeout_s),
        }
        proc = subprocess.Popen(
            [sys.executable, "-m", "cockpit.backends.ansible_job"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
            env=scrubbed_env(run_dir), cwd=run_dir,
            start_new_session=True,  # a hang-up of the cockpit's terminal is not the run's
        )
        timer = threading.Timer(timeout_s + 30, proc.kill)  # ansible-runner's own timeout, with a margin
        timer.start()
        try:
            proc.stdin.write(json.dumps(job))
            proc.stdin.close()
            names = {h.name for h in hosts}
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
            timer.cancel()
            if proc.poll() is None:
                proc.kill()
                proc.wait()
