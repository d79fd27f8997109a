"""Registry replication, decided: what a policy must copy, what is a conflict, the sync matrix,
and what sharing layers saves. Pure: it takes what each registry holds and returns decisions.

A registry's contents are {repository: {tag: digest}}. A tag at the destination with the
source's digest is in sync and left alone; one that is missing is copied; one with another
digest is a conflict, copied over only when the policy says override (never between dual
masters: there neither side is the truth, and a person decides).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from fnmatch import fnmatchcase

Contents = Mapping[str, Mapping[str, str]]  # repository -> tag -> digest


def allowed(name: str, include: Iterable[str], exclude: Iterable[str]) -> bool:
    """A name passes a filter when a glob of `include` matches it and none of `exclude` does."""
    return any(fnmatchcase(name, g) for g in include) and not any(fnmatchcase(name, g) for g in exclude)


@dataclass(frozen=True)
class Step:
    """One task of an execution: an image (repository:tag) to one destination."""

    repo: str
    tag: str
    destination: str
    digest: str  # the source's
    action: str  # copy | overwrite | delete | conflict
    found: str | None = None  # what the destination holds now, when anything


def plan(policy, source: Contents, destinations: Mapping[str, Contents], *, dual: bool = False,
         only: Iterable[tuple[str, str]] | None = None) -> list[Step]:
    """The steps that bring each destination in line with the source under `policy` (its
    repository and tag filters, override and deletions). `only` limits it to some images (an
    event names the image pushed). `dual`: source and destinations are dual masters."""
    wanted = set(only) if only is not None else None
    rf, tf = policy.repositories, policy.tags
    steps: list[Step] = []
    for dest in policy.destinations:
        held = destinations.get(dest, {})
        for repo in sorted(source):
            if not allowed(repo, rf.include, rf.exclude):
                continue
            for tag, digest in sorted(source[repo].items()):
                if not allowed(tag, tf.include, tf.exclude) or (wanted is not None and (repo, tag) not in wanted):
                    continue
                found = held.get(repo, {}).get(tag)
                if found == digest:
                    continue
                if found is None:
                    steps.append(Step(repo, tag, dest, digest, "copy"))
                elif policy.override and not dual:
                    steps.append(Step(repo, tag, dest, digest, "overwrite", found))
                else:
                    steps.append(Step(repo, tag, dest, digest, "conflict", found))
        if policy.deletions and not dual and wanted is None:
            for repo in sorted(held):
                if not allowed(repo, rf.include, rf.exclude):
                    continue
                for tag, found in sorted(held[repo].items()):
                    if allowed(tag, tf.include, tf.exclude) and tag not in source.get(repo, {}):
                        steps.append(Step(repo, tag, dest, "", "delete", found))
    return steps


# --- the matrix of images x registries -------------------------------------------------------------


@dataclass(frozen=True)
class Cell:
    state: str  # in_sync | behind | missing | failed | conflict | source
    digest: str | None = None
    lag_s: float | None = None  # behind: since when the source has had it
    note: str = ""


def matrix(images: Iterable[tuple[str, str]], registries: list[str], truth: Mapping[tuple[str, str], tuple[str, str, float]],
           held: Mapping[str, Contents], failed: Mapping[tuple[str, str, str], str], now: float,
           conflicts: Mapping[tuple[str, str, str], str] | None = None) -> dict[tuple[str, str], dict[str, Cell]]:
    """For every image (repo, tag) and registry, its state. `truth[(repo, tag)]` is (registry,
    digest, since): where the image comes from and when it got there; `failed[(repo, tag,
    registry)]` the last failure of a copy there; `conflicts` the conflicts met."""
    conflicts = conflicts or {}
    out: dict[tuple[str, str], dict[str, Cell]] = {}
    for repo, tag in images:
        origin = truth.get((repo, tag))
        row: dict[str, Cell] = {}
        for reg in registries:
            have = held.get(reg, {}).get(repo, {}).get(tag)
            if origin is not None and reg == origin[0]:
                row[reg] = Cell("source", have)
            elif (repo, tag, reg) in conflicts or (origin is not None and have is not None and have != origin[1]):
                row[reg] = Cell("conflict", have, note=conflicts.get((repo, tag, reg), ""))
            elif origin is not None and have == origin[1]:
                row[reg] = Cell("in_sync", have)
            elif (repo, tag, reg) in failed:
                row[reg] = Cell("failed", have, note=failed[(repo, tag, reg)])
            elif origin is not None:
                row[reg] = Cell("behind", have, lag_s=max(now - origin[2], 0.0))
            else:
                row[reg] = Cell("missing" if have is None else "in_sync", have)
        out[(repo, tag)] = row
    return out


# --- layers ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LayerUse:
    digest: str
    size: int
    images: tuple[str, ...]  # "repo:tag" of every image that has it


@dataclass(frozen=True)
class Sharing:
    layers: list[LayerUse]
    stored: int  # bytes a registry holds for all the images (each layer once)
    unshared: int  # what it would hold if images shared nothing
    saved_storage: int  # unshared - stored
    saved_transfer: int  # bytes one replication of every image does not move (the same, per destination)


def sharing(images: Mapping[str, Iterable[tuple[str, int]]]) -> Sharing:
    """`images`: "repo:tag" -> its blobs (digest, size). What sharing layers saves."""
    users: dict[str, list[str]] = {}
    size: dict[str, int] = {}
    for image, blobs in images.items():
        for digest, n in blobs:
            users.setdefault(digest, []).append(image)
            size[digest] = int(n)
    layers = sorted((LayerUse(d, size[d], tuple(sorted(u))) for d, u in users.items()),
                    key=lambda x: (-len(x.images), -x.size, x.digest))
    stored = sum(size.values())
    unshared = sum(size[d] * len(u) for d, u in users.items())
    return Sharing(layers, stored, unshared, unshared - stored, unshared - stored)
