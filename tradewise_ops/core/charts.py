"""The line charts of the HTML reports, as data: axes, ticks, lines, legend and event markers.

Pure. ``line_chart`` turns values into positions on a fixed 720x240 canvas; the SVG itself is
laid out by the ``line_chart`` macro of ``templates/reports/_chart.svg.j2``, which both report
pages (the load test's and the monitor's) import, so the two draw their charts the same way.
``steps`` turns replica counts into step lines.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

# the canvas: width, height, and the margins around the plot area
WIDTH, HEIGHT = 720, 240
_LEFT, _RIGHT, _TOP, _BOTTOM = 56, 16, 28, 34
_Y_TICKS, _X_TICKS = 5, 6

COLORS = {
    "p50": "#2b8cbe",
    "p95": "#e6550d",
    "p99": "#a50f15",
    "rps": "#31a354",
    "err": "#d62728",
    "users": "#756bb1",
    "desired": "#999999",
}
PALETTE = ("#3182bd", "#e6550d", "#31a354", "#756bb1", "#636363", "#d62728")

Point = tuple[float, float]


@dataclass(frozen=True)
class Series:
    """One line: its legend label, its colour, and a value per x (None: a gap)."""

    label: str
    colour: str
    values: Sequence[float | None]


@dataclass(frozen=True)
class Marker:
    """A dashed vertical line at ``second`` (an event), with a hover text."""

    second: float
    colour: str
    label: str


@dataclass(frozen=True)
class ChartLine:
    """A series placed on the canvas: its runs of consecutive points, and its legend entry.

    A run of one point (a value between two gaps) is drawn as a dot.
    """

    label: str
    colour: str
    runs: tuple[tuple[Point, ...], ...]
    legend_x: int


@dataclass(frozen=True)
class LineChart:
    """Everything the SVG shows, in canvas coordinates (pixels from the top left)."""

    title: str
    unit: str
    width: int
    height: int
    left: int
    top: int
    plot_width: int
    plot_height: int
    y_ticks: tuple[tuple[float, float], ...]  # (pixel y, value)
    x_ticks: tuple[tuple[float, float], ...]  # (pixel x, seconds)
    objective: tuple[float, float] | None  # (pixel y, value) of the dashed objective line
    lines: tuple[ChartLine, ...]
    markers: tuple[tuple[float, Marker], ...]  # (pixel x, marker)


def line_chart(
    title: str,
    xs: Sequence[float],
    series: Sequence[Series],
    unit: str,
    *,
    objective: float | None = None,
    markers: Sequence[Marker] = (),
) -> LineChart:
    """A line chart of ``series`` over ``xs`` (seconds), from 0 to the largest x and value.

    The y axis runs to 110% of the largest value (and of ``objective``, a dashed horizontal
    line); ``markers`` are placed on the x axis, clamped to the plot area.
    """
    plot_width, plot_height = WIDTH - _LEFT - _RIGHT, HEIGHT - _TOP - _BOTTOM
    values = [v for s in series for v in s.values if v is not None]
    if objective is not None:
        values.append(objective)
    ymax = max(values) * 1.1 if values and max(values) > 0 else 1.0
    xmax = max(xs) if xs and max(xs) > 0 else 1.0

    def px(x: float) -> float:
        return _LEFT + plot_width * x / xmax

    def py(y: float) -> float:
        return _TOP + plot_height - plot_height * y / ymax

    lines = []
    legend_x = _LEFT + 8
    for s in series:
        runs: list[list[Point]] = [[]]
        for x, v in zip(xs, s.values, strict=False):
            if v is None:
                if runs[-1]:
                    runs.append([])
                continue
            runs[-1].append((px(x), py(v)))
        lines.append(
            ChartLine(s.label, s.colour, tuple(tuple(run) for run in runs if run), legend_x)
        )
        legend_x += 14 + 8 * len(s.label) + 16
    return LineChart(
        title=title,
        unit=unit,
        width=WIDTH,
        height=HEIGHT,
        left=_LEFT,
        top=_TOP,
        plot_width=plot_width,
        plot_height=plot_height,
        y_ticks=tuple(
            (py(ymax * i / (_Y_TICKS - 1)), ymax * i / (_Y_TICKS - 1)) for i in range(_Y_TICKS)
        ),
        x_ticks=tuple(
            (px(xmax * i / (_X_TICKS - 1)), xmax * i / (_X_TICKS - 1)) for i in range(_X_TICKS)
        ),
        objective=None if objective is None else (py(objective), objective),
        lines=tuple(lines),
        markers=tuple(
            (_LEFT + plot_width * min(max(m.second / xmax, 0.0), 1.0), m) for m in markers
        ),
    )


def steps(
    points: Sequence[Mapping[str, Any]], until: float
) -> tuple[list[float], list[float | None], list[float | None]]:
    """Step lines of ``{"second", "desired", "ready"}`` points, held until ``until``.

    Each value holds until the next change (the x repeats for the vertical edge). Returns the
    xs and the desired and ready values; an unknown desired count is a gap.
    """
    xs: list[float] = []
    desired: list[float | None] = []
    ready: list[float | None] = []
    for i, p in enumerate(points):
        if i:
            xs.append(float(p["second"]))
            prev = points[i - 1]
            desired.append(None if prev["desired"] is None else float(prev["desired"]))
            ready.append(float(prev["ready"]))
        xs.append(float(p["second"]))
        desired.append(None if p["desired"] is None else float(p["desired"]))
        ready.append(float(p["ready"]))
    if points:
        last = points[-1]
        xs.append(max(until, float(last["second"])))
        desired.append(None if last["desired"] is None else float(last["desired"]))
        ready.append(float(last["ready"]))
    return xs, desired, ready
