"""Histograms, intervals, the report as data, its CSV and HTML."""

from __future__ import annotations

import csv
import io
import math
import random
import re

import pytest

from tradewise_ops.core.loadreport import (
    CSV_COLUMNS,
    EndpointCounts,
    Interval,
    LatencyHistogram,
    LoadReport,
    live_line,
    live_lines,
    report_html,
    run_totals,
    summary_rows,
    timeseries_csv,
)
from tradewise_ops.core.slo import evaluate


def exact_percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(1, math.ceil(q / 100 * len(ordered))) - 1]


def test_percentiles_agree_with_exact_ranks_within_half_a_percent() -> None:
    rng = random.Random(7)
    values = [rng.lognormvariate(3, 1) for _ in range(5000)] + [0.0, 0.004]
    hist = LatencyHistogram()
    for v in values:
        hist.add(v)
    for q in (1, 50, 90, 95, 99, 99.9, 100):
        got = hist.percentile(q)
        want = exact_percentile(values, q)
        assert got is not None
        assert got == pytest.approx(want, rel=0.006, abs=0.01), q
    assert hist.count == len(values)
    assert hist.mean == pytest.approx(sum(values) / len(values))
    assert hist.min == 0.0 and hist.max == max(values)


def test_empty_histogram_has_no_percentiles() -> None:
    hist = LatencyHistogram()
    assert hist.percentile(95) is None and hist.mean is None


def test_merge_and_wire_round_trip_keep_every_sample() -> None:
    a, b, both = LatencyHistogram(), LatencyHistogram(), LatencyHistogram()
    for i in range(1, 200):
        (a if i % 2 else b).add(i * 1.5)
        both.add(i * 1.5)
    a.merge(LatencyHistogram.from_wire(b.to_wire()))
    assert a.count == both.count == 199
    assert a.buckets == both.buckets
    for q in (50, 95, 99):
        assert a.percentile(q) == both.percentile(q)


def interval(index: int, per_endpoint: dict[str, list[float]], failures: int = 0) -> Interval:
    endpoints = {}
    for name, samples in per_endpoint.items():
        counts = EndpointCounts(requests=len(samples), failures=failures)
        for s in samples:
            counts.latency.add(s)
        endpoints[name] = counts
    return Interval(index=index, start=float(index), end=index + 1.0, users=5, endpoints=endpoints)


def make_report(intervals: list[Interval]) -> LoadReport:
    totals = run_totals(intervals)
    return LoadReport(
        target="http://127.0.0.1:1",
        kind="load-test",
        started_at=0.0,
        planned_seconds=3,
        users=5,
        spawn_rate=5,
        workers=0,
        intervals=intervals,
        verdict=evaluate(
            requests=totals.requests,
            failures=totals.failures,
            p95_ms=totals.latency.percentile(95),
            max_p95_ms=500,
            max_error_rate=0.01,
        ),
        errors=[{"name": "/b", "error": "HTTPError('500 <boom>')", "occurrences": 3}],
    )


def test_interval_percentiles_come_from_the_intervals_own_samples() -> None:
    fast = interval(0, {"/a": [10.0] * 100})
    slow = interval(1, {"/a": [900.0] * 100})
    assert fast.row()["p95_ms"] == pytest.approx(10, rel=0.01)
    # a cumulative view would still show 10 ms at the median; the interval's own shows 900
    assert slow.row()["p50_ms"] == pytest.approx(900, rel=0.01)
    assert slow.row()["rps"] == 100.0


def test_wire_message_round_trip() -> None:
    iv = interval(2, {"/a": [1.0, 2.0], "/b": [3.0]}, failures=1)
    msg = {
        "type": "interval",
        "index": 2,
        "start": 2.0,
        "end": 3.0,
        "users": 5,
        "stage": "spike",
        "endpoints": {k: v.to_wire() for k, v in iv.endpoints.items()},
    }
    back = Interval.from_message(msg)
    assert back.total.requests == 3 and back.total.failures == 2 and back.stage == "spike"


def test_report_totals_are_the_sum_of_the_intervals() -> None:
    ivs = [interval(i, {"/a": [5.0 + i] * 10, "/b": [50.0] * 5}) for i in range(3)]
    data = make_report(ivs).to_dict()
    assert data["total"]["requests"] == 45
    assert data["endpoints"]["/a"]["requests"] == 30
    assert data["endpoints"]["/b"]["p95_ms"] == pytest.approx(50, rel=0.01)
    assert data["ran_seconds"] == 3.0 and data["total"]["rps"] == 15.0
    assert [r["second"] for r in data["intervals"]] == [1.0, 2.0, 3.0]
    assert data["verdict"]["met"] is True


def test_summary_rows_have_a_total_row_only_for_several_endpoints() -> None:
    one = summary_rows(make_report([interval(0, {"/a": [5.0] * 10})]))
    assert [r[0] for r in one] == ["/a"]
    several = summary_rows(make_report([interval(0, {"/a": [5.0], "/b": [7.0]})]))
    assert [r[0] for r in several] == ["/a", "/b", "total"]
    assert several[-1][1] == "2"


def test_timeseries_csv_has_a_row_per_interval() -> None:
    report = make_report([interval(i, {"/a": [10.0 * (i + 1)] * 4}) for i in range(3)])
    rows = list(csv.DictReader(io.StringIO(timeseries_csv(report))))
    assert tuple(rows[0]) == CSV_COLUMNS
    assert [float(r["p50_ms"]) for r in rows] == pytest.approx([10, 20, 30], rel=0.01)
    assert [int(r["requests"]) for r in rows] == [4, 4, 4]


def test_html_report_is_self_contained_and_escaped() -> None:
    report = make_report([interval(i, {"/a": [10.0 * (i + 1)] * 4}) for i in range(3)])
    page = report_html(report)
    assert page.startswith("<!DOCTYPE html>")
    assert page.count("<svg") == 3 and page.count("<polyline") >= 4
    assert "<script" not in page.lower()
    # no external resource: the only URL is the SVG namespace (and the target, as text)
    urls = set(re.findall(r"https?://[^\s\"<]+", page))
    assert urls <= {"http://www.w3.org/2000/svg", "http://127.0.0.1:1"}
    assert "HTTPError(&#x27;500 &lt;boom&gt;&#x27;)" in page
    assert "SLOs met" in page


def test_live_line() -> None:
    line = live_line(interval(4, {"/a": [12.0] * 50}), 60)
    assert line.startswith("0:05/1:00  users 5  50 req/s  p50 12.0")
    assert "errors 0.00%" in line


def test_live_lines_fit_a_narrow_terminal() -> None:
    top, bottom = live_lines(interval(4, {"/a": [12.0] * 50}), 60)
    assert top == "elapsed 0:05 of 1:00 (0:55 left)  users 5"
    assert bottom.startswith("50 req/s  p50 12.0  p95 12.0")
    assert max(len(top), len(bottom)) < 80
