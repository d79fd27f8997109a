"""`cockpit web`: the real server in a child process, a real headless Chromium, real HTTP and
websocket clients. Only to 127.0.0.1."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp
import httpx
import pytest

pytestmark = pytest.mark.integration

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-webgl", "--disable-gpu", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
PATHS = ["/", "/ws", "/static/js/textual.js", "/static/css/xterm.css", "/static/", "/download/x", "/no-such-page"]


@dataclass
class Served:
    proc: subprocess.Popen
    url: str  # the printed URL, with the token
    home: Path  # the XDG dirs and the store
    db: Path
    out: list[str] = field(default_factory=list)  # every line after the first, stdout and stderr

    @property
    def token(self) -> str:
        return self.url.split("?token=", 1)[1]

    @property
    def base(self) -> str:
        return self.url.split("/?", 1)[0]

    @property
    def cookie(self) -> dict[str, str]:
        return {f"cockpit_web_{urlsplit(self.base).port}": self.token}


def _read(stream, into: list[str]) -> None:
    for line in stream:
        into.append(line)


def start(home: Path, db: Path, *extra: str) -> Served:
    env = {**os.environ, "XDG_DATA_HOME": str(home / "data"), "XDG_CONFIG_HOME": str(home / "config"),
           "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "cockpit", "web", "--port", "0", "--db", str(db), *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=home,
                            start_new_session=True)
    first: list[str] = []
    reader = threading.Thread(target=lambda: first.append(proc.stdout.readline()), daemon=True)
    reader.start()
    reader.join(30)
    if not first or not first[0]:
        proc.kill()
        raise AssertionError(f"cockpit web printed no URL: {proc.stderr.read() if proc.poll() is not None else ''}")
    line = first[0].rstrip("\n")
    assert line.startswith("cockpit web: open http://127.0.0.1:") and "/?token=" in line, line
    s = Served(proc, line.split("open ", 1)[1], home, db)
    for stream in (proc.stdout, proc.stderr):
        threading.Thread(target=_read, args=(stream, s.out), daemon=True).start()
    return s


def stop(s: Served) -> int:
    if s.proc.poll() is None:
        s.proc.send_signal(signal.SIGTERM)
    try:
        return s.proc.wait(timeout=20)
    finally:
        if s.proc.poll() is None:
            s.proc.kill()


@pytest.fixture(scope="module")
def served(tmp_path_factory, seeded_template):
    home = tmp_path_factory.mktemp("web")
    db = home / "demo.db"
    shutil.copy(seeded_template, db)
    s = start(home, db)
    yield s
    stop(s)


# --- process helpers ---------------------------------------------------------------------------


def _stat(pid: int) -> tuple[int, int] | None:
    """(ppid, session id) of a live process."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = text.rsplit(")", 1)[1].split()
    return (int(fields[1]), int(fields[3])) if fields[0] != "Z" else None


def _uid(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line for line in status.splitlines() if line.startswith("Uid:")).split()[1])


def _processes() -> dict[int, tuple[int, int]]:
    out = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (st := _stat(int(entry))) is not None:
            out[int(entry)] = st
    return out


def descendants(pid: int) -> set[int]:
    procs = _processes()
    found, todo = set(), [pid]
    while todo:
        parent = todo.pop()
        for child, (ppid, _) in procs.items():
            if ppid == parent and child not in found:
                found.add(child)
                todo.append(child)
    return found


def _wait_for(predicate, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


async def _app_session(s: Served) -> aiohttp.ClientWebSocketResponse:
    """A websocket as the page opens it (with the cookie and the page's Origin), once the app drew."""
    http = aiohttp.ClientSession(cookies=s.cookie)
    ws = await http.ws_connect(f"{s.base}/ws?width=100&height=30", origin=s.base)
    msg = await ws.receive(timeout=30)
    assert msg.type == aiohttp.WSMsgType.BINARY, msg
    ws._test_http = http  # closed with the websocket by the caller
    return ws


async def _close(ws: aiohttp.ClientWebSocketResponse) -> None:
    await ws.close()
    await ws._test_http.close()


# --- the browser -------------------------------------------------------------------------------


def test_the_browser_with_the_token_shows_the_dashboard_and_asks_nothing_of_the_internet(served):
    from playwright.sync_api import sync_playwright

    own = urlsplit(served.base).netloc
    asked, blocked = [], []

    def only_here(route):  # as on a jump host with no internet: anything else fails
        if urlsplit(route.request.url).netloc == own:
            route.continue_()
        else:
            blocked.append(route.request.url)
            route.abort()

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.route("**/*", only_here)
            page.on("request", lambda r: asked.append(r.url))
            page.on("websocket", lambda w: asked.append(w.url))
            page.goto(served.url)
            assert "token" not in page.url  # traded for the cookie: not left in the address bar or history
            page.get_by_text("yongfeng").first.wait_for(timeout=30_000)
            page.get_by_text("engine").first.wait_for(timeout=10_000)
            page.goto(served.base + "/")  # the URL without the token: the cookie carries it
            page.get_by_text("yongfeng").first.wait_for(timeout=30_000)
        finally:
            browser.close()
    assert blocked == []
    assert any(u.startswith(f"ws://{own}/ws") for u in asked)
    assert {urlsplit(u).netloc for u in asked} == {own}, asked


# --- who gets in -------------------------------------------------------------------------------


def test_without_the_token_or_with_a_wrong_one_every_path_is_refused(served):
    wrong = served.token[:-1] + ("A" if served.token[-1] != "A" else "B")
    name = next(iter(served.cookie))
    for path in PATHS:
        for query, cookies in (("", {}), (f"?token={wrong}", {}), ("", {name: wrong}), ("", {"other": served.token}),
                               (f"?token={wrong}", served.cookie), (f"?token={served.token}&token=x", {})):
            with httpx.Client(base_url=served.base, cookies=cookies, timeout=10) as http:
                r = http.get(path + query)
            assert r.status_code == 403, (path, query, cookies)
            assert r.text.count("\n") == 1 and r.text.startswith("cockpit web: "), r.text
    with httpx.Client(base_url=served.base, timeout=10) as http:
        # the right token is traded for the cookie, and the address loses it
        r = http.get(f"/?token={served.token}&fontsize=14")
        assert r.status_code == 303 and r.headers["location"] == "/?fontsize=14"
        cookie = r.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
        assert http.get("/static/js/textual.js").status_code == 200  # the cookie, from now on
        # a name that merely resolves here (DNS rebinding) gets nothing, cookie or not
        assert http.get("/", headers={"Host": f"evil.example:{urlsplit(served.base).port}"}).status_code == 403


async def test_the_websocket_needs_the_cookie_and_the_pages_own_origin(served):
    port = urlsplit(served.base).port
    cases = [({}, served.base), ({next(iter(served.cookie)): "wrong"}, served.base),
             (served.cookie, "http://evil.example"), (served.cookie, f"http://localhost:{port + 1}"),
             (served.cookie, None)]
    for cookies, origin in cases:
        async with aiohttp.ClientSession(cookies=cookies) as http:
            with pytest.raises(aiohttp.WSServerHandshakeError) as e:
                await http.ws_connect(f"{served.base}/ws", origin=origin)
            assert e.value.status == 403, (cookies, origin)
    ws = await _app_session(served)  # and the page's own way in does start the app
    await _close(ws)


# --- stopping, and where the token goes --------------------------------------------------------


async def test_sigterm_ends_the_server_and_every_app_it_started(tmp_path, seeded_template):
    db = tmp_path / "demo.db"
    shutil.copy(seeded_template, db)
    s = start(tmp_path, db)
    try:
        sessions = [await _app_session(s), await _app_session(s)]
        tree = descendants(s.proc.pid)
        apps = {pid for pid in tree if _stat(pid) and _stat(pid)[0] == s.proc.pid}
        assert len(apps) == 2 and all(_stat(pid)[1] == pid for pid in apps)  # each app leads its own session
        assert {_uid(pid) for pid in apps} == {os.getuid()}  # as the user who started `cockpit web`
        code = stop(s)
    finally:
        if s.proc.poll() is None:
            s.proc.kill()
    for ws in sessions:
        await _close(ws)
    assert code == 0
    assert _wait_for(lambda: not any(_stat(pid) for pid in tree | {s.proc.pid}), 5), [
        pid for pid in tree if _stat(pid)]
    assert not [pid for pid, (_, sid) in _processes().items() if sid in apps]
    assert any("cockpit web: stopped (2 browser sessions ended)" in line for line in s.out), s.out


async def test_the_token_is_printed_once_and_never_logged_or_stored(tmp_path, seeded_template):
    db = tmp_path / "it's a $(touch pwned) `touch pwned`; touch pwned" / "demo.db"  # handed on, never to a shell
    db.parent.mkdir()
    shutil.copy(seeded_template, db)
    s = start(tmp_path, db)
    try:
        with httpx.Client(base_url=s.base, timeout=10) as http:
            assert http.get(f"/?token={s.token}").status_code == 303
            assert http.get(f"/{s.token}").status_code == 404  # a token pasted into the path
            http.get(f"/?token={s.token}x")
        ws = await _app_session(s)  # the app runs, its engine writes the store
        assert _wait_for(lambda: db.with_name("demo.db-wal").exists(), 10)
        await _close(ws)
    finally:
        assert stop(s) == 0
    assert _wait_for(lambda: any("stopped" in line for line in s.out), 5)
    assert any("refused GET" in line for line in s.out)  # the log was written to, just not with the token
    assert not [line for line in s.out if s.token in line]
    token = s.token.encode()
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert db in files and any(p.name == "cockpit.log" for p in files)  # the app's log too
    assert not [p for p in files if token in p.read_bytes()]
    assert not [p for p in files if p.name == "pwned"]


# --- bad input ---------------------------------------------------------------------------------


def _taken_port() -> socket.socket:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(1)
    return sock


@pytest.mark.parametrize("args, says", [
    (["--host", "0.0.0.0"], "argument --host: 0.0.0.0 is not a loopback address"),
    (["--host", "10.1.2.3", "--port", "8080"], "add --allow-remote"),
    (["--port", "65536"], "argument --port: expected a port from 0 to 65535, got 65536"),
    (["--port", "-1"], "argument --port: expected a port from 0 to 65535"),
    (["--host", "192.0.2.1", "--allow-remote"], "cannot listen on 192.0.2.1:8000"),
    (["--port", "TAKEN"], "cannot listen on 127.0.0.1:"),
])
def test_bad_host_or_port_is_one_line_and_exit_2(tmp_path, args, says):
    taken = _taken_port()
    args = [str(taken.getsockname()[1]) if a == "TAKEN" else a for a in args]
    env = {**os.environ, "XDG_DATA_HOME": str(tmp_path), "XDG_CONFIG_HOME": str(tmp_path)}
    try:
        r = subprocess.run([sys.executable, "-m", "cockpit", "web", *args], capture_output=True, text=True,
                           env=env, timeout=30)
    finally:
        taken.close()
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.count("\n") == 1 and says in r.stderr, r.stderr
