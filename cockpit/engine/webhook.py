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


MAX_EVENTS = 10_000  # docker-registry sends a few per envelope


class Malformed(ValueError):
    """Not a notification envelope: the registry gets 400 (and does not send it again)."""


def pushes(envelope: object) -> list[tuple[str, str]]:
    """(repository, tag) of every push of a tag in a notification envelope, each once; Malformed
    (saying what and where) when it is not an envelope. A push without a tag (a blob, a manifest
    by digest) names no image and is skipped."""
    if not isinstance(envelope, dict):
        raise Malformed("the body is not a JSON object")
    events = envelope.get("events")
    if not isinstance(events, list):
        raise Malformed("'events' is not a list")
    if len(events) > MAX_EVENTS:
        raise Malformed(f"{len(events):,} events; at most {MAX_EVENTS:,} in one envelope")
    out: dict[tuple[str, str], None] = {}
    for i, ev in enumerate(events):
        if not isinstance(ev, dict):
            raise Malformed(f"events[{i}] is not an object")
        action, target = ev.get("action"), ev.get("target")
        if not isinstance(action, str):
            raise Malformed(f"events[{i}].action is missing or not a string")
        if not isinstance(target, dict):
            raise Malformed(f"events[{i}].target is missing or not an object")
        if action != "push":
            continue
        repo, tag = target.get("repository"), target.get("tag")
        if not isinstance(repo, str) or not repo:
            raise Malformed(f"events[{i}].target.repository is missing or not a string")
        if tag is None:
            continue
        if not isinstance(tag, str) or not tag:
            raise Malformed(f"events[{i}].target.tag is not a string")
        out[(repo, tag)] = None
    return list(out)


class WebhookServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], token: str, registries: set[str],
                 on_push: Callable[[str, list[tuple[str, str]]], int]):
        """`on_push(registry, [(repository, tag), ...])` queues the replications of an envelope's
        pushes, all in one transaction (a resend must not queue some of them twice)."""
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
            images = pushes(json.loads(self.rfile.read(n) or b"{}"))
        except Malformed as e:
            self._answer(400, f"not a notification envelope: {e}")
            return
        except ValueError:
            self._answer(400, "not a notification envelope: not JSON")
            return
        try:
            if images:
                self.server.on_push(parts[1], images)
            self.server.received += len(images)
        except Exception as e:  # noqa: BLE001 - the registry retries while we cannot take it (a lost lease)
            log.warning("webhook: could not take a notification from %s: %s", parts[1], e)
            self._answer(503, "the engine cannot take it now")
            return
        self._answer(200, "ok")
