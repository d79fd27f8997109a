"""Operating-system users for the tests, without touching this machine's user database.

A private mount namespace (held open by a sleeping process) sees copies of /etc/passwd and
/etc/group that name extra users; everything that must know them (a PostgreSQL server doing peer
authentication, a Cockpit working out who runs it) runs inside it, as that user, by nsenter and
setpriv. The real /etc is never written; stopping the holder ends the namespace."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field

FIRST_UID = 61_000  # above Debian's dynamic ranges: no clash with a real user


@dataclass(frozen=True)
class User:
    name: str
    uid: int
    gid: int
    home: str


@dataclass
class Users:
    root: str
    holder: subprocess.Popen
    users: dict[str, User] = field(default_factory=dict)

    @property
    def within(self) -> list[str]:
        """A command prefix: run in the namespace (still as root)."""
        return ["nsenter", "-t", str(self.holder.pid), "-m", "--"]

    def as_user(self, name: str) -> list[str]:
        """A command prefix: run in the namespace as that user, with their groups."""
        u = self.users[name]
        return [*self.within, "setpriv", f"--reuid={u.uid}", f"--regid={u.gid}", "--init-groups", "--"]

    def env(self, name: str, **extra: str) -> dict:
        u = self.users[name]
        keep = {k: os.environ[k] for k in ("PATH", "LANG", "LC_ALL", "TZ") if k in os.environ}
        return {**keep, "HOME": u.home, "USER": name, "LOGNAME": name, "XDG_DATA_HOME": f"{u.home}/data",
                "XDG_CONFIG_HOME": f"{u.home}/config", "PYTHONDONTWRITEBYTECODE": "1", "PYTHONUNBUFFERED": "1",
                **extra}

    def stop(self) -> None:
        self.holder.kill()
        self.holder.wait(10)
        shutil.rmtree(self.root, ignore_errors=True)


def make(names: list[str]) -> Users:
    """A namespace whose user database also names `names` (each with a group of its own and a
    home under a new temporary directory). Needs root."""
    root = tempfile.mkdtemp(prefix="ckt-users-")
    os.chmod(root, 0o755)
    passwd, group = open("/etc/passwd").read(), open("/etc/group").read()
    users = {}
    for k, name in enumerate(names):
        uid = FIRST_UID + k
        home = f"{root}/home/{name}"
        os.makedirs(home)
        os.chown(home, uid, uid)
        users[name] = User(name, uid, uid, home)
        passwd += f"{name}:x:{uid}:{uid}:cockpit test user:{home}:/usr/sbin/nologin\n"
        group += f"{name}:x:{uid}:\n"
    for fname, text in (("passwd", passwd), ("group", group)):
        with open(f"{root}/{fname}", "w") as f:
            f.write(text)
        os.chmod(f"{root}/{fname}", 0o644)
    script = (f"mount --bind {root}/passwd /etc/passwd && mount --bind {root}/group /etc/group "
              "&& echo ready && exec sleep infinity")
    holder = subprocess.Popen(["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
                              stdout=subprocess.PIPE, text=True)
    if holder.stdout.readline().strip() != "ready":
        holder.kill()
        shutil.rmtree(root, ignore_errors=True)
        raise RuntimeError("could not make a mount namespace for the test users (needs root)")
    return Users(root, holder, users)
