"""The platform clock of the simulation: real time times `speed`, pausable, resumable."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class SimClock:
    t0: float  # platform time (epoch s) at the anchor
    real0: float  # wall time at the anchor
    speed: float = 1.0
    paused: bool = False

    def now(self, real: float) -> float:
        if self.paused:
            return self.t0
        return self.t0 + (real - self.real0) * self.speed

    def rebase(self, real: float, *, speed: float | None = None, paused: bool | None = None) -> None:
        """Change speed or pause without a jump in platform time."""
        self.t0 = self.now(real)
        self.real0 = real
        if speed is not None:
            self.speed = speed
        if paused is not None:
            self.paused = paused
