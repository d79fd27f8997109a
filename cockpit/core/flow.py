"""The expansion flow as the seed's platform ran it: its steps, in order, and the rules that move
a host or a container from one attempt to the next. Pure: the engine (engine/flow.py) carries the
steps out and keeps their state in the store.

Scaling out: resource evaluation, quota evaluation, host acquisition (the shared pool, then ECS),
initialisation, container scheduling, image check, deploy, dependencies, service discovery.
Scaling in runs the other way: deregister from discovery, drain, stop, return empty borrowed hosts.
"""

from __future__ import annotations

from dataclasses import dataclass

OUT_STEPS = ("resources", "quota", "hosts", "init", "schedule", "images", "deploy", "dependencies", "discovery")
IN_STEPS = ("deregister", "drain", "stop", "return_hosts")

TITLES = {
    "resources": "resource evaluation",
    "quota": "quota evaluation",
    "hosts": "host acquisition",
    "init": "initialisation",
    "schedule": "container scheduling",
    "images": "image check",
    "deploy": "deploy",
    "dependencies": "dependencies",
    "discovery": "service discovery",
    "deregister": "deregister",
    "drain": "drain",
    "stop": "stop containers",
    "return_hosts": "return hosts",
}

KINDS = {"expand": OUT_STEPS, "shrink": IN_STEPS}
OPEN = ("queued", "running", "paused")
LOG_KEEP = 20  # lines of log kept per host or container


@dataclass(frozen=True)
class FlowSpec:
    """What a flow was asked: `count` containers more (expand) or fewer (shrink) of `service`."""

    service: str
    count: int
    idc: str | None = None
    batch: int = 5  # hosts deployed at a time
    retries: int = 3  # attempts per host and step
    drain_s: float = 2.0  # real seconds between deregistering and stopping
    strategy: str = "spread"
    parent: int | None = None  # the flow whose dependencies step queued this one

    def as_json(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if v is not None}

    @classmethod
    def parse(cls, d: dict) -> FlowSpec:
        """A spec from a task's JSON; ValueError naming the field that is wrong."""
        if not isinstance(d.get("service"), str) or not d["service"]:
            raise ValueError("service: a service name is needed")
        spec = cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})
        for name, lo, hi in (("count", 1, 10_000), ("batch", 1, 1_000), ("retries", 1, 20)):
            v = getattr(spec, name)
            if not isinstance(v, int) or isinstance(v, bool) or not lo <= v <= hi:
                raise ValueError(f"{name}: a whole number from {lo} to {hi}, got {v!r}")
        if not isinstance(spec.drain_s, (int, float)) or not 0 <= spec.drain_s <= 3600:
            raise ValueError(f"drain_s: seconds from 0 to 3600, got {spec.drain_s!r}")
        return spec


def steps_of(kind: str) -> tuple[str, ...]:
    return KINDS[kind]


def next_step(kind: str, step: str | None) -> str | None:
    """The step after `step` (the first when None); None after the last."""
    steps = KINDS[kind]
    if step is None:
        return steps[0]
    i = steps.index(step)
    return steps[i + 1] if i + 1 < len(steps) else None


@dataclass(frozen=True)
class Attempt:
    """What becomes of an item after a failed call: tried again (after `wait_s`) or failed."""

    state: str  # pending | failed
    wait_s: float = 0.0


def after_failure(attempts: int, retries: int, transient: bool, base_s: float = 0.5, cap_s: float = 10.0) -> Attempt:
    """A failure that may pass is tried again, with a doubling wait, until `retries` attempts
    were made; one that will not pass (a refusal, a bad image) fails at once."""
    if not transient or attempts >= retries:
        return Attempt("failed")
    return Attempt("pending", min(cap_s, base_s * 2 ** (attempts - 1)))


def batches(hosts: list[str], size: int) -> list[list[str]]:
    """Hosts in deploy batches of `size`, in the order given."""
    return [hosts[i : i + size] for i in range(0, len(hosts), size)]


def append_log(log: list, line: list, keep: int = LOG_KEEP) -> list:
    """The log with `line` added, only the last `keep` lines kept."""
    return (list(log) + [line])[-keep:]


def progress(items: dict[str, int]) -> float:
    """Share of items settled (done, failed or skipped) out of all, 0..1; 1 when there are none."""
    total = sum(items.values())
    settled = items.get("done", 0) + items.get("failed", 0) + items.get("skipped", 0)
    return settled / total if total else 1.0
