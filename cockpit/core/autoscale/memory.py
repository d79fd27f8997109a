"""What the rules remember about one service between evaluations: the HPA's recommendations
(for its stabilisation windows), the changes made (for its rate limits and the cool-down), and
the counts at the start of schedule windows and hot events (what their factors multiply).

Kept as plain data so the engine can store it and a successor carry on where it stopped."""

from __future__ import annotations

from dataclasses import dataclass, field

KEEP_S = 3600.0  # nothing older matters: windows and rate periods are shorter


@dataclass
class Memory:
    recs: list[tuple[float, int]] = field(default_factory=list)  # (t, the HPA's raw recommendation)
    ups: list[tuple[float, int]] = field(default_factory=list)  # (t, containers added)
    downs: list[tuple[float, int]] = field(default_factory=list)  # (t, containers removed)
    last_change_t: float | None = None
    bases: dict[str, tuple[float, int]] = field(default_factory=dict)  # window -> (its start, count then)
    fired: dict[str, float] = field(default_factory=dict)  # cpu rule -> when it last multiplied

    def changed(self, t: float, before: int, after: int) -> None:
        if after > before:
            self.ups.append((t, after - before))
        elif after < before:
            self.downs.append((t, before - after))
        if after != before:
            self.last_change_t = t

    def revise(self, t: float, before: int, meant: int, actual: int) -> None:
        """The change made at `t` was `actual`, not `meant` (what the platform could take)."""
        lst = self.ups if meant > before else self.downs
        if lst and lst[-1][0] == t:
            lst.pop()
        self.last_change_t = None if self.last_change_t == t else self.last_change_t
        if actual != before:
            self.changed(t, before, actual)
        elif self.ups or self.downs:
            self.last_change_t = max([x[0] for x in self.ups + self.downs], default=None)

    def forget(self, t: float, hold_s: float) -> None:
        """Drop what no window can reach any more (`hold_s`: the longest a base is needed)."""
        cut = t - KEEP_S
        self.recs = [r for r in self.recs if r[0] > cut]
        self.ups = [r for r in self.ups if r[0] > cut]
        self.downs = [r for r in self.downs if r[0] > cut]
        self.bases = {k: v for k, v in self.bases.items() if v[0] > t - hold_s - KEEP_S}

    def added_since(self, cut: float) -> int:
        return sum(n for t, n in self.ups if t > cut)

    def removed_since(self, cut: float) -> int:
        return sum(n for t, n in self.downs if t > cut)

    def as_json(self) -> dict:
        return {"recs": self.recs, "ups": self.ups, "downs": self.downs, "last_change_t": self.last_change_t,
                "bases": {k: list(v) for k, v in self.bases.items()}, "fired": self.fired}

    @classmethod
    def from_json(cls, d: dict) -> Memory:
        return cls([tuple(r) for r in d.get("recs", [])], [tuple(r) for r in d.get("ups", [])],
                   [tuple(r) for r in d.get("downs", [])], d.get("last_change_t"),
                   {k: (float(v[0]), int(v[1])) for k, v in d.get("bases", {}).items()}, dict(d.get("fired", {})))
