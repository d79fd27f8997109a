"""A simulated registry: the twin of backends/registry_oci.py for the simulated platform.

It holds real manifests (their JSON bytes and computed digests) but blobs only as digest ->
size, so the simulation can model big layers without moving bytes. A transfer takes size /
bandwidth in simulated time (through the `sleep` it is given), the bandwidth being the lower of
the registry's link and the execution's limiter. It can be taken down (CONNECTION errors) or told
to fail a call, and it refuses what a docker-registry refuses (a manifest naming a blob it lacks,
bytes that do not match their digest), with the same codes.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from cockpit.backends.base import INDEX_TYPES, MANIFEST_TYPES, Limiter, Manifest, RegistryError, Spooled
from cockpit.backends.registry_oci import CHUNK, CheckedNames, RegistryStats, check_manifest_digest, sha256
from cockpit.core.images import DOCKER_LIST, DOCKER_MANIFEST, Blob, blobs_of, config_blob, docker_manifest

OPS = frozenset({"ping", "catalog", "tags", "manifest", "put_manifest", "delete_manifest", "has_blob", "mount_blob",
                 "fetch_blob", "push_blob"})
MAX_CHUNKS = 256  # a big blob moves in at most this many steps (each one a sleep and a limiter take)
_STATUS = {"UNAUTHORIZED": 401, "DENIED": 403, "NAME_UNKNOWN": 404, "MANIFEST_UNKNOWN": 404,
           "BLOB_UNKNOWN": 404, "UNSUPPORTED": 405, "TOOMANYREQUESTS": 429}


@dataclass
class Fault:
    """A failure to inject: the next `times` calls of `op` (a Registry method name, or "*") fail
    with `code`. For fetch_blob and push_blob, `after` is the fraction of the blob moved first
    (a cut mid-blob); 0 fails before anything moves."""

    op: str
    code: str
    status: int | None
    times: int
    after: float
    message: str

    @property
    def retry(self) -> bool:
        return self.code == "CONNECTION" or (self.status is not None and (self.status >= 500 or self.status == 429))


@dataclass
class _Repo:
    manifests: dict[str, Manifest] = field(default_factory=dict)  # digest -> manifest
    tags: dict[str, str] = field(default_factory=dict)  # tag -> digest
    blobs: set[str] = field(default_factory=set)  # digests linked into this repository


class SimRegistry(CheckedNames):
    """An in-memory registry that implements backends.base.Registry.

    `link_mbps`: the bandwidth into and out of it, in megabits per second."""

    def __init__(self, name: str, link_mbps: float = 1000.0, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep):
        if not link_mbps > 0:
            raise ValueError(f"{name}: link_mbps must be positive, not {link_mbps}")
        self.name = name
        self.link_mbps = float(link_mbps)
        self.down = False  # True: every call fails as a connection refused would, and transfers are cut
        self.stats = RegistryStats()
        self._clock = clock
        self._sleep = sleep
        self._repos: dict[str, _Repo] = {}
        self._sizes: dict[str, int] = {}  # every blob held: digest -> size
        self._corrupt: set[str] = set()
        self._faults: list[Fault] = []
        self._lock = threading.RLock()

    def __repr__(self) -> str:
        return f"SimRegistry({self.name!r}, link_mbps={self.link_mbps})"

    # --- making it fail --------------------------------------------------------------------------

    def fail(self, op: str, code: str = "HTTP_500", *, status: int | None = None, times: int = 1,
             after: float = 0.0, message: str = "injected failure") -> Fault:
        """Make the next `times` calls of `op` fail with `code` (see Fault)."""
        if op != "*" and op not in OPS:
            raise ValueError(f"{self.name}: no call named {op!r} to fail (one of {', '.join(sorted(OPS))}, or *)")
        if status is None and code.startswith("HTTP_") and code[5:].isdigit():
            status = int(code[5:])
        elif status is None and code != "CONNECTION":
            status = _STATUS.get(code, 400)
        fault = Fault(op, code, status, times, min(max(after, 0.0), 1.0), message)
        with self._lock:
            self._faults.append(fault)
        return fault

    def corrupt(self, digest: str) -> None:
        """The stored bytes of a blob rot: fetching it ends in DIGEST_MISMATCH."""
        with self._lock:
            self._corrupt.add(digest)

    # --- feeding it (a release appears; not counted as transfers) --------------------------------

    def push_image(self, repo: str, tag: str, layers: list[Blob], config_size: int = 2048,
                   variant: str = "") -> Manifest:
        """A Docker v2 image of these layers under repo:tag, its blobs stored. Its config is named
        after repo:tag and the variant (as core.images.world_image does), so another variant of
        the same image has another digest."""
        self._count("push_image")
        config = (config_blob(f"{repo}:{tag}", variant)[0], int(config_size))
        manifest = self._store_image(repo, config, layers)
        with self._lock:
            self._repo(repo, create=True).tags[self._tag(tag)] = manifest.digest
        return manifest

    def push_index(self, repo: str, tag: str, images: dict[str, list[Blob]], config_size: int = 2048,
                   variant: str = "", media_type: str = DOCKER_LIST) -> Manifest:
        """A multi-arch image: one Docker v2 image per platform ("os/arch" or "os/arch/variant")
        stored by digest, and an index of them (a Docker manifest list unless told) under repo:tag."""
        self._count("push_index")
        if media_type not in INDEX_TYPES:
            raise ValueError(f"{media_type!r} is not an index media type")
        entries = []
        for platform, layers in images.items():
            os_, _, rest = platform.partition("/")
            arch, _, arch_variant = rest.partition("/")
            if not os_ or not arch:
                raise ValueError(f"platform {platform!r}: expected os/arch[/variant]")
            child = self._store_image(repo, (config_blob(f"{repo}:{tag}@{platform}", variant)[0], int(config_size)),
                                      layers)
            entries.append({"mediaType": child.media_type, "size": len(child.body), "digest": child.digest,
                            "platform": {"architecture": arch, "os": os_, **({"variant": arch_variant}
                                                                              if arch_variant else {})}})
        body = json.dumps({"schemaVersion": 2, "mediaType": media_type, "manifests": entries}, indent=3).encode()
        index = Manifest(media_type, sha256(body), body)
        with self._lock:
            r = self._repo(repo, create=True)
            r.manifests[index.digest] = index
            r.tags[self._tag(tag)] = index.digest
        return index

    def hold(self, repo: str, ref: str, manifest: Manifest) -> None:
        """Hold a manifest and its blobs (sizes from its body) at once, as the store says this
        registry does: how an engine that starts finds the simulated registries as they were.
        The manifests of an index are held first, by their digests."""
        self._count("hold")
        blobs, children = blobs_of(manifest.media_type, manifest.body)
        with self._lock:
            r = self._repo(repo, create=True)
            missing = [d for d in children if d not in r.manifests]
            if missing:
                raise ValueError(f"{self.name}: hold the manifests of the index first ({missing[0]})")
            for d, n in blobs:
                self._hold(self._digest(d), int(n))
                r.blobs.add(d)
            r.manifests[manifest.digest] = manifest
            if not self._ref(ref).startswith("sha256:"):
                r.tags[ref] = manifest.digest

    def _store_image(self, repo: str, config: Blob, layers: list[Blob]) -> Manifest:
        body, digest = docker_manifest(config, layers)
        with self._lock:
            r = self._repo(repo, create=True)
            for d, n in [config, *layers]:
                self._hold(self._digest(d), int(n))
                r.blobs.add(d)
            r.manifests[digest] = Manifest(DOCKER_MANIFEST, digest, body)
        return r.manifests[digest]

    # --- the Registry protocol ---------------------------------------------------------------

    def ping(self) -> None:
        self._enter("ping")

    def catalog(self) -> list[str]:
        self._enter("catalog")
        with self._lock:
            return sorted(name for name, r in self._repos.items() if r.manifests or r.blobs)

    def tags(self, repo: str) -> list[str]:
        self._enter("tags")
        with self._lock:
            r = self._repo(repo)
            return sorted(r.tags) if r else []

    def manifest(self, repo: str, ref: str) -> Manifest | None:
        self._enter("manifest")
        with self._lock:
            r = self._repo(repo)
            digest = ref if self._ref(ref).startswith("sha256:") else (r.tags.get(ref) if r else None)
            return r.manifests.get(digest) if r and digest else None

    def put_manifest(self, repo: str, ref: str, manifest: Manifest) -> None:
        self._enter("put_manifest")
        path = f"PUT /v2/{repo}/manifests/{ref}"
        check_manifest_digest(self.name, path, self._ref(ref), manifest)
        blobs, children = self._references(manifest, path)
        with self._lock:
            r = self._repo(repo, create=True)
            missing = [d for d in blobs if d not in r.blobs] + [d for d in children if d not in r.manifests]
            if missing:
                raise RegistryError(self.name, "MANIFEST_BLOB_UNKNOWN",
                                    f"{path}: blob unknown to registry ({missing[0]})", 400)
            r.manifests[manifest.digest] = manifest
            if not ref.startswith("sha256:"):
                r.tags[ref] = manifest.digest

    def delete_manifest(self, repo: str, digest: str) -> None:
        """Gone already counts as done, as with the real client."""
        self._enter("delete_manifest")
        with self._lock:
            r = self._repo(repo)
            if r is None or r.manifests.pop(self._digest(digest), None) is None:
                return
            for tag in [t for t, d in r.tags.items() if d == digest]:
                del r.tags[tag]

    def has_blob(self, repo: str, digest: str) -> bool:
        self._enter("has_blob")
        self._digest(digest)
        with self._lock:
            r = self._repo(repo)
            return r is not None and digest in r.blobs

    def mount_blob(self, repo: str, digest: str, from_repo: str) -> bool:
        self._enter("mount_blob")
        self._digest(digest)
        self._repo_name(repo)
        with self._lock:
            source = self._repo(from_repo)
            if source is None or digest not in source.blobs:
                return False
            if repo != from_repo:
                self._repo(repo, create=True).blobs.add(digest)
                self.stats.mounts[digest] += 1
            return True

    def fetch_blob(self, repo: str, digest: str, spool_dir: str, limiter: Limiter | None = None) -> Spooled:
        """The blob's size after the time its transfer takes (no bytes, no file)."""
        fault = self._enter("fetch_blob", transfer=True)
        path = f"GET /v2/{repo}/blobs/{self._digest(digest)}"
        with self._lock:
            r = self._repo(repo)
            if r is None or digest not in r.blobs:
                raise RegistryError(self.name, "BLOB_UNKNOWN", f"{path}: blob unknown to registry (HTTP 404)", 404)
            size = self._sizes[digest]
        self._transfer(size, limiter, fault, path)
        if digest in self._corrupt:
            raise RegistryError(self.name, "DIGEST_MISMATCH",
                                f"{path}: the {size} bytes received hash to another digest")
        with self._lock:
            self.stats.fetches[digest] += 1
            self.stats.bytes_fetched += size
        return Spooled(digest, size, None)

    def push_blob(self, repo: str, blob: Spooled, limiter: Limiter | None = None) -> None:
        fault = self._enter("push_blob", transfer=True)
        self._repo_name(repo)
        path = f"PUT /v2/{repo}/blobs/uploads/"
        if blob.size < 0:
            raise RegistryError(self.name, "SIZE_INVALID", f"{path}: a blob of {blob.size} bytes", 400)
        with self._lock:
            known = self._sizes.get(self._digest(blob.digest))
        if known is not None and known != blob.size:
            raise RegistryError(self.name, "DIGEST_INVALID",
                                f"{path}: provided digest did not match uploaded content ({blob.size} bytes, "
                                f"not {known})", 400)
        self._transfer(blob.size, limiter, fault, path)
        with self._lock:
            self._hold(blob.digest, blob.size)
            self._repo(repo, create=True).blobs.add(blob.digest)
            self.stats.uploads[blob.digest] += 1
            self.stats.bytes_pushed += blob.size

    # --- time, faults and names --------------------------------------------------------------------

    def _transfer(self, size: int, limiter: Limiter | None, fault: Fault | None, path: str) -> None:
        """Move `size` bytes in simulated time: each step takes as long as the slower of the link
        and the limiter allow (the limiter's own wait counts towards the link's)."""
        rate = self.link_mbps * 1e6 / 8
        step = max(CHUNK, -(-size // MAX_CHUNKS))
        cut = int(size * fault.after) if fault else None
        moved = 0
        while moved < size and (cut is None or moved < cut):
            if self.down:
                raise self._down_error(path, f" after {moved} of {size} bytes")
            n = min(step, size - moved, (cut - moved) if cut is not None else size)
            start = self._clock()
            if limiter is not None:
                limiter.take(n)
            wait = n / rate - (self._clock() - start)
            if wait > 0:
                self._sleep(wait)
            moved += n
        if fault is not None:
            raise self._fault_error(fault, path, f" after {moved} of {size} bytes")

    def _enter(self, op: str, transfer: bool = False) -> Fault | None:
        """Count a call, and fail it when the registry is down or a fault is armed for it. A fault
        that cuts a transfer part-way is returned for the transfer to raise."""
        with self._lock:
            self.stats.calls[op] += 1
            if self.down:
                raise self._down_error(op)
            fault = next((f for f in self._faults if f.op in (op, "*")), None)
            if fault is None:
                return None
            fault.times -= 1
            if fault.times <= 0:
                self._faults.remove(fault)
        if transfer and fault.after > 0:
            return fault
        raise self._fault_error(fault, op)

    def _fault_error(self, fault: Fault, where: str, extra: str = "") -> RegistryError:
        status = f" (HTTP {fault.status})" if fault.status is not None else ""
        return RegistryError(self.name, fault.code, f"{where}: {fault.message}{extra}{status}", fault.status,
                             fault.retry)

    def _down_error(self, where: str, extra: str = "") -> RegistryError:
        return RegistryError(self.name, "CONNECTION", f"{where}: connection refused (the registry is down){extra}",
                             None, retry=True)

    def _references(self, manifest: Manifest, path: str) -> tuple[list[str], list[str]]:
        """(blobs, child manifests) a manifest names; MANIFEST_INVALID when it is not one."""
        try:
            doc = json.loads(manifest.body)
            said = doc.get("mediaType", manifest.media_type)
            blobs, children = blobs_of(manifest.media_type, manifest.body)
        except (ValueError, AttributeError, KeyError, TypeError):
            doc, said = None, None
        if doc is None or manifest.media_type not in MANIFEST_TYPES + INDEX_TYPES or said != manifest.media_type:
            raise RegistryError(self.name, "MANIFEST_INVALID", f"{path}: manifest invalid (HTTP 400)", 400)
        return [d for d, _ in blobs], children

    def _hold(self, digest: str, size: int) -> None:
        if self._sizes.get(digest, size) != size:
            raise ValueError(f"{self.name}: blob {digest} is {self._sizes[digest]} bytes here, not {size}")
        self._sizes[digest] = size

    def _repo(self, repo: str, create: bool = False) -> _Repo | None:
        self._repo_name(repo)
        if create:
            return self._repos.setdefault(repo, _Repo())
        return self._repos.get(repo)
