"""Sparklines as text, so a table cell can hold one and a diff update can replace it."""

from __future__ import annotations

BLOCKS = "▁▂▃▄▅▆▇█"


def spark(t: list[float], values: list[float], width: int, start: float, end: float) -> str:
    """`width` characters over [start, end]: each the mean of the samples in its time slice,
    scaled from 0 to the series' maximum; a slice with no samples is blank."""
    if width <= 0 or end <= start:
        return ""
    sums = [0.0] * width
    counts = [0] * width
    span = (end - start) / width
    for x, v in zip(t, values):
        if start <= x <= end:
            i = min(int((x - start) / span), width - 1)
            sums[i] += v
            counts[i] += 1
    means = [s / c if c else None for s, c in zip(sums, counts)]
    top = max((m for m in means if m is not None), default=0.0)
    if top <= 0:
        return "".join(BLOCKS[0] if m is not None else " " for m in means)
    last = len(BLOCKS) - 1
    return "".join(" " if m is None else BLOCKS[min(int(m / top * last + 0.5), last)] for m in means)


def human(n: float) -> str:
    """1234567 -> '1.23M': fits a narrow column."""
    for unit, size in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= size:
            v = n / size
            return f"{v:.3g}{unit}" if v < 100 else f"{v:.0f}{unit}"
    return f"{n:.0f}"
