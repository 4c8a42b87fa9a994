"""Load-test numbers as data: latency histograms, intervals, the report, its CSV and HTML.

Pure. The load generator (a child process, see ``adapters/loadtest.py``) records every response
time in a ``LatencyHistogram`` per interval and per endpoint and sends the histograms; everything
here is computed from them, so the per-interval percentiles come from the interval's own samples
(Locust's own history is cumulative) and the totals are exactly the sum of the intervals.
The HTML report is ``templates/reports/load.html.j2`` filled with ``load_page``.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from tradewise_ops.core.charts import COLORS, Series, line_chart
from tradewise_ops.core.pages import render_page
from tradewise_ops.core.slo import Verdict

# log-spaced buckets: 100 per e-fold from 0.01 ms, so a bucket is 1% wide (0.5% error at its middle)
_BUCKETS_PER_E = 100.0
_FLOOR_MS = 0.01
PERCENTILES = (50, 95, 99)


class LatencyHistogram:
    """Response times in log-spaced buckets (1% wide) plus the exact count, sum, min and max.

    Mergeable and small enough to send every second; percentiles are accurate to 0.5%.
    """

    __slots__ = ("buckets", "count", "total", "min", "max")

    def __init__(self) -> None:
        self.buckets: dict[int, int] = {}
        self.count = 0
        self.total = 0.0
        self.min = math.inf
        self.max = 0.0

    def add(self, ms: float, n: int = 1) -> None:
        """Record ``n`` responses of ``ms`` milliseconds."""
        ms = max(float(ms), 0.0)
        idx = 0 if ms <= _FLOOR_MS else int(math.log(ms / _FLOOR_MS) * _BUCKETS_PER_E)
        self.buckets[idx] = self.buckets.get(idx, 0) + n
        self.count += n
        self.total += ms * n
        if ms < self.min:
            self.min = ms
        if ms > self.max:
            self.max = ms

    def merge(self, other: LatencyHistogram) -> None:
        """Add every sample of ``other`` to this histogram."""
        for idx, n in other.buckets.items():
            self.buckets[idx] = self.buckets.get(idx, 0) + n
        self.count += other.count
        self.total += other.total
        self.min = min(self.min, other.min)
        self.max = max(self.max, other.max)

    def percentile(self, q: float) -> float | None:
        """The ``q``-th percentile (0-100) by nearest rank, None when empty.

        The value is the middle of the bucket holding that rank, clamped to the exact min/max.
        """
        if self.count == 0:
            return None
        rank = max(1, math.ceil(q / 100.0 * self.count))
        seen = 0
        for idx in sorted(self.buckets):
            seen += self.buckets[idx]
            if seen >= rank:
                mid = _FLOOR_MS * math.exp((idx + 0.5) / _BUCKETS_PER_E) if idx else _FLOOR_MS
                return min(max(mid, self.min), self.max)
        return self.max

    @property
    def mean(self) -> float | None:
        """The exact mean, None when empty."""
        return self.total / self.count if self.count else None

    def to_wire(self) -> dict[str, Any]:
        """A compact JSON-ready form (``from_wire`` reads it back)."""
        return {
            "n": self.count,
            "sum": round(self.total, 3),
            "min": None if self.count == 0 else round(self.min, 3),
            "max": round(self.max, 3),
            "b": {str(k): v for k, v in self.buckets.items()},
        }

    @classmethod
    def from_wire(cls, data: Mapping[str, Any]) -> LatencyHistogram:
        """The histogram ``to_wire`` wrote."""
        hist = cls()
        hist.buckets = {int(k): int(v) for k, v in dict(data.get("b", {})).items()}
        hist.count = int(data.get("n", 0))
        hist.total = float(data.get("sum", 0.0))
        hist.min = math.inf if data.get("min") is None else float(data["min"])
        hist.max = float(data.get("max", 0.0))
        return hist


@dataclass
class EndpointCounts:
    """Requests, failures and response times of one endpoint (or group) over some time."""

    requests: int = 0
    failures: int = 0
    latency: LatencyHistogram = field(default_factory=LatencyHistogram)

    def merge(self, other: EndpointCounts) -> None:
        """Add ``other`` to these counts."""
        self.requests += other.requests
        self.failures += other.failures
        self.latency.merge(other.latency)

    def to_wire(self) -> dict[str, Any]:
        """JSON-ready form sent by the generator."""
        return {
            "requests": self.requests,
            "failures": self.failures,
            "hist": self.latency.to_wire(),
        }

    @classmethod
    def from_wire(cls, data: Mapping[str, Any]) -> EndpointCounts:
        """The counts ``to_wire`` wrote."""
        return cls(
            requests=int(data.get("requests", 0)),
            failures=int(data.get("failures", 0)),
            latency=LatencyHistogram.from_wire(data.get("hist", {})),
        )


@dataclass
class Interval:
    """One reporting interval of a run (usually 1 s), from the interval's own samples."""

    index: int
    start: float  # seconds since the run began
    end: float
    users: int
    endpoints: dict[str, EndpointCounts]
    stage: str | None = None

    @property
    def total(self) -> EndpointCounts:
        """All endpoints together."""
        out = EndpointCounts()
        for counts in self.endpoints.values():
            out.merge(counts)
        return out

    @property
    def seconds(self) -> float:
        return max(self.end - self.start, 1e-9)

    @classmethod
    def from_message(cls, msg: Mapping[str, Any]) -> Interval:
        """An interval from the generator's ``{"type": "interval", ...}`` line."""
        return cls(
            index=int(msg["index"]),
            start=float(msg["start"]),
            end=float(msg["end"]),
            users=int(msg.get("users", 0)),
            endpoints={
                str(k): EndpointCounts.from_wire(v) for k, v in dict(msg["endpoints"]).items()
            },
            stage=msg.get("stage"),
        )

    def row(self) -> dict[str, Any]:
        """The interval's line of the time series."""
        total = self.total
        lat = total.latency
        return {
            "second": round(self.end, 3),
            "users": self.users,
            "requests": total.requests,
            "failures": total.failures,
            "rps": round(total.requests / self.seconds, 2),
            "error_rate": round(total.failures / total.requests, 5) if total.requests else 0.0,
            "p50_ms": _r(lat.percentile(50)),
            "p95_ms": _r(lat.percentile(95)),
            "p99_ms": _r(lat.percentile(99)),
            "max_ms": _r(lat.max if lat.count else None),
            "stage": self.stage or "",
        }


def _r(value: float | None, digits: int = 2) -> float | None:
    return None if value is None else round(value, digits)


@dataclass
class LoadReport:
    """Everything a run produced: settings, intervals, per-endpoint totals and the verdict."""

    target: str
    kind: str  # "load-test" or "performance-test"
    started_at: float  # unix time
    planned_seconds: float
    users: int
    spawn_rate: float
    workers: int
    intervals: list[Interval]
    verdict: Verdict
    aborted: bool = False
    stopped_by: str = "duration"
    errors: list[dict[str, Any]] = field(default_factory=list)
    generator: dict[str, Any] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def ran_seconds(self) -> float:
        """How long load was sent (end of the last interval)."""
        return self.intervals[-1].end if self.intervals else 0.0

    def endpoints(self) -> dict[str, EndpointCounts]:
        """Per-endpoint totals over the whole run (sum of the intervals)."""
        return endpoint_totals(self.intervals)

    def total(self) -> EndpointCounts:
        """All endpoints over the whole run."""
        return run_totals(self.intervals)

    def to_dict(self) -> dict[str, Any]:
        """The JSON report: for machines and CI."""
        seconds = self.ran_seconds
        return {
            "kind": self.kind,
            "target": self.target,
            "started_at": self.started_at,
            "planned_seconds": self.planned_seconds,
            "ran_seconds": round(seconds, 3),
            "users": self.users,
            "spawn_rate": self.spawn_rate,
            "workers": self.workers,
            "aborted": self.aborted,
            "stopped_by": self.stopped_by,
            "settings": self.settings,
            "total": _summary(self.total(), seconds),
            "endpoints": {
                name: _summary(c, seconds) for name, c in sorted(self.endpoints().items())
            },
            "verdict": self.verdict.to_dict(),
            "errors": self.errors,
            "generator": self.generator,
            "intervals": [iv.row() for iv in self.intervals],
        }


def endpoint_totals(intervals: Iterable[Interval]) -> dict[str, EndpointCounts]:
    """Sum the per-endpoint counts of ``intervals``."""
    totals: dict[str, EndpointCounts] = {}
    for iv in intervals:
        for name, counts in iv.endpoints.items():
            totals.setdefault(name, EndpointCounts()).merge(counts)
    return totals


def run_totals(intervals: Iterable[Interval]) -> EndpointCounts:
    """Every endpoint of every interval together: the run's totals."""
    out = EndpointCounts()
    for counts in endpoint_totals(intervals).values():
        out.merge(counts)
    return out


def compact_summary(
    endpoints: Mapping[str, EndpointCounts],
    *,
    ran_seconds: float,
    stopped_by: str,
    errors: Sequence[Mapping[str, Any]] = (),
    limit_bytes: int = 3800,
) -> dict[str, Any]:
    """A run's totals small enough for a pod's termination message (4 KiB).

    The totals and the busiest endpoints with their percentiles, the top errors; endpoints and
    errors are dropped from the end until the JSON fits ``limit_bytes``.
    """
    import json

    total = EndpointCounts()
    for counts in endpoints.values():
        total.merge(counts)
    busiest = sorted(endpoints.items(), key=lambda kv: -kv[1].requests)
    doc: dict[str, Any] = {
        "v": 1,
        "ran_seconds": round(ran_seconds, 3),
        "stopped_by": stopped_by,
        "total": _summary(total, ran_seconds),
        "endpoints": {name: _summary(c, ran_seconds) for name, c in busiest[:20]},
        "errors": [
            {k: str(e.get(k, ""))[:120] for k in ("name", "error", "occurrences")}
            for e in list(errors)[:5]
        ],
    }
    while len(json.dumps(doc, separators=(",", ":"))) > limit_bytes:
        if doc["errors"]:
            doc["errors"].pop()
        elif len(doc["endpoints"]) > 1:
            doc["endpoints"].pop(next(reversed(doc["endpoints"])))
        else:
            break
    return doc


def _summary(counts: EndpointCounts, seconds: float) -> dict[str, Any]:
    lat = counts.latency
    return {
        "requests": counts.requests,
        "failures": counts.failures,
        "error_rate": round(counts.failures / counts.requests, 5) if counts.requests else 0.0,
        "rps": round(counts.requests / seconds, 2) if seconds > 0 else 0.0,
        "mean_ms": _r(lat.mean),
        "min_ms": _r(lat.min if lat.count else None),
        "p50_ms": _r(lat.percentile(50)),
        "p95_ms": _r(lat.percentile(95)),
        "p99_ms": _r(lat.percentile(99)),
        "max_ms": _r(lat.max if lat.count else None),
    }


# --------------------------------------------------------------------------------------------
# for people: table rows and the live line
# --------------------------------------------------------------------------------------------
SUMMARY_COLUMNS = ("endpoint", "requests", "failures", "req/s", "p50 ms", "p95 ms", "p99 ms", "max")


def summary_rows(report: LoadReport) -> list[tuple[str, ...]]:
    """Rows of the per-endpoint summary table, with a total row when there are several."""
    seconds = report.ran_seconds
    rows: list[tuple[str, ...]] = []
    endpoints = report.endpoints()
    items = sorted(endpoints.items())
    if len(items) != 1:
        items.append(("total", report.total()))
    for name, counts in items:
        s = _summary(counts, seconds)
        rows.append(
            (
                name,
                str(s["requests"]),
                f"{s['failures']} ({s['error_rate'] * 100:.2f}%)",
                f"{s['rps']:.1f}",
                _ms(s["p50_ms"]),
                _ms(s["p95_ms"]),
                _ms(s["p99_ms"]),
                _ms(s["max_ms"]),
            )
        )
    return rows


def _ms(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.1f}" if value < 100 else f"{value:.0f}"


def live_line(interval: Interval, planned_seconds: float) -> str:
    """One line of progress: elapsed/planned, users, req/s, p50/p95/p99, error rate."""
    row = interval.row()
    return (
        f"{_clock(interval.end)}/{_clock(planned_seconds)}  users {row['users']}  "
        f"{row['rps']:.0f} req/s  p50 {_ms(row['p50_ms'])}  p95 {_ms(row['p95_ms'])}  "
        f"p99 {_ms(row['p99_ms'])} ms  errors {row['error_rate'] * 100:.2f}%"
        + (f"  [{interval.stage}]" if interval.stage else "")
    )


def live_lines(interval: Interval, planned_seconds: float) -> tuple[str, str]:
    """Two short lines for a live display: time and users; throughput, latency, errors."""
    row = interval.row()
    left = max(planned_seconds - interval.end, 0.0)
    return (
        f"elapsed {_clock(interval.end)} of {_clock(planned_seconds)} ({_clock(left)} left)  "
        f"users {row['users']}" + (f"  stage {interval.stage}" if interval.stage else ""),
        f"{row['rps']:.0f} req/s  p50 {_ms(row['p50_ms'])}  p95 {_ms(row['p95_ms'])}  "
        f"p99 {_ms(row['p99_ms'])} ms  errors {row['error_rate'] * 100:.2f}%",
    )


def _clock(seconds: float) -> str:
    m, s = divmod(int(round(seconds)), 60)
    return f"{m}:{s:02d}"


# --------------------------------------------------------------------------------------------
# files: CSV time series and the self-contained HTML report
# --------------------------------------------------------------------------------------------
CSV_COLUMNS = (
    "second",
    "users",
    "requests",
    "failures",
    "rps",
    "error_rate",
    "p50_ms",
    "p95_ms",
    "p99_ms",
    "max_ms",
    "stage",
)


def timeseries_csv(report: LoadReport) -> str:
    """The per-interval time series as CSV (percentiles from each interval's own samples)."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for iv in report.intervals:
        row = iv.row()
        writer.writerow({k: ("" if row[k] is None else row[k]) for k in CSV_COLUMNS})
    return buf.getvalue()


def load_page(report: LoadReport) -> dict[str, Any]:
    """What the HTML report shows, as data: facts, the endpoint table, three charts, errors."""
    rows = [iv.row() for iv in report.intervals]
    xs = [r["second"] for r in rows]
    charts = [
        line_chart(
            "Latency per interval",
            xs,
            [
                Series("p50", COLORS["p50"], [r["p50_ms"] for r in rows]),
                Series("p95", COLORS["p95"], [r["p95_ms"] for r in rows]),
                Series("p99", COLORS["p99"], [r["p99_ms"] for r in rows]),
            ],
            "ms",
            objective=_threshold(report, "p95"),
        ),
        line_chart(
            "Throughput and users",
            xs,
            [
                Series("req/s", COLORS["rps"], [r["rps"] for r in rows]),
                Series("users", COLORS["users"], [float(r["users"]) for r in rows]),
            ],
            "req/s",
        ),
        line_chart(
            "Error rate per interval",
            xs,
            [Series("errors %", COLORS["err"], [r["error_rate"] * 100 for r in rows])],
            "%",
            objective=(_threshold(report, "error_rate") or 0) * 100 or None,
        ),
    ]
    return {
        "kind": report.kind,
        "target": report.target,
        "badge": "met" if report.verdict.met else "missed",
        "sentence": report.verdict.sentence(),
        "facts": [
            ("target", report.target),
            ("kind", report.kind),
            (
                "ran",
                f"{round(report.ran_seconds, 3):.1f} s of {report.planned_seconds:.0f} s planned",
            ),
            ("users", f"{report.users} (spawn rate {report.spawn_rate:g}/s)"),
            ("workers", str(report.workers or "1 process")),
            ("stopped by", report.stopped_by + (" (aborted)" if report.aborted else "")),
        ],
        "endpoints": {"columns": SUMMARY_COLUMNS, "rows": summary_rows(report)},
        "charts": charts,
        "errors": {
            "columns": ("endpoint", "error", "count"),
            "rows": [
                (str(e.get("name", "")), str(e.get("error", "")), e.get("occurrences", ""))
                for e in report.errors
            ],
        },
    }


def report_html(report: LoadReport) -> str:
    """A self-contained HTML report (inline CSS and SVG; no script, no network).

    The page is ``templates/reports/load.html.j2`` filled with ``load_page``.
    """
    return render_page("load.html.j2", **load_page(report))


def _threshold(report: LoadReport, name: str) -> float | None:
    for check in report.verdict.checks:
        if check.name == name:
            return check.threshold
    return None
