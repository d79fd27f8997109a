"""A private PostgreSQL cluster for the tests: its own data and socket directories, no TCP, the
system's own cluster left alone. Started once per test process; each test gets a new database."""

from __future__ import annotations

import glob
import itertools
import os
import time
import pwd
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass


def _bin(name: str) -> str | None:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return found[-1] if found else None


def _as_postgres(*cmd: str, within: list[str] | None = None) -> subprocess.CompletedProcess:
    """As the postgres user when we are root (the server refuses to run as root), else as ourselves."""
    prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    return subprocess.run([*(within or []), *prefix, *cmd], capture_output=True, text=True, timeout=60)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Cluster:
    root: str
    sockdir: str
    port: int
    _n = itertools.count(1)

    def url(self, db: str) -> str:
        return f"postgresql://postgres@/{db}?host={self.sockdir}&port={self.port}"

    def sql(self, statement: str, db: str = "postgres") -> None:
        r = _as_postgres(_bin("psql") or "psql", "-h", self.sockdir, "-p", str(self.port), "-d", db, "-v",
                         "ON_ERROR_STOP=1", "-qc", statement)
        if r.returncode != 0:
            raise RuntimeError(f"psql: {r.stderr.strip()}")

    def new_db(self, template: str | None = None) -> str:
        name = f"t{os.getpid()}_{next(self._n)}"
        for attempt in range(50):
            try:
                self.sql(f"CREATE DATABASE {name}" + (f" TEMPLATE {template}" if template else ""))
                return name
            except RuntimeError as e:
                # A client that just closed its connection to the template leaves a backend that
                # exits a moment later; until then PostgreSQL refuses to copy the template.
                if "being accessed by other users" not in str(e) or attempt == 49:
                    raise
                time.sleep(0.1)
        return name

    def stop(self) -> None:
        _as_postgres(_bin("pg_ctl"), "-D", f"{self.root}/data", "-m", "immediate", "stop")
        shutil.rmtree(self.root, ignore_errors=True)

    def down(self) -> None:
        """The server stopped (until `up`): clients meet a refused connection."""
        r = _as_postgres(_bin("pg_ctl"), "-D", f"{self.root}/data", "-m", "fast", "-w", "stop")
        if r.returncode != 0:
            raise RuntimeError(f"pg_ctl stop: {r.stderr.strip()}")

    def up(self) -> None:
        r = _as_postgres(_bin("pg_ctl"), "-D", f"{self.root}/data", "-l", f"{self.root}/log", "-w", "-o",
                         _options(self.root, self.port), "start")
        if r.returncode != 0:
            raise RuntimeError(f"pg_ctl start: {r.stderr.strip()}")

    def restart(self) -> None:
        """What a database administrator's restart does to clients: every connection dropped."""
        r = _as_postgres(_bin("pg_ctl"), "-D", f"{self.root}/data", "-m", "fast", "-w", "-l", f"{self.root}/log",
                         "restart")
        if r.returncode != 0:
            raise RuntimeError(f"pg_ctl restart: {r.stderr.strip()}")


def start(*, within: list[str] | None = None, peer: bool = False) -> Cluster:
    """initdb and start a cluster in a new temporary directory; RuntimeError says what failed.

    `within`: a command prefix the server is started under (nsenter into a mount namespace whose
    user database names the tests' users). `peer`: local connections authenticate by the
    client's OS user (peer authentication), root connecting as postgres, everyone else only as
    the database role of their own name; the socket directory is open to every user."""
    initdb, pg_ctl = _bin("initdb"), _bin("pg_ctl")
    if not initdb or not pg_ctl:
        raise RuntimeError("PostgreSQL is not installed (apt-get install postgresql)")
    owner = None
    if os.geteuid() == 0:
        try:
            owner = pwd.getpwnam("postgres")
        except KeyError:
            raise RuntimeError("no postgres user (apt-get install postgresql)") from None
    # Not under pytest's tmp_path: that is private to root, and as root the server runs as postgres.
    root = tempfile.mkdtemp(prefix="cockpit-pg-")
    os.chmod(root, 0o755)
    log = f"{root}/log"
    open(log, "w").close()
    for path in (f"{root}/data", f"{root}/sock"):
        os.mkdir(path, 0o700)
    if owner is not None:
        for path in (f"{root}/data", f"{root}/sock", log):
            os.chown(path, owner.pw_uid, owner.pw_gid)
    r = _as_postgres(initdb, "-D", f"{root}/data", "--auth-local=trust", "--auth-host=reject", "-U", "postgres",
                     "--no-sync")
    if r.returncode != 0:
        shutil.rmtree(root, ignore_errors=True)
        raise RuntimeError(f"initdb: {r.stderr.strip()}")
    if peer:
        _peer_auth(root)
    port = _free_port()
    opts = _options(root, port)
    r = _as_postgres(pg_ctl, "-D", f"{root}/data", "-l", log, "-w", "-o", opts, "start", within=within)
    if r.returncode != 0:
        text = open(log).read()[-500:]
        shutil.rmtree(root, ignore_errors=True)
        raise RuntimeError(f"pg_ctl start: {r.stderr.strip()} {text}")
    return Cluster(root, f"{root}/sock", port)


def _options(root: str, port: int) -> str:
    return (f"-k {root}/sock -p {port} -c listen_addresses='' -c fsync=off -c full_page_writes=off "
            "-c synchronous_commit=off -c max_connections=200")


def _peer_auth(root: str) -> None:
    os.chmod(f"{root}/sock", 0o755)
    with open(f"{root}/data/pg_hba.conf", "w") as f:
        f.write("local all all peer map=cockpit\n")
    with open(f"{root}/data/pg_ident.conf", "w") as f:
        f.write("cockpit root postgres\ncockpit postgres postgres\ncockpit /^(.*)$ \\1\n")
