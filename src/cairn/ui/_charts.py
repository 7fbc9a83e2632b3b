"""Small line charts of a run's history (W&B's run page charts), drawn as SVG on the server.

One chart per logged numeric key: its finite values against ``_step``, with the first and last
step and the lowest and highest value as labels. Rows are sampled evenly to a few hundred points.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

WIDTH, HEIGHT, PAD = 320, 120, 6
MAX_POINTS = 500
MAX_CHARTS = 24
_SYSTEM = ("_step", "_timestamp", "_runtime")


@dataclass(frozen=True)
class Chart:
    key: str
    points: str  # the SVG polyline's points
    count: int
    first_step: int
    last_step: int
    low: float
    high: float
    last: float


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def _spread(rows: list[Any], limit: int) -> list[Any]:
    if len(rows) <= limit:
        return rows
    last = len(rows) - 1
    return [rows[i] for i in sorted({round(i * last / (limit - 1)) for i in range(limit)})]


def history_charts(texts: list[str]) -> list[Chart]:
    """Charts of the numeric keys of history rows (JSON texts), in the order keys first appear."""
    series: dict[str, list[tuple[int, float]]] = {}
    for text in texts:
        row = json.loads(text)
        step = row.get("_step")
        if not isinstance(step, int):
            continue
        for key, value in row.items():
            number = _number(value)
            if key in _SYSTEM or number is None:
                continue
            if key in series or len(series) < MAX_CHARTS:
                series.setdefault(key, []).append((step, number))
    return [_chart(key, _spread(points, MAX_POINTS)) for key, points in series.items()]


def _chart(key: str, points: list[tuple[int, float]]) -> Chart:
    steps = [s for s, _ in points]
    values = [v for _, v in points]
    x0, x1 = min(steps), max(steps)
    y0, y1 = min(values), max(values)
    xs = (WIDTH - 2 * PAD) / (x1 - x0) if x1 > x0 else 0.0
    ys = (HEIGHT - 2 * PAD) / (y1 - y0) if y1 > y0 else 0.0

    def xy(step: int, value: float) -> str:
        x = PAD + (step - x0) * xs if xs else WIDTH / 2
        y = HEIGHT - PAD - (value - y0) * ys if ys else HEIGHT / 2
        return f"{x:.1f},{y:.1f}"

    return Chart(
        key=key,
        points=" ".join(xy(s, v) for s, v in points),
        count=len(points),
        first_step=x0,
        last_step=x1,
        low=y0,
        high=y1,
        last=values[-1],
    )
