"""Real registries for the tests: Debian's docker-registry (distribution 2.8) on 127.0.0.1, each in
its own temporary directory and stopped by its PID; plain, with htpasswd auth, with bearer tokens
from a small token service, or posting notifications to a URL the test gives. Plus synthetic
images (random layers, a config, a Docker v2 or OCI manifest, a multi-arch index) pushed through
any Registry, so one helper feeds the real client and the simulated twin alike.

Use the fixtures by importing them into a test module:
    from tests.registries import docker_registry, registry_factory  # noqa: F401 (fixtures)
"""

from __future__ import annotations

import atexit
import base64
import datetime as dt
import functools
import hashlib
import http.server
import json
import os
import random
import shutil
import signal
import socket
import struct
import subprocess
import threading
import time
import uuid
import zlib
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from cockpit.backends.base import Manifest, Registry, Spooled
from cockpit.backends.registry_oci import OciRegistry

USER, PASSWORD = "cockpit", "s3cret-Registry-pass"  # the test user of htpasswd and token registries
READER, READER_PASSWORD = "reader", "reader-pass-2"  # token registries: may pull, never push
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"

_live: set[DockerRegistry] = set()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _need(program: str, package: str) -> str:
    path = shutil.which(program)
    if path is None:
        raise RuntimeError(f"{program} is not installed (apt-get install {package})")
    return path


# --- the token service ------------------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def _signing_key():
    """An RSA key and its self-signed certificate (made once per test process: ~0.1 s)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "cockpit test token issuer")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    return key, cert.public_bytes(serialization.Encoding.PEM), cert.public_bytes(serialization.Encoding.DER)


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class TokenService:
    """The docker token protocol on loopback: GET /token?service=&scope=&account= with basic
    credentials answers {"token", "expires_in"}: an RS256 JWT that names the certificate it is
    signed with (x5c), which the registry trusts (auth.token.rootcertbundle).

    `grants`: user -> the actions they may have ("pull", "push", "delete", "*"); asking for more
    is refused with 403 DENIED. `issued` counts the tokens given, per scope string."""

    service = "cockpit-test-registry"
    issuer = "cockpit-test-issuer"

    def __init__(self, root: Path, users: dict[str, str] | None = None,
                 grants: dict[str, set[str]] | None = None, expires_in: int = 300):
        self.root = Path(root)
        self.users = users if users is not None else {USER: PASSWORD, READER: READER_PASSWORD}
        self.grants = grants if grants is not None else {USER: {"*"}, READER: {"pull"}}
        self.expires_in = expires_in
        self.issued: Counter = Counter()
        self.refused: Counter = Counter()  # status -> refusals
        self.cert_path = self.root / "token-issuer.pem"
        self._server: http.server.ThreadingHTTPServer | None = None

    @property
    def realm(self) -> str:
        assert self._server is not None, "the token service is not started"
        return f"http://127.0.0.1:{self._server.server_address[1]}/token"

    def start(self) -> TokenService:
        self.root.mkdir(parents=True, exist_ok=True)
        self.cert_path.write_bytes(_signing_key()[1])
        service = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - http.server's name
                status, doc = service.answer(self.path, self.headers.get("Authorization", ""))
                body = json.dumps(doc).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):  # quiet: the tests read `issued` instead
                return

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> TokenService:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def answer(self, path: str, authorization: str) -> tuple[int, dict]:
        from urllib.parse import parse_qs, urlsplit

        query = parse_qs(urlsplit(path).query)
        user = self._user(authorization)
        if user is None:
            self.refused[401] += 1
            return 401, {"errors": [{"code": "UNAUTHORIZED", "message": "authentication required"}]}
        access = []
        for scope in query.get("scope", []):
            kind, _, rest = scope.partition(":")
            name, _, actions = rest.rpartition(":")
            wanted = [a for a in actions.split(",") if a]
            allowed = self.grants.get(user, set())
            if "*" not in allowed and not set(wanted) <= allowed:
                self.refused[403] += 1
                return 403, {"errors": [{"code": "DENIED", "message": "requested access to the resource is denied"}]}
            access.append({"type": kind, "name": name, "actions": wanted})
        self.issued[" ".join(query.get("scope", []))] += 1
        return 200, {"token": self.sign(user, access), "expires_in": self.expires_in,
                     "issued_at": dt.datetime.now(dt.timezone.utc).isoformat()}

    def _user(self, authorization: str) -> str | None:
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() != "basic":
            return None
        try:
            user, _, password = base64.b64decode(value).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return None
        return user if user in self.users and self.users[user] == password else None

    def sign(self, user: str, access: list[dict]) -> str:
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding

        key, _, der = _signing_key()
        now = int(time.time())
        header = {"typ": "JWT", "alg": "RS256", "x5c": [base64.b64encode(der).decode()]}
        claims = {"iss": self.issuer, "sub": user, "aud": self.service, "exp": now + self.expires_in,
                  "nbf": now - 5, "iat": now, "jti": uuid.uuid4().hex, "access": access}
        signing_input = f"{_b64url(json.dumps(header).encode())}.{_b64url(json.dumps(claims).encode())}"
        signature = key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
        return f"{signing_input}.{_b64url(signature)}"


# --- docker-registry --------------------------------------------------------------------------------


class DockerRegistry:
    """One docker-registry on 127.0.0.1:<port>, its storage and config under `root`.

    auth: None, "htpasswd" (USER/PASSWORD, bcrypt) or "token" (through `token_service`).
    notify_url: where it posts its push/pull/delete events (with `notify_headers`).
    kill() is SIGKILL; start() again serves the same storage on the same port."""

    def __init__(self, root: Path, *, name: str = "reg", auth: str | None = None,
                 token_service: TokenService | None = None, notify_url: str | None = None,
                 notify_headers: dict[str, str] | None = None, port: int | None = None,
                 users: dict[str, str] | None = None):
        if auth not in (None, "htpasswd", "token"):
            raise ValueError(f"auth: {auth!r} (None, htpasswd or token)")
        if auth == "token" and token_service is None:
            raise ValueError("auth=token needs a started token_service")
        self.root = Path(root)
        self.name = name
        self.auth = auth
        self.token_service = token_service
        self.notify_url = notify_url
        self.notify_headers = notify_headers or {}
        self.users = users if users is not None else {USER: PASSWORD}
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.storage = self.root / "storage"
        self.config_path = self.root / "config.yml"
        self.log_path = self.root / "registry.log"
        self.proc: subprocess.Popen | None = None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def config(self) -> dict:
        cfg: dict = {
            "version": 0.1,
            "log": {"level": "warn", "accesslog": {"disabled": True}},
            # The blob descriptor cache as Debian's default config has it.
            "storage": {"filesystem": {"rootdirectory": str(self.storage)}, "delete": {"enabled": True},
                        "cache": {"blobdescriptor": "inmemory"},
                        "maintenance": {"uploadpurging": {"enabled": False}}},
            # A fixed secret: uploads begun before a restart stay valid after it.
            "http": {"addr": f"127.0.0.1:{self.port}", "secret": f"cockpit-test-{self.name}"},
        }
        if self.auth == "htpasswd":
            path = self.root / "htpasswd"
            path.write_text("".join(_htpasswd(u, p) for u, p in self.users.items()))
            cfg["auth"] = {"htpasswd": {"realm": "cockpit-test", "path": str(path)}}
        elif self.auth == "token":
            ts = self.token_service
            cfg["auth"] = {"token": {"realm": ts.realm, "service": ts.service, "issuer": ts.issuer,
                                     "rootcertbundle": str(ts.cert_path)}}
        if self.notify_url:
            cfg["notifications"] = {"endpoints": [{
                "name": "cockpit", "url": self.notify_url, "timeout": "2s", "threshold": 3, "backoff": "200ms",
                "headers": {k: [v] for k, v in self.notify_headers.items()}}]}
        return cfg

    def start(self, timeout_s: float = 10.0) -> DockerRegistry:
        if self.proc is not None and self.proc.poll() is None:
            return self
        program = _need("docker-registry", "docker-registry")
        self.storage.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(yaml.safe_dump(self.config()))
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen([program, "serve", str(self.config_path)], stdin=subprocess.DEVNULL,
                                         stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        _live.add(self)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"docker-registry exited ({self.proc.returncode}): {self._log_tail()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return self
            except OSError:
                time.sleep(0.01)
        self.kill()
        raise RuntimeError(f"docker-registry did not listen on {self.port} within {timeout_s} s: {self._log_tail()}")

    def kill(self) -> None:
        """SIGKILL, as a crash would: nothing flushed, connections cut."""
        self._signal(signal.SIGKILL)

    def stop(self) -> None:
        self._signal(signal.SIGTERM)

    def restart(self) -> DockerRegistry:
        self.kill()
        return self.start()

    def _signal(self, sig: int) -> None:
        proc, self.proc = self.proc, None
        _live.discard(self)
        if proc is None or proc.poll() is not None:
            return
        os.kill(proc.pid, sig)
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)

    def client(self, username: str | None = None, password: str | None = None, **kw) -> OciRegistry:
        """An OciRegistry on this registry (with USER/PASSWORD when it has auth, unless told)."""
        if username is None and self.auth is not None:
            username, password = USER, PASSWORD
        return OciRegistry(kw.pop("name", self.name), self.url, username=username, password=password, **kw)

    def blob_file(self, digest: str) -> Path:
        """Where the registry keeps a blob's bytes (tests corrupt it to make a digest mismatch)."""
        hexa = digest.split(":", 1)[1]
        return self.storage / "docker" / "registry" / "v2" / "blobs" / "sha256" / hexa[:2] / hexa / "data"

    def _log_tail(self) -> str:
        try:
            return " ".join(self.log_path.read_text(errors="replace").split()[-60:])
        except OSError:
            return ""

    def __enter__(self) -> DockerRegistry:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def _htpasswd(user: str, password: str) -> str:
    """A bcrypt htpasswd line (docker-registry accepts bcrypt only); the password goes on stdin."""
    r = subprocess.run([_need("htpasswd", "apache2-utils"), "-niB", user], input=password, capture_output=True,
                       text=True, timeout=30)
    if r.returncode != 0:
        raise RuntimeError(f"htpasswd: {r.stderr.strip()}")
    return r.stdout.strip() + "\n"


@atexit.register
def _kill_leftovers() -> None:
    """A registry a test forgot to stop does not outlive the test process."""
    for reg in list(_live):
        reg.kill()


# --- fixtures ----------------------------------------------------------------------------------------


@pytest.fixture
def registry_factory(tmp_path) -> Iterator[Callable[..., DockerRegistry]]:
    """start(**DockerRegistry options) -> a started registry in its own directory under tmp_path;
    all of them stopped after the test."""
    started: list[DockerRegistry] = []

    def start(**kw) -> DockerRegistry:
        name = kw.pop("name", f"reg{len(started) + 1}")
        reg = DockerRegistry(tmp_path / f"registry-{name}", name=name, **kw).start()
        started.append(reg)
        return reg

    yield start
    for reg in started:
        reg.stop()


@pytest.fixture(scope="module")
def docker_registry(tmp_path_factory) -> Iterator[DockerRegistry]:
    """A plain registry shared by a module's tests (use repository names of your own)."""
    with DockerRegistry(tmp_path_factory.mktemp("docker-registry"), name="plain") as reg:
        yield reg


@pytest.fixture(scope="module")
def htpasswd_registry(tmp_path_factory) -> Iterator[DockerRegistry]:
    with DockerRegistry(tmp_path_factory.mktemp("htpasswd-registry"), name="basic", auth="htpasswd") as reg:
        yield reg


@pytest.fixture(scope="module")
def token_service(tmp_path_factory) -> Iterator[TokenService]:
    with TokenService(tmp_path_factory.mktemp("token-service")) as ts:
        yield ts


@pytest.fixture(scope="module")
def token_registry(tmp_path_factory, token_service) -> Iterator[DockerRegistry]:
    with DockerRegistry(tmp_path_factory.mktemp("token-registry"), name="token", auth="token",
                        token_service=token_service) as reg:
        yield reg


# --- synthetic images -------------------------------------------------------------------------------


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def random_layer(size: int, seed: object) -> bytes:
    """A layer of exactly `size` bytes (at least 23), the same for the same seed (so images can
    share a layer): a valid gzip stream of random bytes in stored deflate blocks, so tools that
    look at a layer's compression (skopeo) copy it as it is instead of compressing it again."""
    if size < 23:
        raise ValueError(f"a layer is a gzip stream: at least 23 bytes, not {size}")
    count = -(-(size - 18) // 65540)  # stored deflate blocks: up to 65535 bytes and a 5-byte header each
    data = random.Random(str(seed)).randbytes(size - 18 - 5 * count)
    out = bytearray(b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff")  # gzip header: no name, no mtime
    blocks = [data[i * 65535:(i + 1) * 65535] for i in range(count)]
    for i, block in enumerate(blocks):
        out += bytes([1 if i == len(blocks) - 1 else 0]) + struct.pack("<HH", len(block), len(block) ^ 0xFFFF)
        out += block
    out += struct.pack("<II", zlib.crc32(data), len(data) & 0xFFFFFFFF)
    return bytes(out)


@dataclass
class Image:
    """A synthetic image: its manifest and the bytes of every blob it names."""

    manifest: Manifest
    config: str
    layers: list[str]
    blobs: dict[str, bytes] = field(default_factory=dict)  # digest -> bytes
    platform: dict = field(default_factory=dict)


def make_image(layers: list[bytes], fmt: str = "docker", arch: str = "amd64", note: str = "") -> Image:
    """A Docker v2 (fmt="docker") or OCI (fmt="oci") image of these layers and a small config.
    `note` changes the config, hence the image's digest, without changing its layers."""
    oci = fmt == "oci"
    digests = [sha256(b) for b in layers]
    config = json.dumps({"architecture": arch, "os": "linux", "config": {"Labels": {"note": note}},
                         "rootfs": {"type": "layers", "diff_ids": digests}}, sort_keys=True).encode()
    doc = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST if oci else DOCKER_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json" if oci else
                   "application/vnd.docker.container.image.v1+json", "size": len(config), "digest": sha256(config)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip" if oci else
                    "application/vnd.docker.image.rootfs.diff.tar.gzip", "size": len(b), "digest": d}
                   for b, d in zip(layers, digests)],
    }
    body = json.dumps(doc, indent=3).encode()
    blobs = {sha256(config): config, **dict(zip(digests, layers))}
    return Image(Manifest(doc["mediaType"], sha256(body), body), sha256(config), digests, blobs,
                 {"architecture": arch, "os": "linux"})


def make_index(images: list[Image], fmt: str = "docker") -> Manifest:
    """A multi-arch index (Docker manifest list or OCI index) of these images."""
    media = OCI_INDEX if fmt == "oci" else DOCKER_LIST
    doc = {"schemaVersion": 2, "mediaType": media,
           "manifests": [{"mediaType": i.manifest.media_type, "size": len(i.manifest.body),
                          "digest": i.manifest.digest, "platform": i.platform} for i in images]}
    body = json.dumps(doc, indent=3).encode()
    return Manifest(media, sha256(body), body)


def push_image(reg: Registry, repo: str, ref: str, image: Image, work: Path) -> Manifest:
    """Upload an image's blobs (those the repository lacks) from files under `work`, then its
    manifest under `ref` (a tag or its digest)."""
    spool = Path(work) / "blobs"
    spool.mkdir(parents=True, exist_ok=True)
    for digest, data in image.blobs.items():
        if reg.has_blob(repo, digest):
            continue
        path = spool / digest.replace(":", "-")
        if not path.exists():
            path.write_bytes(data)
        reg.push_blob(repo, Spooled(digest, len(data), str(path)))
    reg.put_manifest(repo, ref, image.manifest)
    return image.manifest


def push_index(reg: Registry, repo: str, tag: str, images: list[Image], work: Path, fmt: str = "docker") -> Manifest:
    """Every image by its digest, then their index under `tag`."""
    for image in images:
        push_image(reg, repo, image.manifest.digest, image, work)
    index = make_index(images, fmt)
    reg.put_manifest(repo, tag, index)
    return index


def push_synthetic(reg: Registry, repo: str, tag: str, sizes: list[int], work: Path, fmt: str = "docker",
                   seed: object = None) -> Image:
    """An image of random layers of these sizes (seeded by repo:tag unless told) under repo:tag."""
    seed = f"{repo}:{tag}" if seed is None else seed
    image = make_image([random_layer(n, f"{seed}/{i}") for i, n in enumerate(sizes)], fmt, note=str(seed))
    push_image(reg, repo, tag, image, work)
    return image


def skopeo(*args: str, home: Path, timeout_s: float = 120) -> subprocess.CompletedProcess:
    """skopeo with its own HOME (no auth files of this machine) and loopback TLS off."""
    env = {"HOME": str(home), "PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    return subprocess.run([_need("skopeo", "skopeo"), *args], capture_output=True, text=True, env=env,
                          timeout=timeout_s)
