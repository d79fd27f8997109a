"""What the world schema cannot say, checked once the shape is right.

References between sections, one shared pool, zones that belong to the cloud IDC, dependency
cycles, dates in a sane range, counts measured against the hosts the world has; the registries,
their topology, replication and releases are checked in world_registry_checks. One method per
section of the world file; `cross_check` runs them in a fixed order, which the loader's
(stable) sort by line keeps for problems on the same line.
"""

from __future__ import annotations

from datetime import date, datetime
from collections.abc import Collection
from typing import Any

from cockpit.core.addressing import HOSTS_PER_IDC
from cockpit.core.constraints import check_constraint, parse_constraint
from cockpit.core.autoscale.rules import rule_problems
from cockpit.core.dependencies import CycleError, find_cycle
from cockpit.world_registry_checks import RegistryChecks
from cockpit.yamlcheck import Document, PathT, Problem

# The demo has 2,060 hosts and 6,794 containers; these leave room for far bigger platforms
# while keeping `check` (which places every container) to seconds.
MAX_HOSTS = 100_000
MAX_CONTAINERS = 1_000_000
YEARS = (2000, 2100)  # dates outside are typing mistakes, and year 1 overflows time arithmetic

KNOWN_SHOWN = 20  # names an unknown-name message lists

UNIQUE_NAMES = (
    "idcs", "hardware", "clusters", "host_groups", "layers", "services", "registries", "autoscaling", "replication",
)


def cross_check(doc: Document) -> list[Problem]:
    """Every problem the schema cannot catch in a well-shaped world, in checking order."""
    return _Checker(doc).run()


def _named(data: dict, section: str, key: str = "name") -> dict[Any, int]:
    return {item[key]: i for i, item in enumerate(data.get(section, []))}


def _pool_table(data: dict) -> dict[str, tuple[str, str]]:
    """Pool name -> (cluster, kind), the first definition winning."""
    pools: dict[str, tuple[str, str]] = {}
    for cluster in data["clusters"]:
        for pool in cluster["pools"]:
            pools.setdefault(pool["name"], (cluster["name"], pool.get("kind", "online")))
    return pools


class _Checker(RegistryChecks):
    """One world document, the lookups its sections share, and the problems found so far."""

    def __init__(self, doc: Document):
        self.doc = doc
        self.d = d = doc.data
        self.out: list[Problem] = []
        self.idcs = {i["name"]: i for i in d["idcs"]}
        self.zones_of = {name: {z["name"]: z for z in idc.get("zones", [])} for name, idc in self.idcs.items()}
        self.hardware = _named(d, "hardware")
        self.pools = _pool_table(d)
        self.services = {s["name"]: s for s in d.get("services", [])}
        self.layers = _named(d, "layers")
        self.images = {f"{im['name']}:{im['tag']}": i for i, im in enumerate(d.get("images", []))}
        self.sids = _named(d, "templates", "sid")
        self.seen_addresses: set[str] = set()

    def run(self) -> list[Problem]:
        """Each section in turn; the order is part of the output (problems on one line keep it)."""
        self.check_unique_names()
        self.check_pools()
        self.check_idcs()
        self.check_host_groups()
        self.check_images()
        self.check_services()
        if self.check_registry_counts():  # else only the counts: thousands of names make slow, huge lines
            self.check_registries()
            self.check_topology()
            self.check_replication()
            self.check_releases()
        self.check_templates()
        self.check_dependency_cycles()
        self.check_swaps()
        self.check_scoring()
        self.check_autoscaling()
        self.check_times()
        self.check_counts()
        return self.out

    # --- reporting ---

    def bad(self, path: PathT, message: str) -> None:
        """Record a problem at `path` (its line comes from the document)."""
        self.out.append(self.doc.problem(path, message))

    def ref(self, path: PathT, value: Any, known: Collection, what: str) -> bool:
        """Whether `value` names one of `known`; if not, a problem listing the choices."""
        if value not in known:
            names = sorted(map(str, known))
            choices = ", ".join(names[:KNOWN_SHOWN]) or "none defined"
            if len(names) > KNOWN_SHOWN:  # a line, not a page: huge worlds have thousands of names
                choices += f", and {len(names) - KNOWN_SHOWN:,} more"
            self.bad(path, f"no {what} named {value!r} (known: {choices})")
            return False
        return True

    # --- sections, in checking order ---

    def check_unique_names(self) -> None:
        """Names (and template sids) are unique within their section."""
        for section in UNIQUE_NAMES:
            self._unique(section)
        self._unique("templates", "sid", "sid")

    def _unique(self, section: str, key: str = "name", what: str = "name") -> None:
        """Each item's `key` in `section` is used once; a repeat names the first use."""
        seen: dict[Any, int] = {}
        for i, item in enumerate(self.d.get(section, [])):
            if item[key] in seen:
                self.bad((section, i, key), f"{what} {item[key]!r} is already used at {section}[{seen[item[key]]}]")
            else:
                seen[item[key]] = i

    def check_pools(self) -> None:
        """Pool names are unique across clusters, and exactly one pool is the shared one."""
        seen: set[str] = set()
        for ci, cluster in enumerate(self.d["clusters"]):
            for pi, pool in enumerate(cluster["pools"]):
                if pool["name"] in seen:
                    first = self.pools[pool["name"]][0]
                    message = f"pool {pool['name']!r} is already defined in cluster {first!r}"
                    self.bad(("clusters", ci, "pools", pi, "name"), message)
                seen.add(pool["name"])
        shared = [name for name, (_, kind) in self.pools.items() if kind == "shared"]
        if len(shared) != 1:
            found = ", ".join(shared) if shared else "none"
            self.bad(("clusters",), f"expected exactly one pool with kind: shared, found {found}")

    def check_idcs(self) -> None:
        """A cloud IDC has a region and zones, a private one neither; zones are listed once."""
        for i, idc in enumerate(self.d["idcs"]):
            if idc["kind"] == "cloud":
                if "region" not in idc:
                    self.bad(("idcs", i, "region"), "a cloud IDC needs a region")
                if not idc.get("zones"):
                    self.bad(("idcs", i, "zones"), "a cloud IDC needs at least one zone")
            elif "zones" in idc or "region" in idc:
                self.bad(("idcs", i, "zones" if "zones" in idc else "region"), "only a cloud IDC has a region and zones")
            zone_names = [z["name"] for z in idc.get("zones", [])]
            for zi, z in enumerate(zone_names):
                if zone_names.index(z) != zi:
                    self.bad(("idcs", i, "zones", zi, "name"), f"zone {z!r} is listed twice")

    def check_host_groups(self) -> None:
        """Host groups name a known IDC, pool and hardware; ECS hosts live in a cloud zone."""
        for gi, g in enumerate(self.d["host_groups"]):
            p = ("host_groups", gi)
            idc_ok = self.ref(p + ("idc",), g["idc"], self.idcs, "IDC")
            self.ref(p + ("pool",), g["pool"], self.pools, "pool")
            self.ref(p + ("hardware",), g["hardware"], self.hardware, "hardware class")
            self._host_source(p, g, idc_ok)
            self.check_charge(g["charge"], p + ("charge",))
            self._addresses(p, g)

    def _addresses(self, p: PathT, g: dict) -> None:
        """Real addresses: one per host, each a valid IPv4 address, none given twice."""
        if "addresses" not in g:
            return
        import ipaddress

        if len(g["addresses"]) != g["count"]:
            self.bad(p + ("addresses",), f"{len(g['addresses'])} addresses for {g['count']} hosts: give one per host")
        for ai, a in enumerate(g["addresses"]):
            try:
                ipaddress.IPv4Address(a)
            except ValueError:
                self.bad(p + ("addresses", ai), f"{a!r} is not an IPv4 address")
                continue
            if a in self.seen_addresses:
                self.bad(p + ("addresses", ai), f"{a} is given to another host too")
            self.seen_addresses.add(a)

    def _host_source(self, p: PathT, g: dict, idc_ok: bool) -> None:
        """ECS hosts are in a cloud IDC with a zone of it; physical hosts in a private IDC, no zone."""
        if g["source"] == "ecs":
            if idc_ok and self.idcs[g["idc"]]["kind"] != "cloud":
                self.bad(p + ("source",), f"ECS hosts must be in a cloud IDC; {g['idc']!r} is private")
            elif idc_ok:
                if "zone" not in g:
                    self.bad(p + ("zone",), "ECS hosts need a zone")
                else:
                    self.ref(p + ("zone",), g["zone"], self.zones_of[g["idc"]], f"zone in {g['idc']}")
        else:
            if "zone" in g:
                self.bad(p + ("zone",), "only ECS hosts have a zone")
            if idc_ok and self.idcs[g["idc"]]["kind"] == "cloud":
                self.bad(p + ("source",), f"hosts in cloud IDC {g['idc']!r} must have source: ecs")

    def check_images(self) -> None:
        """Images are built from known layers, and each name:tag is defined once."""
        images = self.d.get("images", [])
        for ii, im in enumerate(images):
            for li, layer in enumerate(im["layers"]):
                self.ref(("images", ii, "layers", li), layer, self.layers, "layer")
        first: dict[str, int] = {}
        for ii, im in enumerate(images):
            r = f"{im['name']}:{im['tag']}"
            if r in first:
                self.bad(("images", ii, "tag"), f"image {r} is already defined at images[{first[r]}]")
            first.setdefault(r, ii)

    def check_services(self) -> None:
        """Services name a known pool, image and IDCs, and placement rules that make sense."""
        for si, s in enumerate(self.d.get("services", [])):
            p = ("services", si)
            self.ref(p + ("pool",), s["pool"], self.pools, "pool")
            self.ref(p + ("image",), s["image"], self.images, "image")
            for idc_name in s.get("containers", {}):
                self.ref(p + ("containers", idc_name), idc_name, self.idcs, "IDC")
            self._placement(p + ("placement",), s["name"], s.get("placement", {}))

    def _placement(self, p: PathT, service: str, placement: dict) -> None:
        """Constraints parse and make sense; only_with and never_with name other known services."""
        for ci, text in enumerate(placement.get("constraints", [])):
            why = check_constraint(parse_constraint(text))
            if why:
                self.bad(p + ("constraints", ci), why)
        for key in ("only_with", "never_with"):
            for ni, name in enumerate(placement.get(key, [])):
                self.ref(p + (key, ni), name, self.services, "service")
                if name == service and key == "never_with":
                    self.bad(p + (key, ni), "a service cannot exclude itself; use max_per_host")

    def check_templates(self) -> None:
        """Templates name a known service, pool, hardware, image and dependencies, and sound ECS settings."""
        for ti, t in enumerate(self.d.get("templates", [])):
            p = ("templates", ti)
            self.ref(p + ("service",), t["service"], self.services, "service")
            if "pool" in t:
                self.ref(p + ("pool",), t["pool"], self.pools, "pool")
            if "hardware" in t:
                self.ref(p + ("hardware",), t["hardware"], self.hardware, "hardware class")
            if "image" in t:
                self.ref(p + ("image",), t["image"], self.images, "image")
            for di, dep in enumerate(t.get("dependencies", [])):
                if dep["sid"] == t["sid"]:
                    self.bad(p + ("dependencies", di, "sid"), "a template cannot depend on itself")
                else:
                    self.ref(p + ("dependencies", di, "sid"), dep["sid"], self.sids, "template with sid")
            if t.get("ecs"):
                self._template_ecs(p + ("ecs",), t["ecs"])

    def _template_ecs(self, ep: PathT, ecs: dict) -> None:
        """ECS hosts for a template come from a cloud IDC's own zones, security groups and vSwitches."""
        self.ref(ep + ("hardware",), ecs["hardware"], self.hardware, "hardware class")
        if self.ref(ep + ("idc",), ecs["idc"], self.idcs, "IDC"):
            if self.idcs[ecs["idc"]]["kind"] != "cloud":
                self.bad(ep + ("idc",), f"ECS hosts come from a cloud IDC; {ecs['idc']!r} is private")
            else:
                zones = self.zones_of[ecs["idc"]]
                sgs = {sg for z in zones.values() for sg in z["security_groups"]}
                vsws = {v for z in zones.values() for v in z["vswitches"]}
                for zi, z in enumerate(ecs["zones"]):
                    self.ref(ep + ("zones", zi), z, zones, f"zone in {ecs['idc']}")
                for xi, sg in enumerate(ecs["security_groups"]):
                    self.ref(ep + ("security_groups", xi), sg, sgs, f"security group in {ecs['idc']}")
                for xi, v in enumerate(ecs["vswitches"]):
                    self.ref(ep + ("vswitches", xi), v, vsws, f"vSwitch in {ecs['idc']}")
        if "charge" in ecs:
            self.check_charge(ecs["charge"], ep + ("charge",))

    def check_dependency_cycles(self) -> None:
        """Template dependencies form no cycle."""
        # Only in a world sound so far: then every sid is known and defined once.
        if self.out:
            return
        graph = {t["sid"]: [dep["sid"] for dep in t.get("dependencies", [])] for t in self.d.get("templates", [])}
        cycle = find_cycle(graph)
        if cycle:
            self.bad(("templates", self.sids[cycle[0]], "dependencies"), str(CycleError(cycle)))

    def check_swaps(self) -> None:
        """Swaps name a known IDC and two different known pools, at two different times."""
        for wi, w in enumerate(self.d.get("swaps", [])):
            p = ("swaps", wi)
            self.ref(p + ("idc",), w["idc"], self.idcs, "IDC")
            for key in ("online_pool", "offline_pool"):
                self.ref(p + (key,), w[key], self.pools, "pool")
            if w["online_pool"] == w["offline_pool"]:
                self.bad(p + ("offline_pool",), "online and offline pools must differ")
            if w["night_at"] == w["day_at"]:
                self.bad(p + ("day_at",), "day_at and night_at must differ")

    def check_scoring(self) -> None:
        """Scoring weights are non-empty and name known services; custom strategies have weights."""
        d = self.d
        if "custom_scoring" in d:
            self._scorers(("custom_scoring",), d["custom_scoring"])
        for ti, t in enumerate(d.get("templates", [])):
            if "scoring" in t:
                self._scorers(("templates", ti, "scoring"), t["scoring"])
            if t.get("strategy") == "custom" and "scoring" not in t and "custom_scoring" not in d:
                self.bad(("templates", ti, "strategy"), "custom needs scoring here or custom_scoring at the top")

    def _scorers(self, path: PathT, weights: dict) -> None:
        """At least one weight, and `with:` scorers name a known service."""
        if not weights:
            self.bad(path, "expected at least one scorer with a weight")
        for name in weights:
            if name.startswith("with:"):
                self.ref(path + (name,), name[5:], self.services, "service")

    def check_autoscaling(self) -> None:
        """Autoscaling rules name known services and carry what their kind needs; pool limits name
        known pools, once each, with min <= max."""
        for ri, rule in enumerate(self.d.get("autoscaling", [])):
            p = ("autoscaling", ri)
            for si, name in enumerate(rule["services"]):
                self.ref(p + ("services", si), name, self.services, "service")
            for field, why in rule_problems(rule):
                self.bad(p + ((field,) if field else ()), why)
        seen: set[str] = set()
        for pi, lim in enumerate(self.d.get("scaling", {}).get("pools", [])):
            p = ("scaling", "pools", pi)
            self.ref(p + ("pool",), lim["pool"], self.pools, "pool")
            if lim["pool"] in seen:
                self.bad(p + ("pool",), f"limits for pool {lim['pool']!r} given twice")
            seen.add(lim["pool"])
            if lim.get("min", 0) > lim.get("max", 1_000_000):
                self.bad(p + ("min",), f"min {lim['min']} is above max {lim.get('max', 1_000_000)}")

    def check_times(self) -> None:
        """Hot events name known services; their starts and the world's start are sane timestamps."""
        for ei, ev in enumerate(self.d["traffic"].get("hot_events", [])):
            p = ("traffic", "hot_events", ei)
            for si, name in enumerate(ev["services"]):
                self.ref(p + ("services", si), name, self.services, "service")
            self.check_timestamp(ev["start"], p + ("start",))
        self.check_timestamp(self.d["start"], ("start",))

    def check_counts(self) -> None:
        """Counts measured against the hosts the host groups make: totals bounded, swaps within their pool."""
        d = self.d
        groups = d["host_groups"]
        hosts = sum(g["count"] for g in groups)
        if hosts > MAX_HOSTS:
            self.bad(("host_groups",), f"{hosts:,} hosts in all; a world may have at most {MAX_HOSTS:,}")
        per_idc: dict[str, int] = {}
        for g in groups:
            per_idc[g["idc"]] = per_idc.get(g["idc"], 0) + g["count"]
        for idc, n in sorted(per_idc.items()):
            if n > HOSTS_PER_IDC:  # each IDC's hosts take addresses in a /16
                gi = max(i for i, g in enumerate(groups) if g["idc"] == idc)
                at_most = f"an IDC may have at most {HOSTS_PER_IDC:,}"
                self.bad(("host_groups", gi, "count"), f"{n:,} hosts in IDC {idc!r}; {at_most}")
        containers = sum(n for s in d.get("services", []) for n in s.get("containers", {}).values())
        if containers > MAX_CONTAINERS:
            at_most = f"a world may have at most {MAX_CONTAINERS:,}"
            self.bad(("services",), f"{containers:,} containers at the start in all; {at_most}")
        for wi, w in enumerate(d.get("swaps", [])):
            if w["idc"] not in self.idcs or w["online_pool"] not in self.pools:
                continue  # already reported as an unknown name
            have = sum(g["count"] for g in groups if g["idc"] == w["idc"] and g["pool"] == w["online_pool"])
            if w["hosts"] > have:
                where = f"pool {w['online_pool']!r} in {w['idc']!r}"
                self.bad(("swaps", wi, "hosts"), f"{w['hosts']:,} hosts to swap, but the host groups put {have:,} in {where}")

    # --- values checked in several sections ---

    def check_charge(self, charge: dict, path: PathT) -> None:
        """Only monthly and yearly hosts expire, on a real date in range."""
        if "expires" in charge:
            if charge["type"] not in ("monthly", "yearly"):
                self.bad(path + ("expires",), "only monthly and yearly hosts expire")
            else:
                try:
                    day = date.fromisoformat(charge["expires"])
                except ValueError as e:
                    self.bad(path + ("expires",), f"not a date: {e}")
                else:
                    self.check_year(day.year, path + ("expires",))

    def check_timestamp(self, text: str, path: PathT) -> datetime | None:
        """`text` is an ISO timestamp (a space or Z allowed) in range: the time, or None when not."""
        try:
            t = datetime.fromisoformat(text.replace(" ", "T").replace("Z", "+00:00"))
        except ValueError as e:
            self.bad(path, f"not a timestamp: {e}")
            return None
        return t if self.check_year(t.year, path) else None

    def check_year(self, year: int, path: PathT) -> bool:
        """The year is within YEARS."""
        if not YEARS[0] <= year <= YEARS[1]:
            self.bad(path, f"the year {year} is out of range: expected {YEARS[0]} to {YEARS[1]}")
            return False
        return True
