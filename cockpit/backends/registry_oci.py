"""A registry over the OCI distribution API (docker-registry, Harbor, ...), on httpx.

Manifests are kept byte-exact (their digest is of those bytes), blobs stream through a spool
file while they are hashed, and every refusal becomes a RegistryError with the spec's code.
Credentials are held in memory only: no password or token ever goes into a message or a log.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import ipaddress
import json
import logging
import os
import re
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import httpx

from cockpit.backends.base import INDEX_TYPES, MANIFEST_TYPES, Limiter, Manifest, RegistryError, Spooled

log = logging.getLogger(__name__)

ACCEPT = ", ".join(MANIFEST_TYPES + INDEX_TYPES)
CHUNK = 1 << 20  # bytes read, hashed and counted by the limiter at a time
MAX_MANIFEST = 4 << 20  # docker-registry refuses bigger manifests too
MAX_ERROR_BODY = 64 << 10
MAX_PAGES = 100_000
DIGEST_RE = re.compile(r"^sha256:[0-9a-f]{64}$")
# The distribution spec's repository name and tag grammars: anything else never reaches a URL.
REPO_RE = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$")
TAG_RE = re.compile(r"^\w[\w.-]{0,127}$")
CODE_RE = re.compile(r"^[A-Z][A-Z_]{1,40}$")
_CHALLENGE_PARAM = re.compile(r'(\w+)\s*=\s*(?:"([^"]*)"|([^\s,]+))')


@dataclass
class RegistryStats:
    """What a registry client did: for tests and benchmarks (both implementations keep one)."""

    calls: Counter = field(default_factory=Counter)  # method name -> calls
    uploads: Counter = field(default_factory=Counter)  # digest -> blob uploads completed
    fetches: Counter = field(default_factory=Counter)  # digest -> blob downloads completed
    mounts: Counter = field(default_factory=Counter)  # digest -> cross-repository mounts done
    bytes_pushed: int = 0
    bytes_fetched: int = 0


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def spool_name(digest: str) -> str:
    """The file a blob is spooled to, in the spool directory."""
    return digest.replace(":", "-")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_url(url: str) -> str:
    """scheme://host[:port] of a registry; ValueError when it is not one we may talk to."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError:
        raise ValueError("not a URL (expected scheme://host[:port])") from None
    if parts.username or parts.password:  # checked first: such a URL is never echoed
        raise ValueError("credentials do not go in the URL (use credentials: user_env/password_env or file)")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{url!r} is not an http(s) URL")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ValueError(f"{url!r}: expected scheme://host[:port] and nothing more")
    if parts.scheme == "http" and not is_loopback(parts.hostname):
        raise ValueError(f"{url!r}: http only for a loopback registry; use https")
    return f"{parts.scheme}://{parts.netloc}"


def parse_challenge(headers: list[str]) -> tuple[str, dict[str, str]]:
    """(scheme, params) of a 401's WWW-Authenticate; a Bearer challenge wins over Basic."""
    found = []
    for h in headers:
        scheme, _, rest = h.strip().partition(" ")
        found.append((scheme.lower(), {k.lower(): q or u for k, q, u in _CHALLENGE_PARAM.findall(rest)}))
    for scheme, params in found:
        if scheme == "bearer":
            return scheme, params
    return found[0] if found else ("", {})


def check_manifest_digest(registry: str, where: str, ref: str, manifest: Manifest) -> None:
    """A manifest's digest must be that of its bytes (and the digest it is put under, if any)."""
    actual = sha256(manifest.body)
    if actual != manifest.digest:
        raise RegistryError(registry, "DIGEST_MISMATCH", f"{where}: the manifest's bytes hash to {actual}, "
                                                         f"not {manifest.digest}")
    if ref.startswith("sha256:") and ref != actual:
        raise RegistryError(registry, "DIGEST_MISMATCH", f"{where}: the manifest is {actual}, not {ref}")


def _one_line(text: str, limit: int = 300) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _spec_error(body: bytes) -> tuple[str | None, str]:
    """(code, message) of the spec's error body {"errors": [{"code", "message"}]}, if it is one."""
    try:
        errors = json.loads(body).get("errors") or []
        first = errors[0]
        code = str(first.get("code", ""))
        return (code if CODE_RE.match(code) else None), str(first.get("message") or code.lower())
    except (ValueError, AttributeError, IndexError, TypeError):
        return None, ""


class CheckedNames:
    """What both registries (this one and the simulated twin) check of the names a call takes,
    with the spec's codes, and their count of calls."""

    name: str
    stats: RegistryStats
    _lock: threading.Lock | threading.RLock

    def _repo_name(self, repo: str) -> str:
        if not isinstance(repo, str) or len(repo) > 255 or not REPO_RE.match(repo):
            raise RegistryError(self.name, "NAME_INVALID", f"{repo!r} is not a repository name")
        return repo

    def _tag(self, tag: str) -> str:
        if not isinstance(tag, str) or not TAG_RE.match(tag):
            raise RegistryError(self.name, "TAG_INVALID", f"{tag!r} is not a tag")
        return tag

    def _ref(self, ref: str) -> str:
        if isinstance(ref, str) and (TAG_RE.match(ref) or DIGEST_RE.match(ref)):
            return ref
        raise RegistryError(self.name, "TAG_INVALID", f"{ref!r} is neither a tag nor a sha256 digest")

    def _digest(self, digest: str) -> str:
        if isinstance(digest, str) and DIGEST_RE.match(digest):
            return digest
        raise RegistryError(self.name, "DIGEST_INVALID", f"{digest!r} is not a sha256 digest")

    def _count(self, op: str) -> None:
        with self._lock:
            self.stats.calls[op] += 1


class OciRegistry(CheckedNames):
    """One registry over the OCI distribution API; implements backends.base.Registry.

    Basic auth is sent once the registry asks for it; bearer tokens are fetched from the realm
    the registry names (with the same credentials), cached per scope until they expire, and the
    request is retried once with one. Blobs bigger than `chunk_threshold` go up in PATCH chunks
    of `chunk_size` (for registries behind a proxy that limits request bodies)."""

    def __init__(self, name: str, url: str, username: str | None = None, password: str | None = None,
                 timeout_s: float = 30.0, *, page_size: int = 1000, chunk_threshold: int = 64 << 20,
                 chunk_size: int = 32 << 20, clock: Callable[[], float] = time.monotonic):
        self.name = name
        self.url = check_url(url)
        if page_size < 1 or chunk_size < 1 or timeout_s <= 0:
            raise ValueError("page_size, chunk_size and timeout_s must be positive")
        self.page_size = page_size
        self.chunk_threshold = chunk_threshold
        self.chunk_size = chunk_size
        self.stats = RegistryStats()
        self._user = username
        self._password = password or ""
        self._clock = clock
        self._basic = False  # the registry asked for basic auth: send it up front from now on
        self._bearer: dict[str, str] | None = None  # the registry's token challenge, once seen
        self._tokens: dict[str, tuple[str, float]] = {}  # scope -> (token, valid until)
        self._lock = threading.Lock()
        self._client = httpx.Client(base_url=self.url, timeout=httpx.Timeout(timeout_s),
                                    limits=httpx.Limits(max_connections=32, max_keepalive_connections=16))

    def __repr__(self) -> str:  # never the credentials
        return f"OciRegistry({self.name!r}, {self.url!r})"

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> OciRegistry:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # --- the Registry protocol ---------------------------------------------------------------

    def ping(self) -> None:
        self._count("ping")
        with self._request("GET", "/v2/", "") as resp:
            if resp.status_code != 200:
                raise self._fail(resp, "GET", "/v2/")

    def catalog(self) -> list[str]:
        self._count("catalog")
        return self._list("/v2/_catalog", "repositories", "registry:catalog:*", missing_ok=False)

    def tags(self, repo: str) -> list[str]:
        self._count("tags")
        return self._list(f"/v2/{self._repo_name(repo)}/tags/list", "tags", _pull(repo), missing_ok=True)

    def manifest(self, repo: str, ref: str) -> Manifest | None:
        self._count("manifest")
        path = f"/v2/{self._repo_name(repo)}/manifests/{self._ref(ref)}"
        with self._request("GET", path, _pull(repo), headers={"Accept": ACCEPT}, stream=True) as resp:
            if resp.status_code == 404:
                return None
            if resp.status_code != 200:
                raise self._fail(resp, "GET", path)
            body = self._read_bounded(resp, MAX_MANIFEST, "GET", path)
        digest = sha256(body)
        said = resp.headers.get("docker-content-digest")
        if (said and said != digest) or (ref.startswith("sha256:") and ref != digest):
            raise RegistryError(self.name, "DIGEST_MISMATCH",
                                f"GET {path}: the manifest's bytes hash to {digest}, not {said or ref}")
        return Manifest(self._media_type(resp, body, path), digest, body)

    def put_manifest(self, repo: str, ref: str, manifest: Manifest) -> None:
        self._count("put_manifest")
        path = f"/v2/{self._repo_name(repo)}/manifests/{self._ref(ref)}"
        check_manifest_digest(self.name, f"PUT {path}", ref, manifest)
        with self._request("PUT", path, _push(repo), headers={"Content-Type": manifest.media_type},
                           body=lambda: manifest.body) as resp:
            if resp.status_code not in (200, 201):
                raise self._fail(resp, "PUT", path)
            said = resp.headers.get("docker-content-digest")
        if said and said != manifest.digest:
            raise RegistryError(self.name, "DIGEST_MISMATCH", f"PUT {path}: the registry stored it as {said}")

    def delete_manifest(self, repo: str, digest: str) -> None:
        """Gone already (404) counts as done, so a resumed deletion does not fail."""
        self._count("delete_manifest")
        path = f"/v2/{self._repo_name(repo)}/manifests/{self._digest(digest)}"
        with self._request("DELETE", path, f"repository:{repo}:delete") as resp:
            if resp.status_code not in (200, 202, 404):
                raise self._fail(resp, "DELETE", path)

    def has_blob(self, repo: str, digest: str) -> bool:
        self._count("has_blob")
        path = f"/v2/{self._repo_name(repo)}/blobs/{self._digest(digest)}"
        with self._request("HEAD", path, _pull(repo), follow=True) as resp:
            if resp.status_code == 404:
                return False
            if resp.status_code != 200:
                raise self._fail(resp, "HEAD", path)
            return True

    def mount_blob(self, repo: str, digest: str, from_repo: str) -> bool:
        self._count("mount_blob")
        if from_repo == repo:
            return self.has_blob(repo, digest)
        path = f"/v2/{self._repo_name(repo)}/blobs/uploads/"
        scope = f"{_push(repo)} {_pull(self._repo_name(from_repo))}"
        url = httpx.URL(path, params={"mount": self._digest(digest), "from": from_repo})
        with self._request("POST", url, scope) as resp:
            if resp.status_code == 201:
                with self._lock:
                    self.stats.mounts[digest] += 1
                return True
            if resp.status_code != 202:
                raise self._fail(resp, "POST", path)
            location = self._location(resp, "POST", path)
        self._cancel(location, repo)  # the registry opened a plain upload instead: not wanted
        return False

    def fetch_blob(self, repo: str, digest: str, spool_dir: str, limiter: Limiter | None = None) -> Spooled:
        """Spool a blob to spool_dir/<sha256-hex>, hashing it on the way; a file already there is
        complete (only a verified download is renamed to that name) and is not fetched again."""
        self._count("fetch_blob")
        final = os.path.join(spool_dir, spool_name(self._digest(digest)))
        if os.path.isfile(final):
            return Spooled(digest, os.path.getsize(final), final)
        os.makedirs(spool_dir, exist_ok=True)
        fd, part = tempfile.mkstemp(dir=spool_dir, prefix=".part-")
        try:
            with os.fdopen(fd, "wb") as out:
                size = self._download(repo, digest, out, limiter)
            os.replace(part, final)
        except BaseException:
            os.unlink(part)
            raise
        with self._lock:
            self.stats.fetches[digest] += 1
            self.stats.bytes_fetched += size
        return Spooled(digest, size, final)

    def push_blob(self, repo: str, blob: Spooled, limiter: Limiter | None = None) -> None:
        self._count("push_blob")
        if blob.path is None:
            raise ValueError(f"{self.name}: push_blob needs a spooled file, and {blob.digest} has none")
        digest, size = self._digest(blob.digest), os.path.getsize(blob.path)
        path = f"/v2/{self._repo_name(repo)}/blobs/uploads/"
        with self._request("POST", path, _push(repo)) as resp:
            if resp.status_code != 202:
                raise self._fail(resp, "POST", path)
            location = self._location(resp, "POST", path)
        try:
            if size > self.chunk_threshold:
                location = self._patch_chunks(repo, location, blob.path, size, limiter)
                self._finish_upload(repo, location, digest, blob.path, 0, limiter)
            else:
                self._finish_upload(repo, location, digest, blob.path, size, limiter)
        except RegistryError as e:
            if e.code != "CONNECTION":
                self._cancel(location, repo)
            raise
        with self._lock:
            self.stats.uploads[digest] += 1
            self.stats.bytes_pushed += size

    # --- blobs ---------------------------------------------------------------------------------

    def _download(self, repo: str, digest: str, out, limiter: Limiter | None) -> int:
        path = f"/v2/{self._repo_name(repo)}/blobs/{digest}"
        h, size = hashlib.sha256(), 0
        with self._request("GET", path, _pull(repo), headers={"Accept-Encoding": "identity"}, stream=True,
                           follow=True) as resp:
            if resp.status_code != 200:
                raise self._fail(resp, "GET", path)
            try:
                for chunk in resp.iter_bytes(CHUNK):
                    if limiter is not None:
                        limiter.take(len(chunk))
                    h.update(chunk)
                    out.write(chunk)
                    size += len(chunk)
            except httpx.HTTPError as e:
                raise self._connection("GET", path, e, f" after {size} bytes") from None
        got = "sha256:" + h.hexdigest()
        if got != digest:
            raise RegistryError(self.name, "DIGEST_MISMATCH", f"GET {path}: the {size} bytes received hash to {got}")
        return size

    def _patch_chunks(self, repo: str, location: httpx.URL, path: str, size: int,
                      limiter: Limiter | None) -> httpx.URL:
        for start in range(0, size, self.chunk_size):
            n = min(self.chunk_size, size - start)
            headers = {"Content-Type": "application/octet-stream", "Content-Range": f"{start}-{start + n - 1}",
                       "Content-Length": str(n)}
            with self._request("PATCH", location, _push(repo), headers=headers,
                               body=lambda s=start, k=n: _file_chunks(path, s, k, limiter)) as resp:
                if resp.status_code != 202:
                    raise self._fail(resp, "PATCH", location.path)
                location = self._location(resp, "PATCH", location.path)
        return location

    def _finish_upload(self, repo: str, location: httpx.URL, digest: str, path: str, size: int,
                       limiter: Limiter | None) -> None:
        """PUT the upload's last bytes (all of them, for a monolithic upload) with its digest.
        The digest is merged into the Location's query: it carries the upload's state."""
        url = location.copy_merge_params({"digest": digest})
        headers = {"Content-Type": "application/octet-stream", "Content-Length": str(size)}
        with self._request("PUT", url, _push(repo), headers=headers,
                           body=lambda: _file_chunks(path, 0, size, limiter)) as resp:
            if resp.status_code not in (201, 204):
                raise self._fail(resp, "PUT", location.path)

    def _cancel(self, location: httpx.URL, repo: str) -> None:
        """Best effort: an upload left open is purged by the registry after a while anyway."""
        try:
            with self._request("DELETE", location, _push(repo)) as resp:
                if resp.status_code not in (200, 204, 404):
                    log.debug("%s: cancelling upload %s: HTTP %s", self.name, location.path, resp.status_code)
        except RegistryError as e:
            log.debug("%s: cancelling upload %s: %s", self.name, location.path, e.code)

    def _location(self, resp: httpx.Response, method: str, path: str) -> httpx.URL:
        raw = resp.headers.get("location")
        if not raw:
            raise RegistryError(self.name, "BAD_RESPONSE", f"{method} {path}: no Location for the upload")
        return self._here(raw, method, path)

    def _here(self, raw: str, method: str, path: str) -> httpx.URL:
        """A URL the registry pointed us to (an upload, a next page): it must stay on this
        registry, since it gets our credentials."""
        base = self._client.base_url
        url = base.join(raw)
        if (url.scheme, url.host, url.port) != (base.scheme, base.host, base.port):
            raise RegistryError(self.name, "BAD_RESPONSE",
                                f"{method} {path}: the registry points to another host ({url.host}); not followed")
        return url

    # --- lists ---------------------------------------------------------------------------------

    def _list(self, path: str, key: str, scope: str, missing_ok: bool) -> list[str]:
        """Every page of a catalog or tag list, following the Link header's next page."""
        out: list[str] = []
        url: str | httpx.URL = httpx.URL(path, params={"n": self.page_size})
        seen: set[str] = set()
        for _ in range(MAX_PAGES):
            with self._request("GET", url, scope) as resp:
                if resp.status_code == 404 and missing_ok:
                    return []
                if resp.status_code != 200:
                    raise self._fail(resp, "GET", path)
                page = self._json(resp, "GET", path).get(key) or []
                nxt = resp.links.get("next", {}).get("url")
            if not isinstance(page, list) or not all(isinstance(x, str) for x in page):
                raise RegistryError(self.name, "BAD_RESPONSE", f"GET {path}: {key} is not a list of names")
            out += page
            if not nxt:
                return out
            if nxt in seen:
                raise RegistryError(self.name, "BAD_RESPONSE", f"GET {path}: the pages loop")
            seen.add(nxt)
            url = self._here(nxt, "GET", path)
        raise RegistryError(self.name, "BAD_RESPONSE", f"GET {path}: more than {MAX_PAGES} pages")

    # --- requests, auth and errors -------------------------------------------------------------

    @contextlib.contextmanager
    def _request(self, method: str, url: str | httpx.URL, scope: str, *, headers: dict | None = None,
                 body: Callable[[], bytes | Iterator[bytes]] | None = None, stream: bool = False,
                 follow: bool = False) -> Iterator[httpx.Response]:
        """Send a request with what auth the registry asked for; on a 401 that a token or basic
        credentials can answer, once more. Closes the response when the `with` ends."""
        resp = self._send(method, url, scope, headers, body, stream, follow)
        try:
            yield resp
        finally:
            resp.close()

    def _send(self, method: str, url: str | httpx.URL, scope: str, headers: dict | None,
              body: Callable[[], bytes | Iterator[bytes]] | None, stream: bool, follow: bool) -> httpx.Response:
        for attempt in (0, 1):
            hdrs = dict(headers or {})
            auth = self._auth_header(scope)
            if auth:
                hdrs["Authorization"] = auth
            request = self._client.build_request(method, url, headers=hdrs, content=body() if body else None)
            try:
                resp = self._client.send(request, stream=True, follow_redirects=follow)
            except httpx.HTTPError as e:
                raise self._connection(method, request.url.path, e) from None
            if resp.status_code != 401 or attempt == 1 or not self._authenticate(resp, scope):
                if not stream:
                    try:
                        resp.read()
                    except httpx.HTTPError as e:
                        resp.close()
                        raise self._connection(method, request.url.path, e) from None
                return resp
            resp.close()
        raise AssertionError("unreachable")

    def _auth_header(self, scope: str) -> str | None:
        with self._lock:
            bearer = self._bearer
            token = self._tokens.get(scope)
        if bearer is not None:
            if not token or token[1] <= self._clock():
                # Asked for up front: saves each new scope a round trip through a 401.
                self._fetch_token(dict(bearer, scope=scope), scope)
                with self._lock:
                    token = self._tokens[scope]
            return f"Bearer {token[0]}"
        if self._basic and self._user is not None:
            return "Basic " + base64.b64encode(f"{self._user}:{self._password}".encode()).decode()
        return None

    def _authenticate(self, resp: httpx.Response, scope: str) -> bool:
        """Learn from a 401 how to authenticate; True when the request is worth sending again."""
        kind, params = parse_challenge(resp.headers.get_list("www-authenticate"))
        if kind == "basic":
            if self._user is None or self._basic:
                return False
            self._basic = True
            return True
        if kind != "bearer":
            return False
        with self._lock:
            self._bearer = params
        self._fetch_token(params, scope)
        return True

    def _fetch_token(self, params: dict[str, str], scope: str) -> None:
        realm = params.get("realm", "")
        try:
            parts = urlsplit(realm)
            secure = parts.scheme == "https" or (parts.scheme == "http" and is_loopback(parts.hostname or ""))
        except ValueError:
            secure = False
        if not secure:
            raise RegistryError(self.name, "UNAUTHORIZED",
                                "the token realm is not an https URL (or http on loopback): credentials not sent")
        query = [("service", params["service"])] if params.get("service") else []
        query += [("scope", s) for s in (params.get("scope") or scope).split()]
        if self._user is not None:
            query.append(("account", self._user))
        auth = httpx.BasicAuth(self._user, self._password) if self._user is not None else None
        where = f"{parts.path or '/'} (token service)"
        try:
            resp = self._client.get(realm, params=query, auth=auth)
        except httpx.HTTPError as e:
            raise self._connection("GET", where, e) from None
        if resp.status_code != 200:
            raise self._fail(resp, "GET", where)
        doc = self._json(resp, "GET", where)
        token = doc.get("token") or doc.get("access_token")
        if not isinstance(token, str) or not token:
            raise RegistryError(self.name, "BAD_RESPONSE", f"GET {where}: no token in the answer")
        try:
            life = min(max(int(doc.get("expires_in") or 60), 1), 86400)
        except (TypeError, ValueError):
            life = 60
        # Renewed a little early: a token must not expire between our check and the registry's.
        with self._lock:
            self._tokens[scope] = (token, self._clock() + max(life - 10, life * 0.5))
        log.debug("%s: got a token for %r, valid %d s", self.name, scope, life)

    def _fail(self, resp: httpx.Response, method: str, path: str) -> RegistryError:
        """The registry's refusal as a RegistryError: its spec code when it gave one."""
        status = resp.status_code
        try:
            body = self._read_bounded(resp, MAX_ERROR_BODY, method, path, quiet=True)
        except RegistryError:
            body = b""
        code, message = _spec_error(body)
        if code is None:
            code, message = f"HTTP_{status}", resp.reason_phrase or "error"
        if status == 401:
            message += "; no credentials are configured" if self._user is None else "; the credentials were refused"
        retry = status >= 500 or status == 429
        return RegistryError(self.name, code, _one_line(f"{method} {path}: {message} (HTTP {status})"), status, retry)

    def _connection(self, method: str, path: str, e: Exception, extra: str = "") -> RegistryError:
        """A transfer that broke (refused, cut, timed out): worth another try. Any other httpx
        failure (a redirect loop, a body that does not decode) is the registry's bad answer."""
        why = _one_line(str(e) or type(e).__name__, 160)
        if not isinstance(e, httpx.TransportError):
            return RegistryError(self.name, "BAD_RESPONSE", f"{method} {path}: {why}{extra}")
        return RegistryError(self.name, "CONNECTION", f"{method} {path}: {type(e).__name__}: {why}{extra}",
                             None, retry=True)

    def _read_bounded(self, resp: httpx.Response, limit: int, method: str, path: str, quiet: bool = False) -> bytes:
        if resp.is_stream_consumed:
            return resp.content[:limit]
        data = bytearray()
        try:
            for chunk in resp.iter_bytes():
                data += chunk
                if len(data) > limit:
                    if quiet:
                        return bytes(data[:limit])
                    raise RegistryError(self.name, "BAD_RESPONSE", f"{method} {path}: more than {limit} bytes")
        except httpx.HTTPError as e:
            raise self._connection(method, path, e) from None
        return bytes(data)

    def _json(self, resp: httpx.Response, method: str, path: str) -> dict:
        try:
            doc = json.loads(self._read_bounded(resp, MAX_MANIFEST, method, path))
        except ValueError:
            doc = None
        if not isinstance(doc, dict):
            raise RegistryError(self.name, "BAD_RESPONSE", f"{method} {path}: the answer is not a JSON object")
        return doc

    def _media_type(self, resp: httpx.Response, body: bytes, path: str) -> str:
        media = resp.headers.get("content-type", "").split(";")[0].strip()
        if media in MANIFEST_TYPES + INDEX_TYPES:
            return media
        try:
            media = str(json.loads(body).get("mediaType", media))
        except (ValueError, AttributeError):
            pass
        if media in MANIFEST_TYPES + INDEX_TYPES:
            return media
        raise RegistryError(self.name, "UNSUPPORTED", f"GET {path}: a manifest of type {media or 'unknown'!r}")


def _pull(repo: str) -> str:
    return f"repository:{repo}:pull"


def _push(repo: str) -> str:
    return f"repository:{repo}:pull,push"


def _file_chunks(path: str, offset: int, length: int, limiter: Limiter | None) -> Iterator[bytes]:
    """`length` bytes of a file from `offset`, a chunk at a time, each let through by the limiter."""
    with open(path, "rb") as f:
        f.seek(offset)
        left = length
        while left > 0:
            chunk = f.read(min(CHUNK, left))
            if not chunk:
                raise OSError(f"{path}: shorter than the {length} bytes to send")
            if limiter is not None:
                limiter.take(len(chunk))
            left -= len(chunk)
            yield chunk
