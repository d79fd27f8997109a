"""A bigger world from the demo world: the same pools, services and templates, with every host
group and every service's containers scaled so the platform has exactly N hosts, optionally in
more IDCs and with more containers.

    python data/gen_world.py --hosts 6000 --out /tmp/hosts_6000.yaml
    python data/gen_world.py --hosts 20000 --idcs 5 --containers 200000 --name world-20k \\
        --out data/world-20k.yaml

The world is named `hosts_<N>` unless `--name` says otherwise (its default store is then its
own, never the demo's). Group counts are rounded by largest remainder so they add up to N;
containers scale by the same factor, and so does each service's traffic, so pools are as full
and as busy as in the demo.

`--idcs` (3 to 8; the demo has 3) adds private IDCs cloned from the demo's second one
(tucheng): the same host groups, containers and a registry that replicates from the main IDC's.

`--containers` sets the containers at the start in all. More containers than the host factor
gives means smaller ones: each service that can share a host (not one bound to host ports,
which runs once per host) gets the same factor more containers, each that much smaller (CPU,
memory and disk divided by it, rounded down so they still fit; its per-host limit multiplied),
so allocation, CPU and traffic stay the demo's. Pool limits follow the containers.

Deterministic: the same arguments make the same file, byte for byte. The file is checked with
the world loader before it is kept. `bench/tui.py` runs it to get its 6,000-host world;
`data/world-20k.yaml` is its output for the second command above.
"""

from __future__ import annotations

import argparse
import copy
import math
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "data" / "demo-world.yaml"
MIN_HOSTS, MAX_HOSTS = 100, 100_000  # the world loader's limit on hosts
MAX_CONTAINERS = 1_000_000  # the world loader's limit on containers at the start
MAX_LIMIT = 1_000_000  # a pool limit's largest value (world.schema.json)
# IDCs added past the demo's three, in order: (name, host-group prefix). Each is a copy of tucheng.
EXTRA_IDCS = (("jiuxianqiao", "jx"), ("xierqi", "xq"), ("yizhuang", "yz"), ("shunyi", "sy"), ("huailai", "hl"))
TEMPLATE_IDC, TEMPLATE_PREFIX, MAIN_REGISTRY = "tucheng", "tc-", "reg-yongfeng"
MIN_IDCS, MAX_IDCS = 3, 3 + len(EXTRA_IDCS)

sys.path.insert(0, str(ROOT))


def _apportion(weights: list[int], total: int) -> list[int]:
    """Integers proportional to `weights`, each at least 1, adding up to `total` (largest remainder)."""
    whole = sum(weights)
    exact = [w * total / whole for w in weights]
    out = [max(1, math.floor(x)) for x in exact]
    order = sorted(range(len(weights)), key=lambda i: exact[i] - math.floor(exact[i]), reverse=True)
    k = 0
    while sum(out) < total:
        out[order[k % len(order)]] += 1
        k += 1
    while sum(out) > total:  # only when the floor of 1 pushed it over: take from the biggest
        out[max(range(len(out)), key=lambda i: out[i])] -= 1
    return out


def with_idcs(data: dict, idcs: int) -> dict:
    """The demo's data with `idcs` IDCs: each one added is a copy of tucheng (host groups,
    containers and the traffic they serve, a registry under the main IDC's that the release
    policy feeds)."""
    for name, prefix in EXTRA_IDCS[: idcs - MIN_IDCS]:
        data["idcs"].append({"name": name, "kind": "private"})
        clones = []
        for g in data["host_groups"]:
            if g["idc"] == TEMPLATE_IDC:
                clone = copy.deepcopy(g)
                clone["idc"] = name
                clone["name"] = prefix + "-" + g["name"].removeprefix(TEMPLATE_PREFIX)
                clones.append(clone)
        data["host_groups"] += clones
        for s in data["services"]:
            if TEMPLATE_IDC in s.get("containers", {}):
                # as much traffic per container as before: the new IDC serves its share
                before = sum(s["containers"].values())
                s["containers"][name] = s["containers"][TEMPLATE_IDC]
                s["traffic"]["peak_qps"] = round(s["traffic"]["peak_qps"] * sum(s["containers"].values()) / before)
        registry = f"reg-{name}"
        data["registries"].append({"name": registry, "idc": name, "role": "slave", "instances": 2,
                                   "replicates_from": MAIN_REGISTRY})
        for policy in data.get("replication", []):
            if policy["source"] == MAIN_REGISTRY and "destinations" in policy:
                policy["destinations"].append(registry)
    return data


def _densify(data: dict, base: int, containers: int) -> float:
    """Scale the containers of services that can share a host so the world has `containers` in
    all, each container as much smaller; returns that factor. Services bound to host ports keep
    their count (one per host already)."""
    fixed = sum(sum(s["containers"].values()) for s in data["services"] if s.get("host_ports"))
    free = base - fixed
    if free <= 0 or containers <= fixed:
        raise ValueError(f"{containers:,} containers cannot be made from this world ({fixed:,} are bound to host ports)")
    factor = (containers - fixed) / free
    slots = [(s, idc) for s in data["services"] if not s.get("host_ports") for idc in s["containers"]]
    counts = _apportion([s["containers"][idc] for s, idc in slots], containers - fixed)
    for (s, idc), n in zip(slots, counts):
        s["containers"][idc] = n
    for s in data["services"]:
        if s.get("host_ports") or factor == 1:
            continue
        for key in ("cpu", "memory_gb", "disk_gb"):  # rounded down: the smaller containers still fit
            if key in s:
                s[key] = max(0.001, math.floor(s[key] / factor * 1000) / 1000)
        placement = s.get("placement", {})
        if "max_per_host" in placement:
            placement["max_per_host"] = math.ceil(placement["max_per_host"] * factor)
    return factor


def scaled(data: dict, hosts: int, containers: int | None = None) -> dict:
    """The world's data with `hosts` hosts; containers, traffic, swaps and pool limits scaled alike.
    With `containers`, that many containers at the start (see _densify)."""
    groups = data["host_groups"]
    counts = _apportion([g["count"] for g in groups], hosts)
    factor = hosts / sum(g["count"] for g in groups)
    for g, n in zip(groups, counts):
        g["count"] = n
    pool_before = _pool_containers(data)
    for s in data["services"]:
        s["containers"] = {idc: int(n * factor) for idc, n in s["containers"].items()}
        s["traffic"]["peak_qps"] = round(s["traffic"]["peak_qps"] * factor)
    if containers is not None:
        _densify(data, sum(sum(s["containers"].values()) for s in data["services"]), containers)
    for w in data.get("swaps", []):
        have = sum(g["count"] for g in groups if g["idc"] == w["idc"] and g["pool"] == w["online_pool"])
        w["hosts"] = max(1, min(have, round(w["hosts"] * factor)))
    pool_after = _pool_containers(data)
    for lim in data.get("scaling", {}).get("pools", []):
        grow = pool_after.get(lim["pool"], 0) / pool_before[lim["pool"]] if pool_before.get(lim["pool"]) else factor
        for key in ("min", "max"):
            if key in lim:
                lim[key] = min(MAX_LIMIT, round(lim[key] * grow))
    data["name"] = f"hosts_{hosts}"
    return data


def _pool_containers(data: dict) -> dict[str, int]:
    out: dict[str, int] = {}
    for s in data["services"]:
        out[s["pool"]] = out.get(s["pool"], 0) + sum(s["containers"].values())
    return out


def world_text(hosts: int, *, idcs: int = MIN_IDCS, containers: int | None = None, name: str | None = None,
               source: Path = DEMO) -> str:
    """The generated world's YAML, checked by the world loader (WorldError naming every problem)."""
    import yaml

    from cockpit import world, yamlcheck

    doc, problems = yamlcheck.read(source)  # timestamps and clock times stay text, as the loader wants
    if problems:
        raise world.WorldError(problems)
    data = scaled(with_idcs(doc.data, idcs), hosts, containers)
    if name is not None:
        data["name"] = name
    args = f"--hosts {hosts}" + (f" --idcs {idcs}" if idcs != MIN_IDCS else "") + (
        f" --containers {containers}" if containers is not None else "") + (f" --name {name}" if name else "")
    text = (f"# Generated by data/gen_world.py {args} from the demo world: do not edit.\n"
            + yaml.safe_dump(data, sort_keys=False, allow_unicode=True))
    world.loads(text, name or "<generated world>")  # raises WorldError naming every problem
    return text


def generate(hosts: int, out: Path, source: Path = DEMO, *, idcs: int = MIN_IDCS, containers: int | None = None,
             name: str | None = None) -> None:
    """Write the world of `hosts` hosts to `out` (atomically), after the world loader accepted it."""
    text = world_text(hosts, idcs=idcs, containers=containers, name=name, source=source)
    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.")
    try:
        mask = os.umask(0o022)
        os.umask(mask)
        os.fchmod(fd, 0o666 & ~mask)  # a data file like any other, not mkstemp's private 0600
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _bounded(what: str, low: int, high: int):
    def parse(text: str) -> int:
        try:
            n = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number of {what}, got {text!r}") from None
        if not low <= n <= high:
            raise argparse.ArgumentTypeError(f"expected {low} to {high} {what}, got {n}")
        return n

    return parse


_hosts_arg = _bounded("hosts", MIN_HOSTS, MAX_HOSTS)


def main(argv: list[str] | None = None) -> int:
    from cockpit.world import WorldError

    p = argparse.ArgumentParser(prog="gen_world.py", description="A world of N hosts, scaled from the demo world.")
    p.add_argument("--hosts", type=_hosts_arg, default=6000, help="hosts in all (default 6000)")
    p.add_argument("--idcs", type=_bounded("IDCs", MIN_IDCS, MAX_IDCS), default=MIN_IDCS,
                   help=f"IDCs ({MIN_IDCS} to {MAX_IDCS}; default {MIN_IDCS}, the demo's)")
    p.add_argument("--containers", type=_bounded("containers", 1, MAX_CONTAINERS), default=None,
                   help="containers at the start in all (default: the demo's, scaled with the hosts)")
    p.add_argument("--name", default=None, help="the world's name (default hosts_N)")
    p.add_argument("--out", type=Path, required=True, help="the world file to write")
    args = p.parse_args(argv)
    if not args.out.parent.is_dir():
        print(f"gen_world.py: --out {args.out}: no such directory {args.out.parent}", file=sys.stderr)
        return 2
    try:
        generate(args.hosts, args.out, idcs=args.idcs, containers=args.containers, name=args.name)
    except WorldError as e:
        print(f"gen_world.py: the generated world is refused: {e}", file=sys.stderr)
        return 2
    except ValueError as e:
        print(f"gen_world.py: --containers {args.containers}: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        print(f"gen_world.py: --out {args.out}: {e.strerror}", file=sys.stderr)
        return 2
    print(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
