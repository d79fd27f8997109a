"""`lab status`: each piece of the lab and whether it answers, asked the way its users ask it:
the bridge and namespaces exist, sshd's port takes a connection, dockerd answers /_ping, a
registry /v2/, etcd /health, nginx any HTTP answer on its port and its admin port."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

from cockpit.lab import netns, pids, procs
from cockpit.lab.state import Piece, State

TIMEOUT_S = 1.0


@dataclass(frozen=True)
class Row:
    kind: str
    name: str
    where: str  # an address, URL or socket
    pid: int | None
    answers: bool
    detail: str  # why not, or what it said


def _http(url: str, want: int | None = None) -> tuple[bool, str]:
    import httpx

    try:
        r = httpx.get(url, timeout=TIMEOUT_S)
    except httpx.HTTPError as e:
        return False, f"{e.__class__.__name__}: {e}"[:120]
    ok = want is None or r.status_code == want
    return ok, f"HTTP {r.status_code}"


def _docker_ping(url: str) -> tuple[bool, str]:
    path = url.removeprefix("unix://")
    try:
        ok = procs._docker_ping(Path(path))
    except OSError as e:
        return False, e.strerror or str(e)
    return ok, "_ping OK" if ok else "no _ping answer"


def check(p: Piece, same_boot: bool) -> Row:
    alive = same_boot and pids.same(p.pid, p.started) if p.pid else None
    where = p.url or (f"{p.address}:{p.port}" if p.port else p.address) or p.path or ""
    if p.kind == "bridge":
        ok = netns.link_exists(p.name)
        return Row(p.kind, p.name, f"{p.address}/24", None, ok, "up" if ok else "missing")
    if p.kind == "netns":
        ok = netns.netns_exists(p.name) and netns.netns_inode(p.name) == p.inode
        return Row(p.kind, p.name, p.address or "", None, ok, f"host {p.host}" if ok else "missing")
    if p.kind == "veth":
        ok = netns.link_exists(p.name)
        return Row(p.kind, p.name, "", None, ok, f"host {p.host}" if ok else "missing")
    if alive is False:
        return Row(p.kind, p.name, where, p.pid, False, "process gone")
    if p.kind == "sshd":
        ok = procs.listening(p.address or "", p.port or 22, TIMEOUT_S)
        detail = "port open" if ok else "port closed"
    elif p.kind == "dockerd":
        ok, detail = _docker_ping(p.url or "")
    elif p.kind == "registry":
        ok, detail = _http(f"{p.url}/v2/", 200)
    elif p.kind == "etcd":
        ok, detail = _http(f"{p.url}/health", 200)
    elif p.kind == "nginx":
        ok, detail = _http(f"{p.url}/")
    else:
        return Row(p.kind, p.name, where, p.pid, True, "")
    return Row(p.kind, p.name, where, p.pid, ok, detail)


def status(st: State) -> list[Row]:
    same_boot = st.lab.get("boot_id") == pids.boot_id()
    pieces = [p for p in st.pieces if p.kind != "path"]
    with ThreadPoolExecutor(max_workers=8) as pool:
        rows = list(pool.map(lambda p: check(p, same_boot), pieces))
    admin = (st.lab.get("front") or {}).get("admin_url")
    nginx = next((r for r in rows if r.kind == "nginx"), None)
    if admin and nginx is not None and nginx.answers:  # the admin port is what Cockpit talks to
        ok, detail = _http(f"{admin}/")
        rows[rows.index(nginx)] = Row(nginx.kind, nginx.name, nginx.where, nginx.pid, ok,
                                      f"{nginx.detail}; admin {detail}")
    return rows


def as_json(st: State, rows: list[Row]) -> dict:
    return {"dir": str(st.dir), "lab": st.lab, "all_answer": all(r.answers for r in rows),
            "pieces": [asdict(r) for r in rows]}


def table(st: State, rows: list[Row]) -> str:
    lines = [f"{'KIND':<9} {'NAME':<18} {'WHERE':<44} {'PID':>7}  ANSWERS"]
    for r in rows:
        lines.append(f"{r.kind:<9} {r.name:<18} {r.where[:44]:<44} {r.pid or '':>7}  "
                     f"{'yes' if r.answers else 'NO'}  {r.detail}")
    bad = sum(not r.answers for r in rows)
    lab = st.lab
    lines.append(f"# lab {lab.get('id', '?')} in {st.dir}: {len(rows)} pieces, "
                 + ("all answer" if not bad else f"{bad} do not answer")
                 + (f"; cockpit --config {lab['config']}" if lab.get("config") else " (up did not finish)"))
    return "\n".join(lines)

