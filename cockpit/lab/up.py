"""`lab up`: a small real platform on this machine, each piece recorded in the state file as soon
as it exists (lab/state.py), so whatever happens half-way, `down` takes it all away.

Order: the bridge; the registries (one per IDC, on the bridge's address) and etcd, in the
background; each host's namespace and keys; each host's sshd and dockerd, all hosts at once;
the service image, pushed to the first IDC's registry through the first host's dockerd (the
other IDCs' registries get it by Cockpit's replication: the world's `lab-sync` policy); nginx,
the front door; then the world, the config and the known hosts file.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime
from pathlib import Path

from cockpit.lab import documents, hosts, layout, netns, pids, procs, registry
from cockpit.lab.hosts import LabHost
from cockpit.lab.procs import LabError
from cockpit.lab.state import STATE_NAME, Piece, State

# Every program a lab runs, with the Debian package that has it.
PROGRAMS = {"ip": "iproute2", "nsenter": "util-linux", "unshare": "util-linux", "sshd": "openssh-server",
            "ssh-keygen": "openssh-client", "dockerd": "docker.io", "docker-registry": "docker-registry",
            "etcd": "etcd-server", "nginx": "nginx", "busybox": "busybox-static"}
LUA_MODULE = Path("/usr/lib/nginx/modules/ngx_http_lua_module.so")
SERVICES = [s["name"] for s in documents.SERVICES]
WORLD_NAME, CONFIG_NAME = "world.yaml", "cockpit.yaml"
_UNSAFE_PATH = set(",:=\\\"'$;{}") | {" ", "\t", "\n"}  # overlay options and nginx quoting take none


def dir_problem(d: Path) -> str | None:
    """Why `d` cannot hold a lab, or None: an absolute directory of its own outside the system
    trees (the rule for hosts' roots), with no character an overlay option or nginx would trip on.
    A directory that is not there yet is judged by where it would be (it is made only if fine)."""
    from cockpit.backends.ansible import root_dir_problem

    if any(c in _UNSAFE_PATH for c in str(d)):
        return f"{d}: a lab's directory may not hold spaces or any of , : = \\ \" ' $ ; {{ }}"
    most = hosts.SOCKET_PATH_MAX - len(hosts.LONGEST_SOCKET)
    if len(str(d)) > most:
        return (f"{d}: a lab's directory path may be at most {most} characters long "
                f"(containerd's sockets go below it; a socket's path holds {hosts.SOCKET_PATH_MAX})")
    problem = root_dir_problem(d)
    if problem and not os.path.lexists(d) and problem.endswith("(create it first)"):
        return None
    return problem


def preflight(d: Path, n_hosts: int, n_idcs: int) -> None:
    """What must hold before anything is made; LabError (one line) otherwise."""
    try:
        layout.groups(n_hosts, n_idcs)
    except ValueError as e:
        raise LabError(str(e)) from None
    problem = dir_problem(d)
    if problem:
        raise LabError(problem)
    if os.geteuid() != 0:
        raise LabError("the lab needs root: network namespaces, a bridge, mounts and sshd for root")
    for program, package in PROGRAMS.items():
        procs.need(program, package)
    if not LUA_MODULE.exists():
        raise LabError(f"nginx has no Lua module ({LUA_MODULE}): apt-get install libnginx-mod-http-lua")
    try:
        d.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise LabError(f"{d}: cannot make the lab's directory: {e.strerror}") from None
    problem = dir_problem(Path(os.path.realpath(d)))  # again, now that it exists, links resolved
    if problem:
        raise LabError(problem)


def claim_dir(d: Path) -> State:
    """The state file, made exclusively: a second `up` on the same directory is refused."""
    from cockpit.lab import state as state_mod

    path = d / STATE_NAME
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        try:
            old = state_mod.load(d)
        except LabError as e:
            raise LabError(f"{d} holds a file {STATE_NAME} that is not this lab's: {e}") from None
        lab = old.lab if old else {}
        raise LabError(f"{d} holds a lab already (bridge {lab.get('bridge', '?')}, {len(old.pieces) if old else 0} "
                       f"pieces, up since {lab.get('started_at', '?')}): take it down first (cockpit lab down --dir {d})")
    os.close(fd)
    st = State(d)
    st.update(dir=str(d), boot_id=pids.boot_id(), up_pid=os.getpid(),
              started_at=datetime.now().astimezone().isoformat(timespec="seconds"))
    return st


class _Say:
    """One line per piece, from any thread."""

    def __init__(self, say: Callable[[str], None]):
        self._say, self._lock = say, threading.Lock()

    def __call__(self, line: str) -> None:
        with self._lock:
            self._say(line)


def _proc_piece(kind: str, name: str, p: procs.Proc, **kw) -> Piece:
    return Piece(kind, name, pid=p.pid, started=pids.start_time(p.pid), path=str(p.log.parent), **kw)


def _path(st: State, path: Path) -> Path:
    """Record a path before making it: `down` removes what the lab made, and only that (so a
    file of someone else's in the way is refused, never adopted)."""
    if os.path.lexists(path):
        raise LabError(f"{path} is in the way: the lab makes it (move it away or use another --dir)")
    st.add(Piece("path", path.name, path=str(path)))
    return path


def _retry(what: Callable, tries: int = 3):
    """A daemon on a free port: another lab may take the port between the choice and the bind."""
    for i in range(tries):
        try:
            return what()
        except LabError:
            if i == tries - 1:
                raise


def _etcd(st: State, say: _Say) -> str:
    d = _path(st, st.dir / "etcd")
    e = _retry(lambda: procs.start_etcd(d))
    st.add(_proc_piece("etcd", "etcd", e, url=e.url))
    say(f"etcd      {e.url}")
    return e.url


def _registry(st: State, idc: str, gateway: str, say: _Say) -> tuple[str, str, int]:
    name = documents.registry_name(idc)
    d = _path(st, st.dir / "registries" / name)
    port, started = registry.start_registry(d, name, [gateway, "127.0.0.1"])
    for p, addr in zip(started, (gateway, "127.0.0.1")):
        st.add(_proc_piece("registry", name, p, address=addr, port=port, url=f"http://{addr}:{port}"))
    say(f"registry  {name} ({idc}): http://{gateway}:{port} for the hosts, http://127.0.0.1:{port} for Cockpit")
    return name, gateway, port


def _host_daemons(st: State, h: LabHost, insecure: list[str], label: str, say: _Say) -> str:
    sshd = hosts.start_sshd(h, st.dir)
    st.add(_proc_piece("sshd", h.name, sshd, address=h.address, port=hosts.SSH_PORT, host=h.name,
                       inode=pids.mount_ns(sshd.pid)))
    dk = hosts.start_dockerd(h, st.dir, insecure, label)
    st.add(_proc_piece("dockerd", h.name, dk, url=dk.url, host=h.name))
    say(f"host      {h.name} ({h.idc}): {h.address}, netns {h.netns}, sshd :{hosts.SSH_PORT}, dockerd {dk.url}")
    return dk.url


def _nginx(st: State, say: _Say) -> dict:
    from cockpit.backends.nginx_front import front_conf

    prefix = _path(st, st.dir / "nginx")

    def start() -> tuple[procs.Nginx, int, int]:
        port, admin = procs.free_port(), procs.free_port()
        conf = front_conf(prefix, f"127.0.0.1:{port}", admin, SERVICES, "lua")
        n = procs.start_nginx(prefix, conf, port)
        procs.wait_for(lambda: procs.listening("127.0.0.1", admin), 5, f"nginx admin in {prefix}", n)
        return n, port, admin

    n, port, admin = _retry(start)
    front = {"kind": "nginx", "mode": "lua", "admin_url": f"http://127.0.0.1:{admin}",
             "url": f"http://127.0.0.1:{port}", "prefix": str(prefix)}
    st.add(_proc_piece("nginx", "nginx", n, url=front["url"], port=port, address="127.0.0.1"))
    say(f"nginx     {front['url']} (/{'/, /'.join(SERVICES)}/), admin {front['admin_url']}")
    return front


def _wait_all(futures: list[Future]) -> list:
    """Every result; the first error is raised once all have finished (so all were recorded)."""
    errors = [f.exception() for f in futures if f.exception() is not None]
    if errors:
        raise errors[0]
    return [f.result() for f in futures]


def up(d: Path, n_hosts: int = 2, n_idcs: int = 1, say: Callable[[str], None] = print) -> State:
    """Bring a lab up in `d`; LabError (one line) when it cannot, after taking down what it made."""
    t0 = time.monotonic()
    d = Path(os.path.abspath(d))
    preflight(d, n_hosts, n_idcs)
    d = Path(os.path.realpath(d))
    st = claim_dir(d)
    try:
        _build(st, n_hosts, n_idcs, _Say(say))
    except BaseException:
        from cockpit.lab.down import down

        try:
            down(d, say=lambda _line: None)
        except LabError as e:
            say(f"taking the half-made lab down failed too: {e}")
        raise
    say(f"lab up in {time.monotonic() - t0:.1f} s: cockpit --config {d / CONFIG_NAME}")
    return st


def _build(st: State, n_hosts: int, n_idcs: int, say: _Say) -> None:
    d = st.dir
    groups = layout.groups(n_hosts, n_idcs)
    names = layout.host_names(groups)
    idcs = [g.idc for g in groups if g.pool == layout.WEB_POOL]

    def record(c: netns.Claim) -> None:  # as soon as the bridge exists
        st.add(Piece("bridge", c.bridge, address=c.gateway))
        st.update(id=c.id, bridge=c.bridge, subnet=str(c.subnet), gateway=c.gateway)

    c = netns.claim(str(d), record)
    say(f"bridge    {c.bridge}: {c.gateway}/24")
    for sub in ("hosts", "docker", "registries", "ssh"):
        _path(st, d / sub)
    with ThreadPoolExecutor(max_workers=4 + n_hosts) as pool:
        etcd = pool.submit(_etcd, st, say)
        regs = [pool.submit(_registry, st, idc, c.gateway, say) for idc in idcs]
        lab_hosts = [_make_host(st, c, n, *names[n]) for n in sorted(names)]
        registries = dict(zip(idcs, _wait_all(regs)))
        insecure = [f"{addr}:{port}" for _, addr, port in registries.values()]
        urls = _wait_all([pool.submit(_host_daemons, st, h, insecure, f"cockpit-lab={c.id}", say) for h in lab_hosts])
        etcd_url = _wait_all([etcd])[0]
    tar = procs.busybox_rootfs(_path(st, d / "image"))
    first_name, first_addr, first_port = registries[idcs[0]]
    refs = registry.push_image(urls[0], tar, f"{first_addr}:{first_port}",
                               [documents.image_of(s) for s in SERVICES], documents.IMAGE_TAG)
    say(f"image     {', '.join(refs)} in {first_name}" + (" (the other IDCs' registries get them by replication)"
                                                          if len(idcs) > 1 else ""))
    front = _nginx(st, say)
    docker_urls = {h.name: u for h, u in zip(lab_hosts, urls)}
    facts = documents.Facts(d, groups, names, {h.n: h.address for h in lab_hosts}, docker_urls, registries,
                            hosts.client_key(d), documents.image_size_mb(tar), etcd_url, front)
    _write_files(st, facts, lab_hosts, refs, say)


def _write_files(st: State, facts: documents.Facts, lab_hosts: list[LabHost], refs: list[str], say: _Say) -> None:
    """The world, the config and the known hosts file; the lab's facts in the state file."""
    d = st.dir
    known = hosts.known_hosts(d, lab_hosts)
    world = documents.write(_path(st, d / WORLD_NAME), documents.world(facts, datetime.now().astimezone()),
                            f"The world of the Cockpit lab in {d} (cockpit lab up): its hosts' addresses are real.")
    _path(st, d / "store").mkdir()
    config = documents.write(_path(st, d / CONFIG_NAME), documents.config(facts, world),
                             f"Cockpit on the lab in {d}: cockpit --config {d / CONFIG_NAME}")
    st.update(hosts=[{"name": h.name, "idc": h.idc, "address": h.address, "netns": h.netns,
                      "docker_url": facts.docker_urls[h.name]} for h in lab_hosts],
              registries={idc: {"name": n, "address": a, "port": p} for idc, (n, a, p) in facts.registries.items()},
              etcd_url=facts.etcd_url, front=facts.front, world=str(world), config=str(config),
              known_hosts=str(known), private_key=str(facts.private_key), images=refs)
    say(f"files     world {world}, config {config}, ssh key {facts.private_key}, known hosts {known}")


def _make_host(st: State, c: netns.Claim, n: int, name: str, idc: str) -> LabHost:
    """Host n's namespace, veth and directory with its keys (recorded before each is made)."""
    h = LabHost(name, idc, n, c.host_netns(n), c.host_address(n))
    ns_piece = st.add(Piece("netns", h.netns, host=name, address=h.address))
    st.add(Piece("veth", c.host_veth(n), host=name))
    netns.add_host(c, n)
    ns_piece.inode = netns.netns_inode(h.netns)
    st.save()
    _path(st, h.dir(st.dir))
    hosts.prepare(h, st.dir)
    return h
