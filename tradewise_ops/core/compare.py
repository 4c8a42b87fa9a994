"""Two load runs side by side: thresholds, run-to-run noise, regressions (``tradewise compare``).

Pure. A run is a load report as data: the ``report.json`` of ``load-test``/``performance-test``
(or their ``-o json``), or the ``verification`` load summary of a release record (written by
``load_summary``). ``read_run`` checks that a document is one; ``check_comparable`` that two runs
measured the same thing (same kind, endpoints, users, waits, stages and interval length);
``compare`` puts them side by side, per endpoint and in total.

A metric of NEW is a regression when both hold:

1. its change against BASE (the run totals) is beyond the threshold of ``compare:`` in
   ``tradewise.yaml`` (p95 up by more than 10 %, req/s down by more than 10 %, error rate up by
   more than 0.5 percentage points, ...), and
2. the change is outside the run-to-run noise. Each run carries its metric per interval
   (usually per second); of its steady intervals (full-length intervals with requests; in a
   ``load-test``, those at the run's full user count) take the median and the band from the
   10th to the 90th percentile (nearest rank: under 10 intervals, from the lowest to the
   highest); the band's width is the run's spread. The noise is BASE's spread plus NEW's: the
   two runs differ beyond noise when their medians are further apart than that. A difference
   smaller than the spread seen within the runs is "within noise": seconds of the same run
   already differ as much, so two runs can too (on a shared machine runs drift against each
   other by more than one run's own spread; adding both spreads allows for that). A burst
   confined to a few seconds (of errors, of latency) moves no median, so it counts as noise;
   the run's own SLO verdict still sees it.

With fewer than ``MIN_INTERVALS`` steady intervals in a run (an in-cluster report, a very short
run) the noise cannot be estimated: the thresholds alone decide and the comparison says so.
Scaling facts (``--monitor``: peak replicas, slowest scale-up) are one number per run, so only
their thresholds apply.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from tradewise_ops.core.config import CompareThresholds
from tradewise_ops.errors import BadInputError

MIN_INTERVALS = 3
NOISE_LOW, NOISE_HIGH = 10, 90  # the percentiles that bound a run's band of interval values
SUMMARY_VERSION = 1

# metric key -> (label, unit, which way is worse, the threshold's field)
METRICS: dict[str, tuple[str, str, str, str]] = {
    "rps": ("req/s", "", "down", "rps_percent"),
    "p50_ms": ("p50", " ms", "up", "p50_percent"),
    "p95_ms": ("p95", " ms", "up", "p95_percent"),
    "p99_ms": ("p99", " ms", "up", "p99_percent"),
    "error_rate": ("error rate", "", "up", "error_rate_points"),
}
OK, BETTER, WITHIN_NOISE, REGRESSED, SHOWN, MISSING = (
    "ok",
    "better",
    "within noise",
    "regressed",
    "not judged",
    "n/a",
)
_RELEASE_REF = re.compile(r"^(?P<env>[a-z0-9]([-a-z0-9]*[a-z0-9])?)@(?P<rev>\d+)$")


# --------------------------------------------------------------------------------------------
# runs
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Run:
    """One load run as ``compare`` needs it."""

    label: str
    kind: str
    target: str
    shape: Mapping[str, Any]
    total: Mapping[str, Any]
    endpoints: Mapping[str, Mapping[str, Any]]
    series: Mapping[str, Sequence[Mapping[str, Any]]]  # "total" and endpoints -> steady rows
    scaling: Mapping[str, Any] | None = None
    intervals: Sequence[Mapping[str, Any]] = ()  # every per-interval row, as in the report

    def steady(self, scope: str) -> Sequence[Mapping[str, Any]]:
        """The steady per-interval rows of ``scope`` ("total" or an endpoint), maybe empty."""
        return self.series.get(scope, ())


def parse_ref(text: str) -> tuple[str, int] | None:
    """``ENV@REVISION`` as (env, revision); None when ``text`` is not of that form (a file)."""
    m = _RELEASE_REF.match(text.strip())
    if not m:
        return None
    revision = int(m.group("rev"))
    if revision < 1:
        raise BadInputError(f"{text!r}: a revision is a number from 1 (see `tradewise history`)")
    return m.group("env"), revision


def read_run(doc: Any, label: str) -> Run:
    """The run in a load report document; ``BadInputError`` (exit 2) when it is not one.

    Accepts ``report.json``/``-o json`` of load-test and performance-test (also in-cluster
    ones), and ``load_summary`` documents (release records' ``verification``, alone or under
    ``load``).
    """
    if isinstance(doc, Mapping) and "total" not in doc and isinstance(doc.get("load"), Mapping):
        doc = doc["load"]
    if not isinstance(doc, Mapping):
        raise BadInputError(f"{label} is not a tradewise load report (not a JSON object)")
    missing = [k for k in ("kind", "total", "endpoints") if k not in doc]
    total = doc.get("total")
    if missing or not isinstance(total, Mapping) or not isinstance(doc["endpoints"], Mapping):
        raise BadInputError(
            f"{label} is not a tradewise load report (no {', '.join(missing) or 'totals'}): give "
            "the report.json of `load-test --report DIR` or `performance-test --report DIR`"
        )
    settings = _mapping(doc.get("settings"))
    interval = float(settings.get("interval_seconds") or 1.0)
    rows = _list(doc.get("intervals"))
    users = int(doc.get("users") or 0)
    staged = bool(settings.get("stages"))
    series: dict[str, list[Mapping[str, Any]]] = {"total": _steady(rows, interval, users, staged)}
    by_endpoint = doc.get("endpoint_intervals")
    endpoints = {str(k): v for k, v in doc["endpoints"].items() if isinstance(v, Mapping)}
    if isinstance(by_endpoint, Mapping):
        for name, erows in by_endpoint.items():
            if isinstance(erows, list):
                series[str(name)] = _steady(erows, interval, users, staged)
    elif len(endpoints) == 1:
        series[next(iter(endpoints))] = series["total"]
    shape = {
        "kind": doc["kind"],
        "users": doc.get("users"),
        "wait": settings.get("wait"),
        "stages": [
            (_mapping(s).get("name"), _mapping(s).get("users"))
            for s in _list(settings.get("stages"))
        ],
        "interval_seconds": settings.get("interval_seconds"),
    }
    scaling = doc.get("scaling")
    if not isinstance(scaling, Mapping) and isinstance(doc.get("monitor"), Mapping):
        scaling = scaling_facts(doc["monitor"])
    return Run(
        label=label,
        kind=str(doc["kind"]),
        target=str(doc.get("target", "")),
        shape=shape,
        total=total,
        endpoints=endpoints,
        series=series,
        scaling=scaling if isinstance(scaling, Mapping) else None,
        intervals=[r for r in rows if isinstance(r, Mapping)],
    )


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _steady(
    rows: Sequence[Any], interval: float, users: int, staged: bool
) -> list[Mapping[str, Any]]:
    """Full-length intervals with requests; in an unstaged run, those at full user count."""
    out: list[Mapping[str, Any]] = []
    previous = 0.0
    for row in rows:
        if not isinstance(row, Mapping):
            continue
        end = float(row.get("second") or 0.0)
        full = end - previous >= 0.9 * interval
        previous = end
        if not full or not row.get("requests"):
            continue
        if not staged and users and row.get("users") is not None and row["users"] < users:
            continue
        out.append(row)
    return out


def scaling_facts(monitor: Mapping[str, Any]) -> dict[str, Any] | None:
    """Peak replicas per Deployment and the slowest scale-up, from ``--monitor``'s data.

    The peak of a Deployment is the highest of its scale-ups' targets and the replicas wanted
    when monitoring ended; the slowest scale-up is the longest trigger-to-ready time.
    """
    peaks: dict[str, int] = {}
    ups = [u for u in monitor.get("scale_ups") or [] if isinstance(u, Mapping)]
    for up in ups:
        name = str(up.get("deployment") or up.get("hpa") or "?")
        if up.get("to_replicas") is not None:
            peaks[name] = max(peaks.get(name, 0), int(up["to_replicas"]))
    state = _mapping(monitor.get("state"))
    for dep in _list(state.get("deployments")):
        for key in ("desired", "ready"):
            if isinstance(dep, Mapping) and dep.get(key) is not None:
                name = str(dep.get("name"))
                peaks[name] = max(peaks.get(name, 0), int(dep[key]))
    for name, proc in _mapping(state.get("processes")).items():
        if isinstance(proc, Mapping) and proc.get("running") is not None:
            peaks[str(name)] = max(peaks.get(str(name), 0), int(proc["running"]))
    seconds = [float(u["total_seconds"]) for u in ups if u.get("total_seconds") is not None]
    if not peaks and not seconds:
        return None
    return {
        "peak_replicas": dict(sorted(peaks.items())),
        "scale_ups": len(ups),
        "scale_up_seconds": max(seconds) if seconds else None,
    }


def load_summary(report: Mapping[str, Any]) -> dict[str, Any]:
    """A load report trimmed to what ``compare`` reads, for a release record's ``verification``.

    Kind, target, settings, totals per endpoint, the per-interval series (total and per
    endpoint) and the scaling facts of a ``--monitor`` run; ``read_run`` reads it back.
    """
    run = read_run(report, "the report")  # refuses what is not a report
    doc: dict[str, Any] = {
        "v": SUMMARY_VERSION,
        "kind": run.kind,
        "target": run.target,
        "started_at": report.get("started_at"),
        "ran_seconds": report.get("ran_seconds"),
        "users": report.get("users"),
        "settings": report.get("settings") or {},
        "total": dict(run.total),
        "endpoints": {k: dict(v) for k, v in run.endpoints.items()},
        "intervals": list(report.get("intervals") or []),
        "verdict": report.get("verdict"),
    }
    if isinstance(report.get("endpoint_intervals"), Mapping):
        doc["endpoint_intervals"] = dict(report["endpoint_intervals"])
    if run.scaling is not None:
        doc["scaling"] = dict(run.scaling)
    return doc


def check_comparable(base: Run, new: Run) -> None:
    """``BadInputError`` (exit 2) naming every way the two runs measured different things."""
    problems = []
    if base.kind != new.kind:
        problems.append(f"BASE is a {base.kind}, NEW a {new.kind}")
    only_base = sorted(set(base.endpoints) - set(new.endpoints))
    only_new = sorted(set(new.endpoints) - set(base.endpoints))
    if only_base or only_new:
        parts = []
        if only_base:
            parts.append("only in BASE: " + ", ".join(only_base))
        if only_new:
            parts.append("only in NEW: " + ", ".join(only_new))
        problems.append("different endpoints (" + "; ".join(parts) + ")")
    for key, what in (
        ("users", "users"),
        ("wait", "wait between requests"),
        ("stages", "stages"),
        ("interval_seconds", "interval length"),
    ):
        a, b = base.shape.get(key), new.shape.get(key)
        if a in (None, []) or b in (None, []):
            continue  # a report without the setting (in-cluster, older): cannot tell
        if a != b:
            problems.append(f"different {what} ({_shape_text(a)} vs {_shape_text(b)})")
    if problems:
        raise BadInputError(
            f"{base.label} and {new.label} cannot be compared: " + "; ".join(problems)
        )


def _shape_text(value: Any) -> str:
    if isinstance(value, list):
        return ", ".join(f"{n} {u}" for n, u in value)
    return str(value)


# --------------------------------------------------------------------------------------------
# the comparison
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Spread:
    """A run's per-interval values of one metric: their median and their P10-P90 band."""

    median: float
    low: float
    high: float
    count: int

    @property
    def width(self) -> float:
        """The run's spread: P90 - P10."""
        return self.high - self.low

    def to_dict(self) -> dict[str, Any]:
        return {"median": self.median, "p10": self.low, "p90": self.high, "intervals": self.count}


def spread(values: Sequence[float]) -> Spread | None:
    """Median and P10-P90 band (nearest rank) of ``values``; None under ``MIN_INTERVALS``."""
    xs = sorted(values)
    n = len(xs)
    if n < MIN_INTERVALS:
        return None

    def rank(q: float) -> float:
        return xs[max(0, math.ceil(q / 100 * n) - 1)]

    median = xs[n // 2] if n % 2 else (xs[n // 2 - 1] + xs[n // 2]) / 2
    return Spread(median, rank(NOISE_LOW), rank(NOISE_HIGH), n)


def noise(base: Run, new: Run, scope: str, metric: str) -> tuple[Spread, Spread] | None:
    """Both runs' spreads of ``metric`` in ``scope`` (None when either has too few intervals)."""
    out = []
    for run in (base, new):
        values = [float(r[metric]) for r in run.steady(scope) if r.get(metric) is not None]
        s = spread(values)
        if s is None:
            return None
        out.append(s)
    return out[0], out[1]


def beyond_noise(base: Spread, new: Spread) -> bool:
    """True when the medians differ by more than the two runs' spreads together."""
    return abs(new.median - base.median) > base.width + new.width


@dataclass(frozen=True)
class Row:
    """One metric of one scope, BASE against NEW, and what it comes to."""

    scope: str  # "total", an endpoint, or "scaling"
    metric: str  # rps, p95_ms, ..., peak_replicas:DEPLOYMENT, scale_up_seconds
    base: float | None
    new: float | None
    threshold: float | None
    noise: tuple[Spread, Spread] | None  # BASE's and NEW's per-interval spread
    verdict: str
    label: str = ""
    unit: str = ""

    @property
    def change(self) -> str:
        """``+12.3%``, ``+0.40 pt`` (error rate), ``+2`` (replicas)."""
        if self.base is None or self.new is None:
            return "-"
        if self.metric == "error_rate":
            return f"{(self.new - self.base) * 100:+.2f} pt"
        if self.metric.startswith("peak_replicas"):
            return f"{self.new - self.base:+g}"
        if self.base == 0:
            return "-"
        return f"{(self.new - self.base) / self.base * 100:+.1f}%"

    def limit(self) -> str:
        """The threshold as the user wrote it: ``+10%``, ``-10%``, ``+0.5 pt``, ``+1``."""
        if self.threshold is None:
            return "-"
        if self.metric == "error_rate":
            return f"+{self.threshold:g} pt"
        if self.metric.startswith("peak_replicas"):
            return f"+{self.threshold:g}"
        sign = "-" if self.metric == "rps" else "+"
        return f"{sign}{self.threshold:g}%"

    def value(self, x: float | None) -> str:
        """A figure with its unit."""
        if x is None:
            return "-"
        if self.metric == "error_rate":
            return f"{x * 100:.2f}%"
        if self.metric.startswith("peak_replicas"):
            return f"{x:g}"
        if self.metric == "scale_up_seconds":
            return f"{x:.1f} s"
        return f"{x:.1f}{self.unit}"

    def noise_text(self) -> str:
        """``+98.2 / 12.5``: how far the per-interval medians moved / the noise (both spreads)."""
        if self.noise is None:
            return "-"
        base, new = self.noise
        scale, unit = (100.0, " pt") if self.metric == "error_rate" else (1.0, "")
        moved = (new.median - base.median) * scale
        return f"{moved:+.1f} / {(base.width + new.width) * scale:.1f}{unit}"

    def sentence(self) -> str:
        """``p95 812.0 ms vs 110.0 ms (+638.2%, threshold +10%; per-interval medians ...)``."""
        where = "" if self.scope in ("total", "scaling") else f"{self.scope} "
        extra = "; noise unknown"
        if self.noise is not None:
            base, new = self.noise
            extra = (
                f"; per-interval medians {self.value(base.median)} -> {self.value(new.median)}, "
                f"noise {self.value(base.width)} + {self.value(new.width)}"
            )
        return (
            f"{where}{self.label} {self.value(self.new)} vs {self.value(self.base)} "
            f"({self.change}, threshold {self.limit()}{extra})"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "scope": self.scope,
            "metric": self.metric,
            "base": self.base,
            "new": self.new,
            "change": self.change,
            "threshold": self.limit() if self.threshold is not None else None,
            "noise": None
            if self.noise is None
            else {"base": self.noise[0].to_dict(), "new": self.noise[1].to_dict()},
            "verdict": self.verdict,
        }


@dataclass
class Comparison:
    """The side-by-side result: rows, notes, and whether NEW regressed."""

    base: str
    new: str
    rows: list[Row]
    notes: list[str] = field(default_factory=list)

    @property
    def regressions(self) -> list[Row]:
        return [r for r in self.rows if r.verdict == REGRESSED]

    @property
    def regressed(self) -> bool:
        return bool(self.regressions)

    def sentence(self) -> str:
        """One line: regressed (each regression named with both numbers), or within."""
        if self.regressed:
            return f"{self.new} regressed against {self.base}: " + "; ".join(
                r.sentence() for r in self.regressions
            )
        noisy = [r for r in self.rows if r.verdict == WITHIN_NOISE]
        tail = (
            f" ({len(noisy)} change(s) beyond a threshold but within the run-to-run noise: "
            + ", ".join(f"{r.scope} {r.label}" for r in noisy)
            + ")"
            if noisy
            else ""
        )
        return f"{self.new} is within the thresholds of {self.base}{tail}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "base": self.base,
            "new": self.new,
            "regressed": self.regressed,
            "sentence": self.sentence(),
            "noise_rule": (
                "beyond noise when the per-interval medians differ by more than the two runs' "
                f"P{NOISE_LOW}-P{NOISE_HIGH} spreads together"
            ),
            "rows": [r.to_dict() for r in self.rows],
            "regressions": [r.sentence() for r in self.regressions],
            "notes": list(self.notes),
        }


COLUMNS = (
    "scope",
    "metric",
    "BASE",
    "NEW",
    "change",
    "threshold",
    "median moved / noise",
    "verdict",
)


def comparison_rows(comparison: Comparison) -> list[tuple[str, ...]]:
    """Table rows: scope, metric, both figures, change, threshold, noise, verdict."""
    return [
        (
            r.scope,
            r.label,
            r.value(r.base),
            r.value(r.new),
            r.change,
            r.limit(),
            r.noise_text(),
            r.verdict.upper() if r.verdict == REGRESSED else r.verdict,
        )
        for r in comparison.rows
    ]


def with_overrides(thresholds: CompareThresholds, **flags: float | None) -> CompareThresholds:
    """``thresholds`` with the command-line values that were given (not None)."""
    given = {k: v for k, v in flags.items() if v is not None}
    for key, value in given.items():
        if value < 0:
            raise BadInputError(f"--{key.replace('_', '-')} must be 0 or more (got {value:g})")
    return dataclasses.replace(thresholds, **given)


def compare(base: Run, new: Run, thresholds: CompareThresholds) -> Comparison:
    """BASE and NEW side by side in total, per endpoint and (both ``--monitor``) scaling.

    Call ``check_comparable`` first.
    """
    rows: list[Row] = []
    notes: list[str] = []
    scopes = ["total", *sorted(base.endpoints)] if len(base.endpoints) > 1 else ["total"]
    for scope in scopes:
        b = base.total if scope == "total" else base.endpoints.get(scope, {})
        n = new.total if scope == "total" else new.endpoints.get(scope, {})
        for metric, (label, unit, worse, key) in METRICS.items():
            rows.append(
                _judge(
                    scope,
                    metric,
                    label,
                    unit,
                    worse,
                    _num(b.get(metric)),
                    _num(n.get(metric)),
                    getattr(thresholds, key),
                    noise(base, new, scope, metric),
                )
            )
    for run in (base, new):
        if len(run.steady("total")) < MIN_INTERVALS:
            notes.append(
                f"{run.label} has fewer than {MIN_INTERVALS} steady intervals: the run-to-run "
                "noise is not estimated, the thresholds alone decide"
            )
    if base.scaling and new.scaling:
        rows += _scaling_rows(base.scaling, new.scaling, thresholds)
    elif base.scaling or new.scaling:
        notes.append("only one run carries --monitor data: scaling is not compared")
    return Comparison(base.label, new.label, rows, notes)


def _num(value: Any) -> float | None:
    return None if value is None else float(value)


def _judge(
    scope: str,
    metric: str,
    label: str,
    unit: str,
    worse: str,
    base: float | None,
    new: float | None,
    threshold: float | None,
    band: tuple[Spread, Spread] | None,
) -> Row:
    def row(verdict: str) -> Row:
        return Row(scope, metric, base, new, threshold, band, verdict, label, unit)

    if base is None or new is None:
        return row(MISSING)
    if threshold is None:
        return row(SHOWN)
    delta = new - base if worse == "up" else base - new  # > 0: NEW is worse
    if metric == "error_rate":
        beyond = delta * 100 > threshold
        improved = -delta * 100 > threshold
    elif base > 0:
        beyond = delta / base * 100 > threshold
        improved = -delta / base * 100 > threshold
    else:
        beyond = improved = False
    outside = band is None or beyond_noise(*band)
    if beyond:
        return row(REGRESSED if outside else WITHIN_NOISE)
    return row(BETTER if improved and outside else OK)


def _scaling_rows(
    base: Mapping[str, Any], new: Mapping[str, Any], thresholds: CompareThresholds
) -> list[Row]:
    rows = []
    peaks_b = base.get("peak_replicas") or {}
    peaks_n = new.get("peak_replicas") or {}
    for name in sorted(set(peaks_b) | set(peaks_n)):
        b, n = _num(peaks_b.get(name)), _num(peaks_n.get(name))
        limit = thresholds.peak_replicas
        if b is None or n is None:
            verdict = MISSING
        elif limit is None:
            verdict = SHOWN
        else:
            verdict = REGRESSED if n - b > limit else (BETTER if b - n > limit else OK)
        rows.append(
            Row("scaling", f"peak_replicas:{name}", b, n, limit, None, verdict, f"{name} peak")
        )
    b, n = _num(base.get("scale_up_seconds")), _num(new.get("scale_up_seconds"))
    rows.append(
        _judge(
            "scaling",
            "scale_up_seconds",
            "slowest scale-up",
            " s",
            "up",
            b,
            n,
            thresholds.scale_up_percent,
            None,
        )
    )
    return rows


# --------------------------------------------------------------------------------------------
# --baseline: a finished run against an earlier one
# --------------------------------------------------------------------------------------------
@dataclass
class BaselineCheck:
    """``--baseline``: the comparison of a finished run, or why the two cannot be compared."""

    base: Run | None = None
    comparison: Comparison | None = None
    problem: BadInputError | None = None

    def to_dict(self) -> dict[str, Any] | None:
        """The ``comparison`` key of the run's JSON (None without ``--baseline``)."""
        if self.base is None:
            return None
        if self.comparison is None:
            return {"base": self.base.label, "comparable": False, "sentence": str(self.problem)}
        return {"comparable": True, **self.comparison.to_dict()}

    def tail(self) -> str:
        """``; within the thresholds of BASE`` / ``; regressed ...`` for the run's verdict line."""
        return "" if self.comparison is None else "; " + self.comparison.sentence()

    def raise_if_incomparable(self) -> None:
        """``BadInputError`` (exit 2) when the baseline measured something else."""
        if self.problem is not None:
            raise self.problem

    def raise_if_regressed(self, verdict: str) -> None:
        """``GoalMissedError`` (exit 1) naming each regression, after the run's own verdict."""
        from tradewise_ops.errors import GoalMissedError

        if self.comparison is not None and self.comparison.regressed:
            raise GoalMissedError(f"{verdict}; {self.comparison.sentence()}")


def against_baseline(
    base: Run | None, report: Mapping[str, Any], thresholds: CompareThresholds
) -> BaselineCheck:
    """Compare a finished run's report with ``base``; an empty check without one."""
    if base is None:
        return BaselineCheck()
    new = read_run(report, "this run")
    try:
        check_comparable(base, new)
    except BadInputError as exc:
        return BaselineCheck(base, None, exc)
    return BaselineCheck(base, compare(base, new, thresholds))
