"""`cockpit web`'s server: textual-serve behind a token, a page that needs nothing from the
internet, and every app process it starts ended by its process group.

textual-serve has no authentication of its own. A middleware admits a request only with the token
(once, in `?token=`, which it trades for an HttpOnly, SameSite=Strict cookie and a redirect to the
same URL without it) or that cookie; a websocket also needs the page's own Origin. Each browser
session is one `python -m cockpit ...` child, run without a shell in a session of its own, so that
ending its process group ends whatever it started.
"""

from __future__ import annotations

import asyncio
import ctypes
import hmac
import ipaddress
import logging
import os
import secrets
import shlex
import signal
import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp_jinja2
from aiohttp import web
from textual_serve.app_service import AppService
from textual_serve.server import Server, to_int

log = logging.getLogger("cockpit.web")

TEMPLATES = Path(__file__).with_name("web_templates")
TOKEN_BYTES = 32  # secrets.token_urlsafe: 43 characters
MAX_TOKEN_CHARS = 256  # longer is refused before any comparison
MAX_SESSIONS = 8  # app processes at once (each is a whole Cockpit)
MAX_COLUMNS, MAX_ROWS = 1000, 500  # a terminal size a browser may ask for
MAX_MESSAGE_BYTES = 1 << 20  # one websocket message (a paste)
STOP_GRACE_S = 5.0  # an app's time to leave on SIGTERM (hand its engine lease back) before SIGKILL
LOOPBACK_NAMES = ("localhost",)

_PR_SET_PDEATHSIG = 1
try:  # resolved here: the child may only make the call, between fork and exec
    _prctl = ctypes.CDLL(None, use_errno=True).prctl
except (OSError, AttributeError):  # not Linux
    _prctl = None


def new_token() -> str:
    return secrets.token_urlsafe(TOKEN_BYTES)


def is_loopback(host: str) -> bool:
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def url_host(host: str) -> str:
    """An address as a URL holds it (IPv6 in brackets; every address: this machine's name)."""
    try:
        if ipaddress.ip_address(host).is_unspecified:
            return socket.gethostname()
    except ValueError:
        pass
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def listen(host: str, port: int) -> socket.socket:
    """The listening socket, bound before anything else so the printed URL holds the real port."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    info = socket.getaddrinfo(host, port, family, socket.SOCK_STREAM)
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(info[0][4])
        sock.listen(128)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


class RedactingFormatter(logging.Formatter):
    """Whatever a library logs (a path someone typed, an error), the token never reaches the log."""

    def __init__(self, token: str, fmt: str):
        super().__init__(fmt)
        self._token = token

    def format(self, record: logging.LogRecord) -> str:
        return super().format(record).replace(self._token, "<token>")


@dataclass
class Guard:
    """Who may in: the token, or the cookie it was traded for; on a loopback server only requests
    addressed to a loopback name (a page on another name that resolves here gets nothing)."""

    token: str
    cookie: str  # its name carries the port: two servers on one host keep their own
    loopback: bool

    def matches(self, given: str | None) -> bool:
        if not given or len(given) > MAX_TOKEN_CHARS:
            return False
        return hmac.compare_digest(given.encode("utf-8", "replace"), self.token.encode())

    def refusal(self, request: web.Request) -> str | None:
        """Why this request is refused, or None."""
        if self.loopback and not is_loopback(_host_name(request.host)):
            return "this server answers only to 127.0.0.1 or localhost"
        given = request.query.getall("token", [])
        if given:
            if len(given) != 1 or not self.matches(given[0]):
                return "wrong token"
        elif not self.matches(request.cookies.get(self.cookie)):
            return "a token is needed"
        if request.path == "/ws" or request.headers.get("Upgrade", "").lower() == "websocket":
            origin = request.headers.get("Origin")
            if origin != f"http://{request.host}":
                return "a websocket from another origin"
        return None


def _host_name(host: str) -> str:
    """The name in a Host header, without its port."""
    if host.startswith("["):
        return host[1:].partition("]")[0]
    name, _, _ = host.rpartition(":") if host.count(":") == 1 else (host, "", "")
    return name


def guard_middleware(guard: Guard):
    @web.middleware
    async def middleware(request: web.Request, handler):
        why = guard.refusal(request)
        if why is not None:
            log.warning("refused %s from %s: %s", request.method, request.remote, why)
            return web.Response(status=403, text=f"cockpit web: {why}: open the URL `cockpit web` printed "
                                                  "when it started\n")
        if "token" in request.query:  # trade it for the cookie, and take it out of the address bar
            kept = [(k, v) for k, v in request.query.items() if k != "token"]
            response = web.HTTPSeeOther(str(request.rel_url.with_query(kept)))
            response.set_cookie(guard.cookie, guard.token, httponly=True, samesite="Strict", path="/")
            return response
        return await handler(request)

    return middleware


async def _headers(request: web.Request, response: web.StreamResponse) -> None:
    """On every answer: not cached, not framed, no referrer; the page may reach only this server."""
    h = response.headers
    h["Cache-Control"] = "no-store"
    h["Referrer-Policy"] = "no-referrer"
    h["X-Content-Type-Options"] = "nosniff"
    h["X-Frame-Options"] = "DENY"
    h["Content-Security-Policy"] = (
        "default-src 'none'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
        f"img-src 'self' data:; font-src 'self'; connect-src 'self' ws://{request.host}; "
        "frame-ancestors 'none'; base-uri 'none'; form-action 'none'")


def _die_with_parent() -> None:
    """In the child between fork and exec: SIGTERM when the server dies, even by SIGKILL."""
    if _prctl is not None:  # elsewhere the server's own stop still ends it
        _prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)


class AppProcess(AppService):
    """One app: `argv` run without a shell (nothing of the user's input is ever parsed by one),
    in a session and process group of its own, its terminal size bounded."""

    def __init__(self, argv: list[str], **kw: Any):
        super().__init__(shlex.join(argv), **kw)
        self.argv = argv

    async def _open_app_process(self, width: int = 80, height: int = 24):
        env = self._build_environment(width=width, height=height)
        self._process = process = await asyncio.create_subprocess_exec(
            *self.argv, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE, env=env, start_new_session=True, preexec_fn=_die_with_parent)
        self._stdin = process.stdin
        return process

    async def set_terminal_size(self, width: int, height: int) -> None:
        await super().set_terminal_size(_cells(width, MAX_COLUMNS, 80), _cells(height, MAX_ROWS, 24))

    @property
    def process(self) -> asyncio.subprocess.Process | None:
        return self._process


def _cells(value: object, most: int, default: int) -> int:
    n = to_int(str(value), default) if not isinstance(value, int) else value
    return min(max(n, 1), most)


def _signal_group(pgid: int, sig: int) -> bool:
    try:
        os.killpg(pgid, sig)
        return True
    except (ProcessLookupError, PermissionError):
        return False


async def end_group(process: asyncio.subprocess.Process, grace_s: float = STOP_GRACE_S) -> None:
    """End an app and whatever it started: SIGTERM (it hands its engine lease back and leaves), then
    SIGKILL to its whole process group, whatever of it is still there."""
    if process.returncode is None:
        _signal_group(process.pid, signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), grace_s)
        except asyncio.TimeoutError:
            log.warning("app pid %d did not leave within %.0f s: killed", process.pid, grace_s)
    _signal_group(process.pid, signal.SIGKILL)
    await process.wait()


@dataclass
class Session:
    app: AppProcess
    websocket: web.WebSocketResponse


class CockpitServer(Server):
    """textual-serve's Server: our page, the guard, bounded sessions, and every app it started
    ended when it stops."""

    def __init__(self, argv: list[str], host: str, port: int, guard: Guard):
        super().__init__(shlex.join(argv), host=host, port=port, title="Cockpit",
                         public_url=f"http://{url_host(host)}:{port}", templates_path=TEMPLATES)
        self.argv = argv
        self.guard = guard
        self.sessions: dict[int, Session] = {}  # by the app's pid, which is also its process group
        self.stopping = False

    async def _make_app(self) -> web.Application:
        app = await super()._make_app()
        app.middlewares.append(guard_middleware(self.guard))
        app.on_response_prepare.append(_headers)
        return app

    async def on_startup(self, app: web.Application) -> None:
        """textual-serve prints a banner here; the CLI says what to open instead."""

    @aiohttp_jinja2.template("app_index.html")
    async def handle_index(self, request: web.Request) -> dict[str, Any]:
        # URLs of the host the browser used (a tunnel's port too); the guard vouched for it
        return {
            "font_size": min(max(to_int(request.query.get("fontsize", "16"), 16), 6), 64),
            "app_websocket_url": f"ws://{request.host}/ws",
            "config": {"static": {"url": "/static/"}},
            "application": {"name": self.title},
        }

    async def handle_websocket(self, request: web.Request) -> web.StreamResponse:
        if self.stopping or len(self.sessions) >= MAX_SESSIONS:
            why = "stopping" if self.stopping else f"{MAX_SESSIONS} sessions are open already: close one first"
            return web.Response(status=503, text=f"cockpit web: {why}\n")
        websocket = web.WebSocketResponse(heartbeat=15, max_msg_size=MAX_MESSAGE_BYTES)
        await websocket.prepare(request)
        app = AppProcess(self.argv, write_bytes=websocket.send_bytes, write_str=websocket.send_str,
                         close=websocket.close, download_manager=self.download_manager)
        try:
            await app.start(_cells(request.query.get("width", "80"), MAX_COLUMNS, 80),
                            _cells(request.query.get("height", "24"), MAX_ROWS, 24))
        except OSError as e:
            log.error("cannot start the app: %s", e)
            await websocket.close(message=b"cockpit web: cannot start the app")
            return websocket
        process = app.process
        assert process is not None
        self.sessions[process.pid] = Session(app, websocket)
        log.info("session started: app pid %d (%d open)", process.pid, len(self.sessions))
        try:
            if not self.stopping:
                await self._process_messages(websocket, app)
        except asyncio.CancelledError:
            raise
        except Exception as e:  # noqa: BLE001 - a browser's bad message ends its session, not the server
            log.warning("session of app pid %d: %s", process.pid, " ".join(str(e).split()) or type(e).__name__)
        finally:
            await self._end(app, process)
            await websocket.close()
        return websocket

    async def _end(self, app: AppProcess, process: asyncio.subprocess.Process) -> None:
        """The browser left (or the server stops): ask the app to quit, then make sure of it."""
        async def quit() -> None:
            try:  # shielded: its reading of the app's output goes on while the app leaves
                await asyncio.shield(app.stop())
            except (ConnectionError, RuntimeError):  # the browser is gone already
                pass
            await process.wait()

        try:
            await asyncio.wait_for(quit(), STOP_GRACE_S)
        except asyncio.TimeoutError:
            pass
        await end_group(process)
        if self.sessions.pop(process.pid, None) is not None:
            log.info("session ended: app pid %d, exit code %s", process.pid, process.returncode)

    async def stop_sessions(self) -> int:
        """Every app ended (SIGTERM, then SIGKILL to its group) and every browser told. How many."""
        self.stopping = True
        sessions = list(self.sessions.values())
        await asyncio.gather(*(end_group(s.app.process) for s in sessions if s.app.process is not None))
        for s in sessions:
            await s.websocket.close(message=b"cockpit web stopped")
        return len(sessions)

    def kill_all(self) -> None:
        """Last resort on the way out: SIGKILL to the group of every app still running."""
        for pid, session in list(self.sessions.items()):
            if session.app.process is not None and session.app.process.returncode is None:
                _signal_group(pid, signal.SIGKILL)


async def serve(server: CockpitServer, sock: socket.socket, started: Callable[[], None]) -> int:
    """Serve until SIGINT, SIGTERM or SIGHUP; then end every app. Returns the sessions ended."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        loop.add_signal_handler(sig, stop.set)
    runner = web.AppRunner(await server._make_app(), access_log=None, handle_signals=False, shutdown_timeout=2.0)
    await runner.setup()
    ended = 0
    try:
        await web.SockSite(runner, sock).start()
        started()
        await stop.wait()
        ended = await server.stop_sessions()
    finally:
        server.kill_all()
        await runner.cleanup()
        server.kill_all()  # a session that started while the runner closed
    return ended
