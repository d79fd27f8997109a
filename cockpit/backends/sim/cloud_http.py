"""The simulated cloud's HTTP face: ECS's RPC protocol on loopback, signatures checked.

Requests carry every parameter in the query string (and maybe a form body), signed with
HMAC-SHA1 over the sorted, percent-encoded parameters as the legacy Aliyun SDK signs them. A
wrong key or signature is refused as ECS refuses it. Run by `cockpit serve cloud`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, quote, urlsplit

from cockpit.backends.sim.cloud import SimCloudModel


def _enc(s: str) -> str:
    return quote(s, safe="~")


def signature(method: str, params: dict[str, str], secret: str) -> tuple[str, str]:
    """(signature, string to sign) of a request's parameters, as ECS computes them."""
    canonical = "&".join(f"{_enc(k)}={_enc(v)}" for k, v in sorted(params.items()))
    to_sign = f"{method}&{_enc('/')}&{_enc(canonical)}"
    digest = hmac.new(f"{secret}&".encode(), to_sign.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode(), to_sign


class CloudServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256

    def __init__(self, address: tuple[str, int], model: SimCloudModel, keys: dict[str, str]):
        super().__init__(address, _Handler)
        self.model = model
        self.keys = keys  # AccessKeyId -> secret

    @property
    def endpoint(self) -> str:
        host, port = self.server_address[:2]
        return f"{host}:{port}"

    def start_background(self) -> threading.Thread:
        t = threading.Thread(target=self.serve_forever, name="sim-cloud", daemon=True)
        t.start()
        return t


class _Handler(BaseHTTPRequestHandler):
    server: CloudServer
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out as they are written: no 40 ms stall

    def log_message(self, format, *args):  # noqa: A002 - quiet: tests and benchmarks read stdout
        return

    def do_GET(self):  # noqa: N802
        self._serve()

    def do_POST(self):  # noqa: N802
        self._serve()

    def _serve(self) -> None:
        params = dict(parse_qsl(urlsplit(self.path).query, keep_blank_values=True))
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            body = self.rfile.read(length).decode()
            if "x-www-form-urlencoded" in (self.headers.get("Content-Type") or ""):
                params.update(parse_qsl(body, keep_blank_values=True))
        status, answer = self._check(params)
        if status == 200:
            status, answer = self.server.model.handle(params["AccessKeyId"], params)
        data = json.dumps(answer).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json;charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the caller went away (a killed engine): its token remembers

    def _check(self, params: dict[str, str]) -> tuple[int, dict]:
        key = params.get("AccessKeyId")
        given = params.pop("Signature", None)
        if not key or given is None:
            return 400, {"Code": "MissingParameter", "Message": "AccessKeyId and Signature are required."}
        secret = self.server.keys.get(key)
        if secret is None:
            return 404, {"Code": "InvalidAccessKeyId.NotFound", "Message": "Specified access key is not found."}
        expected, to_sign = signature(self.command, params, secret)
        if not hmac.compare_digest(expected, given):
            # ECS names its string to sign after a colon; the SDK compares it with its own.
            return 400, {"Code": "SignatureDoesNotMatch",
                         "Message": f"Specified signature is not matched with our calculation. "
                                    f"server string to sign is:{to_sign}"}
        return 200, {}
