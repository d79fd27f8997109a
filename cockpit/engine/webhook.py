"""The webhook registries post their notifications to: a push of a tag triggers the policies
that replicate from that registry on events.

A registry's `notifications.endpoints` entry points at http://<engine host>:<port>/registry-events/<registry
name> with the header `Authorization: Bearer <token>` (the token comes from the config by
reference). Only the active engine listens; a registry keeps a notification it could not deliver
and tries again, so a hand-over loses none unless that registry restarts meanwhile.
"""

from __future__ import annotations

import hmac
import json
import logging
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

log = logging.getLogger(__name__)

EVENTS_TYPE = "application/vnd.docker.distribution.events.v1+json"
MAX_BODY = 1 << 20  # a notification envelope is small; anything bigger is not one


def pushes(envelope: dict) -> list[tuple[str, str]]:
    """(repository, tag) of every push of a tag in a notification envelope."""
    out = []
    for ev in envelope.get("events", []):
        target = ev.get("target") or {}
        if ev.get("action") == "push" and target.get("repository") and target.get("tag"):
            out.append((str(target["repository"]), str(target["tag"])))
    return out


class WebhookServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], token: str, registries: set[str],
                 on_push: Callable[[str, str, str], int]):
        if not token:  # an open webhook would let anyone start replications
            raise ValueError("no bearer token: the webhook is not served without one")
        self.token = token
        self.registries = registries
        self.on_push = on_push
        self.received = 0  # pushes taken (tests and the views)
        super().__init__(address, _Handler)
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> None:
        self._thread = threading.Thread(target=self.serve_forever, name="webhook", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self.shutdown()
        self.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)


class _Handler(BaseHTTPRequestHandler):
    server: WebhookServer

    def log_message(self, fmt: str, *args) -> None:  # to our log, not stderr (the TUI owns the terminal)
        log.info("webhook: " + fmt, *args)

    def _answer(self, status: int, text: str) -> None:
        body = text.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        given = self.headers.get("Authorization", "")
        if not hmac.compare_digest(given.encode(), f"Bearer {self.server.token}".encode()):
            self._answer(401, "no or wrong bearer token")
            return
        parts = self.path.strip("/").split("/")
        if len(parts) != 2 or parts[0] != "registry-events" or parts[1] not in self.server.registries:
            self._answer(404, "post to /registry-events/<registry name of the world>")
            return
        try:
            n = int(self.headers.get("Content-Length", "0"))
        except ValueError:
            n = -1
        if not 0 <= n <= MAX_BODY:
            self._answer(413, "not a notification envelope")
            return
        try:
            envelope = json.loads(self.rfile.read(n) or b"{}")
        except ValueError:
            self._answer(400, "not JSON")
            return
        try:
            for repo, tag in pushes(envelope if isinstance(envelope, dict) else {}):
                self.server.on_push(parts[1], repo, tag)
                self.server.received += 1
        except Exception as e:  # noqa: BLE001 - the registry retries while we cannot take it (a lost lease)
            log.warning("webhook: could not take a notification from %s: %s", parts[1], e)
            self._answer(503, "the engine cannot take it now")
            return
        self._answer(200, "ok")
