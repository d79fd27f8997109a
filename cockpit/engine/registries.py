"""The registries the engine replicates between: simulated ones (the default) or real ones over
the OCI distribution API (`backends.registry.kind: oci`). Simulated registries start out holding
what the store says they hold, so a restart changes nothing; the world's images are blobs named
after their layers (core/images.py)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from cockpit.backends.base import Manifest, Registry
from cockpit.core.images import blobs_of, world_image
from cockpit.domain import World
from cockpit.store.models import ManifestRow, RegistryImageRow


class RegistryConfigError(ValueError):
    """A registry cannot be set up from the config; the message names the setting."""


def credentials(name: str, c: dict) -> tuple[str | None, str | None]:
    """(user, password) from where the config says they are: environment variables or a file of
    two lines (user, password). Never from the config itself."""
    if not c:
        return None, None
    if "file" in c:
        try:
            lines = Path(c["file"]).expanduser().read_text().splitlines()
        except OSError as e:
            raise RegistryConfigError(f"backends.registry.registries.{name}.credentials.file: {e.strerror}") from None
        if len(lines) < 2:
            raise RegistryConfigError(f"backends.registry.registries.{name}.credentials.file: expected a user line "
                                      "and a password line")
        return lines[0].strip(), lines[1].strip()
    user, password = os.environ.get(c.get("user_env", "")), os.environ.get(c.get("password_env", ""))
    for key in ("user_env", "password_env"):
        if key in c and not os.environ.get(c[key]):
            raise RegistryConfigError(f"backends.registry.registries.{name}.credentials.{key}: {c[key]} is not set")
    return user, password


def make_registries(settings: dict, world: World, sim_sleep: Callable[[float], None],
                    sim_clock: Callable[[], float] | None = None) -> dict[str, Registry]:
    """One client per registry of the world."""
    if settings.get("kind", "sim") == "oci":
        from cockpit.backends.registry_oci import OciRegistry

        where = settings.get("registries", {})
        out: dict[str, Registry] = {}
        for r in world.registries:
            if r.name not in where:
                raise RegistryConfigError(f"backends.registry.registries.{r.name}: where is this registry? (url)")
            user, password = credentials(r.name, where[r.name].get("credentials", {}))
            try:
                out[r.name] = OciRegistry(r.name, where[r.name]["url"], username=user, password=password)
            except ValueError as e:
                raise RegistryConfigError(f"backends.registry.registries.{r.name}.url: {e}") from None
        return out
    from cockpit.backends.sim.registry import SimRegistry

    return {r.name: SimRegistry(r.name, link_mbps=r.link_mbps, sleep=sim_sleep, **({"clock": sim_clock} if sim_clock else {}))
            for r in world.registries}


def fill_simulated(registries: dict[str, Registry]) -> None:
    """Simulated registries hold what the store says, as the real ones would after a restart."""
    manifests = {m.digest: m for m in ManifestRow.select()}
    for row in RegistryImageRow.select().order_by(RegistryImageRow.id):
        reg, m = registries.get(row.registry), manifests.get(row.digest)
        if reg is None or m is None:
            continue
        put_image(reg, row.repo, row.tag, m, manifests)


def put_image(reg, repo: str, tag: str, m: ManifestRow, manifests: dict[str, ManifestRow]) -> None:
    """Any child manifests, then the manifest under its tag, held at once (a simulated registry)."""
    for child in m.children:
        cm = manifests[child]
        reg.hold(repo, child, Manifest(cm.media_type, cm.digest, cm.body.encode()))
    reg.hold(repo, tag, Manifest(m.media_type, m.digest, m.body.encode()))


def manifest_row(m: Manifest) -> dict:
    """What the store keeps of a manifest: its bytes, and its blobs or children for the views."""
    blobs, children = blobs_of(m.media_type, m.body)
    return {"digest": m.digest, "media_type": m.media_type, "body": m.body.decode(), "blobs": [list(b) for b in blobs],
            "children": children}


def world_manifest(world: World, ref: str, variant: str = "") -> Manifest:
    """A world image as the simulated registries hold it."""
    image = next(i for i in world.images if i.ref == ref)
    sizes = {la.name: la.size_mb for la in world.layers}
    _, body, digest = world_image(ref, [(n, sizes[n]) for n in image.layers], variant)
    from cockpit.core.images import DOCKER_MANIFEST

    return Manifest(DOCKER_MANIFEST, digest, body)
