"""Replication on real registries against skopeo. Prints one JSON object.

30 images (15 repositories x 2 tags) of 4 to 6 layers that share what real images share: one base
OS layer, a runtime (3 kinds), a web container (2 of 3 kinds), a repository's dependencies (both
its tags), and one or two layers of business code. They are pushed to one docker-registry and
replicated down a hierarchy of three others on loopback: reg-a -> reg-b -> (reg-c, reg-d).

bytes_moved: blob bytes Cockpit uploaded (its clients count them; the executions record the same).
bytes_needed: the sizes of the blobs each destination lacked (all of them were empty).
wall_s: from queuing the first execution to the end of the last, planning included. Cockpit runs
as its engine does, on the replicator's thread: one execution per hop, queued together (the lower
one follows the upper, copying each image on as soon as it has landed on reg-b). Each is measured
in three interleaved rounds, into fresh destinations each time; medians are printed.
skopeo_wall_s: the same images down the same hierarchy into fresh registries, the faster of
`skopeo sync` (one run per hop, the two lower hops at once) and one `skopeo copy` per image (as
many at once as Cockpit's concurrency limit). Both retry a failed request up to 3 times, as
Cockpit does: a registry under concurrent pushes of one blob sometimes answers 500.
ratio: wall_s / skopeo_wall_s.
cpu: core-seconds of Cockpit's process, of skopeo's, and of the registries under each (read from
/proc): on a small machine the registries' own work bounds how fast any client can be.

Goals: bytes_moved == bytes_needed; ratio <= 0.5.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import yaml  # noqa: E402

from cockpit import world as world_mod  # noqa: E402
from cockpit.domain import DEFAULT_CONCURRENCY  # noqa: E402
from cockpit.engine.registry_watch import queue  # noqa: E402
from cockpit.engine.replication import Replicator  # noqa: E402
from cockpit.engine.seed import ensure_seeded  # noqa: E402
from cockpit.store.db import open_store  # noqa: E402
from cockpit.store.models import ReplicationRow  # noqa: E402
from tests.registries import DockerRegistry, Image, make_image, push_image, random_layer, skopeo  # noqa: E402

MB = 1024 * 1024
REPOS = [f"svc-{i:02d}" for i in range(15)]
TAGS = ["2026.11.25", "2026.11.26"]
ROUNDS = 3  # each measured this often, interleaved; the medians are printed
HOPS = [("reg-a", ("reg-b",)), ("reg-b", ("reg-c", "reg-d"))]
TOPOLOGY = """registries:
  - {name: reg-a, idc: yf, role: master}
  - {name: reg-b, idc: yf, role: slave, replicates_from: reg-a}
  - {name: reg-c, idc: ali, role: slave, replicates_from: reg-b}
  - {name: reg-d, idc: ali, role: slave, replicates_from: reg-b}
"""


def images() -> dict[tuple[str, str], Image]:
    base = random_layer(6 * MB, "debian")
    runtimes = [random_layer(4 * MB, f"runtime-{k}") for k in ("jdk", "php", "python")]
    webs = [random_layer(2 * MB, f"web-{k}") for k in ("tomcat", "nginx", "gunicorn")]
    out = {}
    for i, repo in enumerate(REPOS):
        deps = random_layer(1 * MB + 40_000 * i, f"{repo}/deps")
        web = [webs[i % 3]] if i % 5 else []  # a few images run without a web container
        for j, tag in enumerate(TAGS):
            code = [random_layer(300_000 + 20_000 * (i + k), f"{repo}:{tag}/code-{k}") for k in range(1 + (i + j) % 2)]
            out[(repo, tag)] = make_image([base, runtimes[i % 3], *web, deps, *code], note=f"{repo}:{tag}")
    return out


def start(root: Path, name: str) -> DockerRegistry:
    return DockerRegistry(root / name, name=name).start()


def cpu_s(pid: int) -> float:
    """User and system time of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children_cpu_s() -> float:
    t = os.times()
    return t.children_user + t.children_system


def fresh(root: Path, src: DockerRegistry) -> dict[str, DockerRegistry]:
    """The source and three empty destinations under `root`."""
    return {"reg-a": src} | {n: start(root, n) for n in ("reg-b", "reg-c", "reg-d")}


def measured(regs: dict[str, DockerRegistry], run) -> dict:
    """run() timed, with the CPU of this process, of finished children (skopeo) and of the
    registries meanwhile; the destinations are stopped after."""
    before = {n: cpu_s(r.pid) for n, r in regs.items()}
    own, kids = os.times(), children_cpu_s()
    start_t = time.perf_counter()
    try:
        extra = run() or {}
        wall = time.perf_counter() - start_t
        done = os.times()
        return {"wall": wall, "cpu_self": done.user + done.system - own.user - own.system,
                "cpu_skopeo": children_cpu_s() - kids,
                "cpu_registries": sum(cpu_s(r.pid) - before[n] for n, r in regs.items()), **extra}
    finally:
        for n in ("reg-b", "reg-c", "reg-d"):
            regs[n].stop()


def run_cockpit(root: Path, src: DockerRegistry) -> dict:
    regs = fresh(root, src)
    world = world_mod.loads(_world_text(), "bench.yaml")
    db = open_store(str(root / "store.db"))
    ensure_seeded(db, world)
    clients = {n: r.client(name=n) for n, r in regs.items()}
    rep = Replicator(db, world, clients, spool_dir=root / "spool")
    rep.upkeep()  # its first health check and scan, before the clock starts: an engine already running
    rep.start()

    def hops() -> dict:
        with db.atomic():
            exs = [queue(source, "manual", "bench", 0, time.time()) for source, _ in HOPS]
        rep.kick()
        if not rep.wait_over(exs, 600):
            raise SystemExit("bench: the replications did not end within 600 s")
        for ex, (source, _) in zip(exs, HOPS):
            row = ReplicationRow.get_by_id(ex)
            if row.state != "succeeded":
                raise SystemExit(f"bench: execution of {source} {row.state}: {row.error}")
        return {"moved": sum(c.stats.bytes_pushed for c in clients.values()),
                "recorded": sum(r.bytes_moved for r in ReplicationRow.select())}

    try:
        return measured(regs, hops)
    finally:
        rep.stop()
        db.close()


def _world_text() -> str:
    text = (ROOT / "tests" / "data" / "small-world.yaml").read_text()
    return text[:text.index("registries:")] + TOPOLOGY + text[text.index("templates:"):]


def run_skopeo_sync(root: Path, src: DockerRegistry, home: Path) -> dict:
    regs = fresh(root, src)

    def hop(source: str, dest: str) -> None:
        host = regs[source].url.removeprefix("http://")
        spec = root / f"sync-{source}-{dest}.yaml"
        spec.write_text(yaml.safe_dump({host: {"tls-verify": False, "images": {r: TAGS for r in REPOS}}}))
        r = skopeo("sync", "--retry-times=3", "--src", "yaml", "--dest", "docker", "--dest-tls-verify=false", str(spec),
                   regs[dest].url.removeprefix("http://"), home=home, timeout_s=600)
        if r.returncode != 0:
            raise SystemExit(f"bench: skopeo sync {source} -> {dest}: {r.stderr.strip()[-400:]}")

    def hops() -> None:
        with ThreadPoolExecutor(2) as pool:  # the two lower hops at once
            for source, dests in HOPS:
                list(pool.map(lambda d: hop(source, d), dests))

    return measured(regs, hops)


def run_skopeo_copy(root: Path, src: DockerRegistry, home: Path) -> dict:
    regs = fresh(root, src)

    def copy(source: str, dest: str, repo: str, tag: str) -> None:
        s, d = (regs[x].url.removeprefix("http://") for x in (source, dest))
        r = skopeo("copy", "--retry-times=3", "--src-tls-verify=false", "--dest-tls-verify=false", f"docker://{s}/{repo}:{tag}",
                   f"docker://{d}/{repo}:{tag}", home=home, timeout_s=600)
        if r.returncode != 0:
            raise SystemExit(f"bench: skopeo copy {source} -> {dest} {repo}:{tag}: {r.stderr.strip()[-400:]}")

    def hops() -> None:
        with ThreadPoolExecutor(DEFAULT_CONCURRENCY) as pool:
            for source, dests in HOPS:  # a hop starts when the one above it is done, as with Cockpit
                jobs = [(source, d, repo, tag) for d in dests for repo in REPOS for tag in TAGS]
                list(pool.map(lambda a: copy(*a), jobs))

    return measured(regs, hops)


def median(runs: list[dict], key: str) -> float:
    return statistics.median(r[key] for r in runs)


def main() -> None:
    runs: dict[str, list[dict]] = {"cockpit": [], "sync": [], "copy": []}
    with tempfile.TemporaryDirectory(prefix="cockpit-bench-repl-") as tmp:
        root = Path(tmp)
        home = root / "home"
        home.mkdir()
        src = start(root, "reg-a")
        try:
            all_images = images()
            source = src.client()
            for (repo, tag), image in all_images.items():
                push_image(source, repo, tag, image, root / "work")
            for i in range(ROUNDS):  # interleaved: a slow moment of the machine falls on all three alike
                runs["cockpit"].append(run_cockpit(root / f"cockpit-{i}", src))
                runs["sync"].append(run_skopeo_sync(root / f"sync-{i}", src, home))
                runs["copy"].append(run_skopeo_copy(root / f"copy-{i}", src, home))
        finally:
            src.stop()
    sizes = {d: len(b) for image in all_images.values() for d, b in image.blobs.items()}
    needed = 3 * sum(sizes.values())  # every destination started empty and lacked every blob
    moved = max(r["moved"] for r in runs["cockpit"])
    wall, sync_s, copy_s = (median(runs[k], "wall") for k in ("cockpit", "sync", "copy"))
    best = "sync" if sync_s <= copy_s else "copy"
    skopeo_s = min(sync_s, copy_s)
    print(json.dumps({
        "images": len(all_images),
        "layers_per_image": round(sum(len(i.layers) for i in all_images.values()) / len(all_images), 2),
        "distinct_blobs": len(sizes),
        "rounds": ROUNDS,
        "bytes_moved": moved,
        "bytes_recorded": max(r["recorded"] for r in runs["cockpit"]),
        "bytes_needed": needed,
        "bytes_if_unshared": 3 * sum(sizes[d] for i in all_images.values() for d in i.blobs),
        "wall_s": round(wall, 3),
        "skopeo_sync_s": round(sync_s, 3),
        "skopeo_copy_s": round(copy_s, 3),
        "skopeo_wall_s": round(skopeo_s, 3),
        "ratio": round(wall / skopeo_s, 3),
        "cpu_s": {"cockpit": round(median(runs["cockpit"], "cpu_self"), 2),
                  "registries_under_cockpit": round(median(runs["cockpit"], "cpu_registries"), 2),
                  "skopeo": round(median(runs[best], "cpu_skopeo"), 2),
                  "registries_under_skopeo": round(median(runs[best], "cpu_registries"), 2),
                  "cores": os.cpu_count()},
        "goals_met": all(r["moved"] == needed for r in runs["cockpit"]) and wall / skopeo_s <= 0.5,
    }))


if __name__ == "__main__":
    main()
