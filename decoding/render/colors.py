"""The colour scale of the pictures: red (worst) -> yellow -> green (best), as in the seed post."""

from __future__ import annotations

# Three stops, soft enough that black text stays readable on each.
RED = (235, 110, 100)
YELLOW = (250, 225, 110)
GREEN = (120, 200, 120)
GREY = "#dddddd"  # pruned or unchosen
GREY_TEXT = "#888888"


def scale_color(value: float, low: float, high: float) -> str:
    """`value` placed between `low` (red) and `high` (green) as a "#rrggbb" colour.

    >>> scale_color(0.0, 0.0, 1.0), scale_color(1.0, 0.0, 1.0), scale_color(5.0, 5.0, 5.0)
    ('#eb6e64', '#78c878', '#fae16e')
    """
    t = 0.5 if high <= low else min(max((value - low) / (high - low), 0.0), 1.0)
    start, end, u = (RED, YELLOW, 2 * t) if t < 0.5 else (YELLOW, GREEN, 2 * t - 1)
    rgb = (round(a + (b - a) * u) for a, b in zip(start, end))
    return "#" + "".join(f"{c:02x}" for c in rgb)


def value_range(values: list[float]) -> tuple[float, float]:
    """(min, max) of the finite values, so one colour scale spans a whole picture."""
    finite = [v for v in values if v == v and abs(v) != float("inf")]
    return (min(finite), max(finite)) if finite else (0.0, 0.0)
