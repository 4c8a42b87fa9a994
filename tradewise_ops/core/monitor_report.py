"""What ``tradewise monitor`` shows: live tables, the summary, and the load-vs-replicas report.

Pure formatters: they return ``TableData`` rows, dicts and an HTML string (inline CSS and SVG,
no script, no network), so they are testable without a terminal. The HTML page is
``templates/reports/monitor.html.j2`` filled with ``combined_page``: traffic, replica steps and
scaling-event markers drawn by ``core.charts`` (as on the load-test report), and the latency
tables, all on one time axis (seconds since the timeline began).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict
from typing import Any

from tradewise_ops.core.charts import COLORS, PALETTE, Marker, Series, line_chart, steps
from tradewise_ops.core.config import Slo
from tradewise_ops.core.pages import render_page
from tradewise_ops.core.timeline import (
    FAIL,
    NONE,
    PASS,
    PENDING,
    Analysis,
    ClusterView,
    EventRecord,
    LoadSample,
    Record,
    WarningRecord,
    iso,
    replica_series,
)
from tradewise_ops.core.units import format_duration

_EVENTS_SHOWN = 12


# --------------------------------------------------------------------------------------------
# live tables
# --------------------------------------------------------------------------------------------
def hpa_rows(view: ClusterView) -> dict[str, Any]:
    """Per HPA: min/max/current/desired replicas and each metric against its target."""
    rows = []
    for h in sorted(view.hpas.values(), key=lambda h: h.name):
        metrics = ", ".join(
            m.describe() + (" ▲" if m.above else "") for m in h.metrics
        )  # ▲: above target
        rows.append(
            (h.name, h.target, h.min_replicas, h.max_replicas, h.current, h.desired, metrics or "-")
        )
    return {
        "title": "Autoscalers",
        "columns": ("hpa", "target", "min", "max", "current", "desired", "metrics (value/target)"),
        "rows": rows,
    }


def deployment_rows(view: ClusterView) -> dict[str, Any]:
    """Per Deployment: desired, ready, updated, and its pods starting/ready/restarting."""
    rows = []
    for name in view.deployment_names():
        dep = view.deployments.get(name)
        pods = view.pods_of(name)
        starting = sum(1 for p in pods if not p.ready and not p.terminating)
        restarting = sum(1 for p in pods if p.reason == "CrashLoopBackOff" or p.restarts > 0)
        terminating = sum(1 for p in pods if p.terminating)
        desired = view.desired(name)
        rows.append(
            (
                name,
                "-" if desired is None else desired,
                view.ready(name),
                "-" if dep is None else dep.updated,
                starting,
                restarting,
                terminating,
            )
        )
    return {
        "title": "Deployments and pods",
        "columns": (
            "deployment",
            "desired",
            "ready",
            "updated",
            "starting",
            "restarting",
            "ending",
        ),
        "rows": rows,
    }


def process_rows(view: ClusterView) -> dict[str, Any]:
    """The ``local`` environment: processes per component, and the app's own numbers."""
    rows = [
        (p.component, p.running, "-" if p.wanted is None else p.wanted)
        for p in sorted(view.processes.values(), key=lambda p: p.component)
    ]
    return {"title": "Processes", "columns": ("component", "running", "wanted"), "rows": rows}


def load_rows(view: ClusterView) -> dict[str, Any]:
    """The latest traffic numbers (load test or the app's metrics)."""
    s = view.load
    rows = []
    if s is not None:
        rows.append(
            (
                s.source,
                _fmt(s.rps, "{:.1f}"),
                _fmt(s.p95_ms, "{:.0f} ms"),
                _fmt(None if s.error_rate is None else s.error_rate * 100, "{:.2f}%"),
                "-" if s.queue is None else s.queue,
                "-" if s.users is None else s.users,
            )
        )
    return {
        "title": "Traffic",
        "columns": ("source", "req/s", "p95", "errors", "queue", "users"),
        "rows": rows,
    }


def event_rows(
    events: Sequence[EventRecord], start: float | None, limit: int = _EVENTS_SHOWN
) -> dict[str, Any]:
    """The latest notable events, oldest first, with timestamps."""
    shown = [e for e in events if e.notable][-limit:]
    rows = [
        (
            _clock(e.t),
            _offset(e.t, start),
            e.event_type,
            e.reason,
            f"{e.object_kind}/{e.object_name}",
            (f"(x{e.count}) " if e.count > 1 else "") + e.message,
        )
        for e in shown
    ]
    return {
        "title": "Events",
        "columns": ("time", "+s", "type", "reason", "object", "message"),
        "rows": rows,
    }


def state_data(view: ClusterView) -> dict[str, Any]:
    """What was running when monitoring ended, as data."""
    return {
        "hpas": [
            {
                "name": h.name,
                "target": h.target,
                "min": h.min_replicas,
                "max": h.max_replicas,
                "current": h.current,
                "desired": h.desired,
                "metrics": [asdict(m) for m in h.metrics],
            }
            for h in sorted(view.hpas.values(), key=lambda h: h.name)
        ],
        "deployments": [
            {"name": name, "desired": view.desired(name), "ready": view.ready(name)}
            for name in view.deployment_names()
        ],
        "processes": {
            p.component: {"running": p.running, "wanted": p.wanted} for p in view.processes.values()
        },
        "traffic": None
        if view.load is None
        else {k: v for k, v in asdict(view.load).items() if k not in ("type", "t")},
    }


def event_data(events: Sequence[EventRecord]) -> list[dict[str, Any]]:
    """Events as data (``-o json``): time, type, reason, object, message."""
    return [
        {
            "time": iso(e.t),
            "type": e.event_type,
            "reason": e.reason,
            "object": f"{e.object_kind}/{e.object_name}",
            "message": e.message,
        }
        for e in events
    ]


def warning_rows(warnings: Sequence[WarningRecord], start: float | None) -> dict[str, Any]:
    """The seed's alerts seen so far."""
    rows = [(_clock(w.t), _offset(w.t, start), w.code, w.message) for w in warnings]
    return {"title": "Warnings", "columns": ("time", "+s", "alert", "message"), "rows": rows}


def live_tables(
    view: ClusterView,
    events: Sequence[EventRecord],
    warnings: Sequence[WarningRecord],
    start: float | None,
) -> list[dict[str, Any]]:
    """Every table of the live display (empty ones left out, except the HPAs/processes)."""
    tables = []
    if view.processes:
        tables.append(process_rows(view))
    else:
        tables.append(hpa_rows(view))
        tables.append(deployment_rows(view))
    if view.load is not None:
        tables.append(load_rows(view))
    events_table = event_rows(events, start)
    if events_table["rows"]:
        tables.append(events_table)
    if warnings:
        tables.append(warning_rows(warnings, start))
    return tables


# --------------------------------------------------------------------------------------------
# the summary
# --------------------------------------------------------------------------------------------
def scale_up_rows(analysis: Analysis) -> dict[str, Any]:
    """Each scale-up: replicas, metric, trigger -> rescale -> ready, total against the SLO."""
    rows = []
    for up in analysis.scale_ups:
        rows.append(
            (
                up.hpa,
                f"{'?' if up.from_replicas is None else up.from_replicas} -> {up.to_replicas}",
                up.metric or "-",
                _secs(up.to_rescale_seconds) + ("" if up.trigger_observed else "*"),
                _secs(up.to_ready_seconds),
                _secs(up.total_seconds),
                f"< {format_duration(up.slo_seconds)}",
                up.verdict.upper(),
            )
        )
    return {
        "title": "Scale-ups (trigger -> rescale -> ready)",
        "columns": (
            "hpa",
            "replicas",
            "metric",
            "to rescale",
            "to ready",
            "total",
            "slo",
            "verdict",
        ),
        "rows": rows,
    }


def recovery_rows(analysis: Analysis) -> dict[str, Any]:
    """Each pod failure and how long until its Deployment was back."""
    rows = [
        (
            r.deployment,
            r.pod,
            r.cause,
            _secs(r.seconds),
            f"< {format_duration(r.slo_seconds)}",
            r.verdict.upper(),
        )
        for r in analysis.recoveries
    ]
    return {
        "title": "Recoveries from pod failures",
        "columns": ("deployment", "pod", "cause", "recovered in", "slo", "verdict"),
        "rows": rows,
    }


def scale_down_rows(analysis: Analysis) -> dict[str, Any]:
    """Each scale-down."""
    rows = [
        (d.hpa, f"{d.from_replicas} -> {d.to_replicas}", _clock(d.at)) for d in analysis.scale_downs
    ]
    return {"title": "Scale-downs", "columns": ("hpa", "replicas", "at"), "rows": rows}


def verdict_sentence(analysis: Analysis, slo: Slo) -> str:
    """One line: what was measured and whether it met the scaling SLOs."""
    ups = [u for u in analysis.scale_ups if u.total_seconds is not None]
    recs = [r for r in analysis.recoveries if r.seconds is not None]
    parts = []
    if analysis.scale_ups:
        worst = max((u.total_seconds or 0.0 for u in ups), default=None)
        parts.append(
            f"{len(analysis.scale_ups)} scale-up(s)"
            + (f", slowest {_secs(worst)}" if worst is not None else "")
            + f" (SLO < {format_duration(slo.scale_up_seconds)})"
        )
    if analysis.recoveries:
        worst = max((r.seconds or 0.0 for r in recs), default=None)
        parts.append(
            f"{len(analysis.recoveries)} pod failure(s)"
            + (f", slowest recovery {_secs(worst)}" if worst is not None else "")
            + f" (SLO < {format_duration(slo.recovery_seconds)})"
        )
    what = "; ".join(parts)
    if analysis.verdict == PASS:
        return f"Scaling SLOs met: {what}"
    if analysis.verdict == FAIL:
        missed = [
            f"{u.hpa} {u.from_replicas}->{u.to_replicas}"
            for u in analysis.scale_ups
            if u.verdict == FAIL
        ]
        missed += [f"{r.pod} ({r.cause})" for r in analysis.recoveries if r.verdict == FAIL]
        return f"Scaling SLOs missed by {', '.join(missed)}: {what}"
    if analysis.verdict == PENDING:
        return f"Scaling still in progress when monitoring ended: {what}"
    return "No scale-up and no pod failure seen: nothing to hold against the scaling SLOs"


def summary_tables(analysis: Analysis) -> list[dict[str, Any]]:
    """The summary's tables (empty ones left out)."""
    tables = [scale_up_rows(analysis), recovery_rows(analysis), scale_down_rows(analysis)]
    tables.append(warning_rows(analysis.warnings, analysis.start))
    return [t for t in tables if t["rows"]]


# --------------------------------------------------------------------------------------------
# the combined report: load and replicas on one time axis
# --------------------------------------------------------------------------------------------
def combined_report(
    records: Sequence[Record],
    analysis: Analysis,
    slo: Slo,
    *,
    title: str = "tradewise monitor",
    load: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The report as data: traffic, replicas and events, seconds since the timeline began.

    ``load`` is the load test's own report (``LoadReport.to_dict()``), kept as given.
    """
    start = analysis.start if analysis.start is not None else 0.0
    end = analysis.end if analysis.end is not None else start

    def sec(t: float) -> float:
        return round(t - start, 3)

    traffic = [
        {
            "second": sec(s.t),
            "rps": s.rps,
            "p95_ms": s.p95_ms,
            "error_rate": s.error_rate,
            "users": s.users,
            "queue": s.queue,
            "source": s.source,
        }
        for s in records
        if isinstance(s, LoadSample)
    ]
    replicas = {
        name: [{"second": sec(p.t), "desired": p.desired, "ready": p.ready} for p in points]
        for name, points in replica_series(records).items()
    }
    events = [
        {
            "second": sec(e.t),
            "time": iso(e.t),
            "type": e.event_type,
            "reason": e.reason,
            "object": f"{e.object_kind}/{e.object_name}",
            "message": e.message,
            "count": e.count,
        }
        for e in records
        if isinstance(e, EventRecord) and e.notable and not e.listed
    ]
    return {
        "title": title,
        "start": iso(start),
        "end": iso(end),
        "seconds": round(end - start, 3),
        "slo": {
            "p95_ms": slo.p95_ms,
            "error_rate": slo.error_rate,
            "scale_up_seconds": slo.scale_up_seconds,
            "recovery_seconds": slo.recovery_seconds,
        },
        "verdict": analysis.verdict,
        "sentence": verdict_sentence(analysis, slo),
        "analysis": analysis.to_dict(),
        "traffic": traffic,
        "replicas": replicas,
        "events": events,
        "load_test": dict(load) if load is not None else None,
    }


def combined_page(report: Mapping[str, Any]) -> dict[str, Any]:
    """What the combined HTML page shows, as data, from ``combined_report``'s document.

    Charts of traffic (when there is any) and of each Deployment's replicas, every one marked
    with the scaling events; the scale-up, recovery, alert and event tables.
    """
    seconds = float(report["seconds"]) or 1.0
    traffic = list(report["traffic"])
    markers = _markers(report)
    charts = []
    if traffic:
        xs = [float(r["second"]) for r in traffic] + [seconds]

        def col(key: str, scale: float = 1.0) -> list[float | None]:
            vals = [None if r[key] is None else float(r[key]) * scale for r in traffic]
            return vals + [None]

        charts.append(
            line_chart(
                "Requests per second",
                xs,
                [
                    Series("req/s", COLORS["rps"], col("rps")),
                    Series("users", COLORS["users"], col("users")),
                ],
                "req/s",
                markers=markers,
            )
        )
        charts.append(
            line_chart(
                "p95 response time",
                xs,
                [Series("p95", COLORS["p95"], col("p95_ms"))],
                "ms",
                objective=float(report["slo"]["p95_ms"]),
                markers=markers,
            )
        )
        charts.append(
            line_chart(
                "Error rate",
                xs,
                [Series("errors %", COLORS["err"], col("error_rate", 100.0))],
                "%",
                objective=float(report["slo"]["error_rate"]) * 100 or None,
                markers=markers,
            )
        )
    for i, (name, points) in enumerate(sorted(report["replicas"].items())):
        xs, desired, ready = steps(points, seconds)
        charts.append(
            line_chart(
                f"Replicas of {name}",
                xs,
                [
                    Series("desired", COLORS["desired"], desired),
                    Series("ready", PALETTE[i % len(PALETTE)], ready),
                ],
                "pods",
                markers=markers,
            )
        )
    analysis = report["analysis"]
    load = report.get("load_test")
    return {
        "title": str(report["title"]),
        "badge": _BADGES.get(report["verdict"], "none"),
        "sentence": str(report["sentence"]),
        "start": str(report["start"]),
        "end": str(report["end"]),
        "seconds": float(report["seconds"]),
        "scale_up_slo": format_duration(report["slo"]["scale_up_seconds"]),
        "recovery_slo": format_duration(report["slo"]["recovery_seconds"]),
        "load": _load_line(load) if load else None,
        "scale_ups": {
            "columns": (
                "hpa",
                "replicas",
                "metric",
                "trigger",
                "trigger -> rescale",
                "rescale -> ready",
                "total",
                "SLO",
                "verdict",
            ),
            "rows": [
                (
                    u["hpa"],
                    f"{u['from_replicas'] if u['from_replicas'] is not None else '?'} -> "
                    f"{u['to_replicas']}",
                    u["metric"] or "-",
                    (u["trigger_at"] or "-") + ("" if u["trigger_observed"] else " (not seen)"),
                    _secs(u["trigger_to_rescale_seconds"]),
                    _secs(u["rescale_to_ready_seconds"]),
                    _secs(u["total_seconds"]),
                    f"< {format_duration(u['slo_seconds'])}",
                    u["verdict"].upper(),
                )
                for u in analysis["scale_ups"]
            ],
        },
        "recoveries": {
            "columns": (
                "deployment",
                "pod",
                "cause",
                "failed at",
                "recovered in",
                "SLO",
                "verdict",
            ),
            "rows": [
                (
                    r["deployment"],
                    r["pod"],
                    r["cause"],
                    r["failed_at"],
                    _secs(r["seconds"]),
                    f"< {format_duration(r['slo_seconds'])}",
                    r["verdict"].upper(),
                )
                for r in analysis["recoveries"]
            ],
        },
        "charts": charts,
        "warnings": {
            "columns": ("at", "alert", "message"),
            "rows": [(w["at"], w["code"], w["message"]) for w in analysis["warnings"]],
        },
        "events": {
            "columns": ("+s", "type", "reason", "object", "message"),
            "rows": [
                (f"{e['second']:.1f}", e["type"], e["reason"], e["object"], e["message"])
                for e in report["events"]
            ],
        },
    }


def combined_html(report: Mapping[str, Any]) -> str:
    """The combined report as one self-contained HTML page (inline CSS and SVG).

    The page is ``templates/reports/monitor.html.j2`` filled with ``combined_page``.
    """
    return render_page("monitor.html.j2", **combined_page(report))


_BADGES = {PASS: "met", FAIL: "missed", PENDING: "pending", NONE: "none"}


def _load_line(load: Mapping[str, Any]) -> dict[str, str]:
    """The load test's own numbers, for the line under the verdict."""
    total = load.get("total") or {}
    return {
        "target": str(load.get("target", "")),
        "requests": str(total.get("requests", "?")),
        "rps": str(total.get("rps", "?")),
        "sentence": str(((load.get("verdict") or {}).get("sentence")) or ""),
    }


def _markers(report: Mapping[str, Any]) -> list[Marker]:
    """A marker for every scaling event: rescales, failures, recoveries."""
    out = []
    for e in report["events"]:
        colour = "#3182bd" if e["reason"] == "SuccessfulRescale" else "#d62728"
        if e["reason"] in ("SuccessfulRescale", "ScalingReplicaSet") or e["type"] == "Warning":
            out.append(
                Marker(float(e["second"]), colour, f"{e['reason']} {e['object']}: {e['message']}")
            )
    return out


# --------------------------------------------------------------------------------------------
# small helpers
# --------------------------------------------------------------------------------------------
def _secs(x: float | None) -> str:
    return "-" if x is None else f"{x:.1f}s"


def _fmt(x: float | None, pattern: str) -> str:
    return "-" if x is None else pattern.format(x)


def _clock(t: float) -> str:
    return iso(t)[11:19]


def _offset(t: float, start: float | None) -> str:
    return "" if start is None else f"{t - start:.1f}"
