"""Images as registries hold them: blobs named by the sha256 of their bytes, and manifests that
list them. For the simulated platform, a world image's blobs are derived from its layers' names
and sizes, so the same image has the same digest wherever and whenever it is built."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable

MIB = 1024 * 1024
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"

Blob = tuple[str, int]  # (digest, size)


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def layer_blob(name: str, size_mb: float) -> Blob:
    """A world layer (a base OS, a JDK, business code): the same blob in every image that has it."""
    return sha256(f"cockpit-layer:{name}".encode()), int(size_mb * MIB)


def config_blob(ref: str, variant: str = "") -> Blob:
    """An image's config: its own, so two images (or two variants of one) differ."""
    return sha256(f"cockpit-config:{ref}:{variant}".encode()), 2048


def docker_manifest(config: Blob, layers: Iterable[Blob]) -> tuple[bytes, str]:
    """A Docker v2 schema 2 manifest's bytes and digest."""
    body = json.dumps({
        "schemaVersion": 2,
        "mediaType": DOCKER_MANIFEST,
        "config": {"mediaType": DOCKER_CONFIG, "size": config[1], "digest": config[0]},
        "layers": [{"mediaType": DOCKER_LAYER, "size": n, "digest": d} for d, n in layers],
    }, indent=3).encode()
    return body, sha256(body)


def blobs_of(media_type: str, body: bytes) -> tuple[list[Blob], list[str]]:
    """(blobs: the config then the layers; children: the manifests of an index) of a manifest."""
    doc = json.loads(body)
    if media_type in (OCI_INDEX, DOCKER_LIST) or "manifests" in doc:
        return [], [m["digest"] for m in doc.get("manifests", [])]
    blobs = []
    if doc.get("config"):
        blobs.append((doc["config"]["digest"], int(doc["config"].get("size", 0))))
    blobs += [(x["digest"], int(x.get("size", 0))) for x in doc.get("layers", [])]
    return blobs, []


def world_image(ref: str, layers: Iterable[tuple[str, float]], variant: str = "") -> tuple[list[Blob], bytes, str]:
    """A world image (NAME:TAG and its layers as (name, size in MB)): (blobs, manifest, digest)."""
    config = config_blob(ref, variant)
    blobs = [layer_blob(n, mb) for n, mb in layers]
    body, digest = docker_manifest(config, blobs)
    return [config] + blobs, body, digest
