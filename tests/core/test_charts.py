"""The report charts as data: positions, gaps and dots, the objective, markers, step lines."""

from __future__ import annotations

import pytest

from tradewise_ops.core.charts import HEIGHT, WIDTH, Marker, Series, line_chart, steps


def test_values_are_placed_on_the_plot_area_with_gaps_split_into_runs() -> None:
    chart = line_chart(
        "t", [0.0, 1.0, 2.0, 3.0, 4.0], [Series("a", "#000", [0.0, 10.0, None, 5.0, None])], "ms"
    )
    left, top, pw, ph = chart.left, chart.top, chart.plot_width, chart.plot_height
    assert (chart.width, chart.height) == (WIDTH, HEIGHT)
    assert left + pw < WIDTH and top + ph < HEIGHT
    (line,) = chart.lines
    first, lone = line.runs  # the gap splits the series; a run of one point is a dot
    assert first[0] == (left, top + ph)  # (0 s, 0 ms): bottom left
    assert first[1] == pytest.approx((left + pw / 4, top + ph - ph / 1.1))  # y axis to 110%
    assert lone == (pytest.approx((left + pw * 3 / 4, top + ph - ph * 5 / 11)),)
    assert [v for _, v in chart.y_ticks] == pytest.approx([0, 2.75, 5.5, 8.25, 11])
    assert [v for _, v in chart.x_ticks] == pytest.approx([0, 0.8, 1.6, 2.4, 3.2, 4])


def test_the_objective_counts_in_the_scale_and_markers_stay_inside() -> None:
    chart = line_chart(
        "t",
        [0.0, 10.0],
        [Series("a", "#000", [1.0, 2.0]), Series("bb", "#111", [None, None])],
        "ms",
        objective=100.0,
        markers=[Marker(5.0, "#f00", "half"), Marker(99.0, "#f00", "late")],
    )
    assert chart.y_ticks[-1][1] == pytest.approx(110)
    assert chart.objective == (pytest.approx(chart.top + chart.plot_height / 11), 100.0)
    assert chart.lines[1].runs == ()  # nothing to draw, but still in the legend
    assert chart.lines[1].legend_x == chart.lines[0].legend_x + 14 + 8 + 16
    (x_half, _), (x_late, _) = chart.markers
    assert x_half == pytest.approx(chart.left + chart.plot_width / 2)
    assert x_late == chart.left + chart.plot_width


def test_an_empty_chart_has_unit_axes() -> None:
    chart = line_chart("t", [], [Series("a", "#000", [])], "%")
    assert chart.y_ticks[-1][1] == 1.0 and chart.x_ticks[-1][1] == 1.0
    assert chart.lines[0].runs == ()


def test_steps_hold_each_value_until_the_next_change() -> None:
    points = [
        {"second": 0.0, "desired": 3, "ready": 3},
        {"second": 20.0, "desired": None, "ready": 2},
    ]
    xs, desired, ready = steps(points, 30.0)
    assert xs == [0.0, 20.0, 20.0, 30.0]
    assert desired == [3.0, 3.0, None, None]
    assert ready == [3.0, 3.0, 2.0, 2.0]
    assert steps([], 30.0) == ([], [], [])
