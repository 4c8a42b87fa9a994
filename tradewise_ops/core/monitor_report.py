"""What ``tradewise monitor`` shows: live tables, the summary, and the load-vs-replicas report.

Pure formatters: they return ``TableData`` rows, dicts and an HTML string (inline CSS and SVG,
no script, no network), so they are testable without a terminal. The HTML line charts are the
load-test report's (``core.loadreport``); this module adds the replica steps, the scaling-event
markers and the latency tables, all on one time axis (seconds since the timeline began).
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from typing import Any

from tradewise_ops.core.config import Slo
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


_PALETTE = ("#3182bd", "#e6550d", "#31a354", "#756bb1", "#636363", "#d62728")


def combined_html(report: Mapping[str, Any]) -> str:
    """The combined report as one self-contained HTML page (inline CSS and SVG)."""
    from tradewise_ops.core.loadreport import _svg_chart

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
            _svg_chart(
                "Requests per second",
                xs,
                [("req/s", "#31a354", col("rps")), ("users", "#756bb1", col("users"))],
                "req/s",
            )
        )
        charts.append(
            _svg_chart(
                "p95 response time",
                xs,
                [("p95", "#e6550d", col("p95_ms"))],
                "ms",
                hline=float(report["slo"]["p95_ms"]),
            )
        )
        charts.append(
            _svg_chart(
                "Error rate",
                xs,
                [("errors %", "#d62728", col("error_rate", 100.0))],
                "%",
                hline=float(report["slo"]["error_rate"]) * 100 or None,
            )
        )
    for i, (name, points) in enumerate(sorted(report["replicas"].items())):
        xs, desired, ready = _steps(points, seconds)
        colour = _PALETTE[i % len(_PALETTE)]
        charts.append(
            _svg_chart(
                f"Replicas of {name}",
                xs,
                [("desired", "#999999", desired), ("ready", colour, ready)],
                "pods",
            )
        )
    charts = [_with_markers(svg, markers, seconds) for svg in charts]

    analysis = report["analysis"]
    verdict = report["verdict"]
    badge = {PASS: "met", FAIL: "missed", PENDING: "pending", NONE: "none"}.get(verdict, "none")
    ups = _html_table(
        (
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
        [
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
    )
    recs = _html_table(
        ("deployment", "pod", "cause", "failed at", "recovered in", "SLO", "verdict"),
        [
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
    )
    warns = _html_table(
        ("at", "alert", "message"),
        [(w["at"], w["code"], w["message"]) for w in analysis["warnings"]],
    )
    events = _html_table(
        ("+s", "type", "reason", "object", "message"),
        [
            (f"{e['second']:.1f}", e["type"], e["reason"], e["object"], e["message"])
            for e in report["events"]
        ],
    )
    load = report.get("load_test")
    load_line = ""
    if load:
        sentence = ((load.get("verdict") or {}).get("sentence")) or ""
        total = load.get("total") or {}
        load_line = (
            f"<p>Load test against {html.escape(str(load.get('target', '')))}: "
            f"{html.escape(str(total.get('requests', '?')))} requests, "
            f"{html.escape(str(total.get('rps', '?')))} req/s. {html.escape(str(sentence))}</p>"
        )
    title = html.escape(str(report["title"]))
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>{title}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em; color: #222; max-width: 62em; }}
table {{ border-collapse: collapse; margin: 1em 0; }}
td, th {{ border: 1px solid #ddd; padding: 4px 8px; text-align: left; }}
.met {{ color: #1a7f37; }} .missed {{ color: #cf222e; }} .pending, .none {{ color: #9a6700; }}
svg {{ display: block; margin: 1em 0; }}
</style></head><body>
<h1>{title}</h1>
<p class="{badge}"><strong>{html.escape(str(report["sentence"]))}</strong></p>
<p>From {html.escape(str(report["start"]))} to {html.escape(str(report["end"]))}
({float(report["seconds"]):.0f} s). Scaling SLOs: scale-up
&lt; {format_duration(report["slo"]["scale_up_seconds"])} from trigger to ready pods, recovery
&lt; {format_duration(report["slo"]["recovery_seconds"])} from a pod failure. Dashed vertical lines
mark scaling events (hover for details).</p>
{load_line}
<h2>Scale-up latency</h2>
{ups or "<p>No scale-up seen.</p>"}
<h2>Recoveries from pod failures</h2>
{recs or "<p>No pod failure seen.</p>"}
<h2>Load and replicas over time</h2>
{"".join(charts) or "<p>No data.</p>"}
<h2>Warnings</h2>
{warns or "<p>None of the alerts fired.</p>"}
<h2>Events</h2>
{events or "<p>No notable event.</p>"}
</body></html>
"""


def _steps(
    points: Sequence[Mapping[str, Any]], seconds: float
) -> tuple[list[float], list[float | None], list[float | None]]:
    """Step lines: each value holds until the next change (duplicate x for the vertical edge)."""
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
        xs.append(max(seconds, float(last["second"])))
        desired.append(None if last["desired"] is None else float(last["desired"]))
        ready.append(float(last["ready"]))
    return xs, desired, ready


def _markers(report: Mapping[str, Any]) -> list[tuple[float, str, str]]:
    """(second, colour, label) of every scaling event: rescales, failures, recoveries."""
    out = []
    for e in report["events"]:
        colour = "#3182bd" if e["reason"] == "SuccessfulRescale" else "#d62728"
        if e["reason"] in ("SuccessfulRescale", "ScalingReplicaSet") or e["type"] == "Warning":
            out.append((float(e["second"]), colour, f"{e['reason']} {e['object']}: {e['message']}"))
    return out


_PLOT_RECT = re.compile(
    r'<rect x="([\d.]+)" y="([\d.]+)" width="([\d.]+)" height="([\d.]+)" fill="none"'
)


def _with_markers(svg: str, markers: Sequence[tuple[float, str, str]], seconds: float) -> str:
    """Dashed vertical lines at the markers' seconds, inside the chart's plot area."""
    m = _PLOT_RECT.search(svg)
    if not m or not markers:
        return svg
    left, top, width, height = (float(g) for g in m.groups())
    lines = []
    for second, colour, label in markers:
        x = left + width * min(max(second / seconds, 0.0), 1.0)
        lines.append(
            f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{top:.1f}" y2="{top + height:.1f}" '
            f'stroke="{colour}" stroke-dasharray="3 3" stroke-width="1.2">'
            f"<title>+{second:.1f}s {html.escape(label)}</title></line>"
        )
    return svg.replace("</svg>", "\n".join(lines) + "\n</svg>")


def _html_table(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    if not rows:
        return ""
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in row) + "</tr>" for row in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


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
