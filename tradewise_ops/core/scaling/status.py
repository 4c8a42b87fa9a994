"""The ``scale status`` report as data: Deployments, HPAs, the profile in effect, recent events."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from tradewise_ops.core.config import Environment, Profile
from tradewise_ops.core.hpa_metrics import read_hpa_metrics
from tradewise_ops.core.scaling.objects import (
    APPLIED_AT_ANNOTATION,
    DEPLOYMENTS,
    PROFILE_ANNOTATION,
    SCALING_EVENT_KINDS,
    annotations_of,
    iso_utc,
)


@dataclass(frozen=True)
class Rows:
    """A titled table as data: what the CLI shows with its terminal."""

    title: str
    columns: Sequence[str]
    rows: Sequence[Sequence[Any]]


def _component_of(obj: Mapping[str, Any]) -> str:
    labels = (obj.get("metadata") or {}).get("labels") or {}
    return str(labels.get("app.kubernetes.io/component", ""))


def _name(obj: Mapping[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("name", ""))


def _ts(value: Any) -> str | None:
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return iso_utc(value)
    return str(value)


def parse_time(value: Any) -> datetime | None:
    """A Kubernetes timestamp (``2026-11-27T14:33:30Z``, with or without fractions) as UTC."""
    text = _ts(value)
    if text is None:
        return None
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def age(value: Any, now: datetime) -> str:
    """kubectl-style age of a timestamp: ``45s``, ``3m``, ``2h``, ``5d``; ``-`` when unknown."""
    when = parse_time(value)
    if when is None:
        return "-"
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    seconds = max(0, int((now - when).total_seconds()))
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60}m"
    if seconds < 172800:
        return f"{seconds // 3600}h"
    return f"{seconds // 86400}d"


def deployment_row(dep: Mapping[str, Any]) -> dict[str, Any]:
    """Desired / updated / ready / available replicas and the recorded profile of a Deployment."""
    spec = dep.get("spec") or {}
    status = dep.get("status") or {}
    desired = spec.get("replicas")
    ann = annotations_of(dep)
    return {
        "name": _name(dep),
        "component": _component_of(dep),
        "desired": 1 if desired is None else int(desired),
        "updated": int(status.get("updatedReplicas") or 0),
        "ready": int(status.get("readyReplicas") or 0),
        "available": int(status.get("availableReplicas") or 0),
        "profile": ann.get(PROFILE_ANNOTATION),
        "profile_applied_at": ann.get(APPLIED_AT_ANNOTATION),
    }


def _format_value(values: Mapping[str, Any] | None, kind: str | None) -> str | None:
    if not values:
        return None
    order = ["averageUtilization", "averageValue", "value"]
    if kind == "AverageValue":
        order = ["averageValue", "value", "averageUtilization"]
    elif kind == "Value":
        order = ["value", "averageValue", "averageUtilization"]
    for key in order:
        if values.get(key) is not None:
            v = values[key]
            return f"{v}%" if key == "averageUtilization" else str(v)
    return None


def hpa_metrics(hpa: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Each metric of an autoscaling/v2 HPA: its type, name, current value and target."""
    out = []
    for metric in read_hpa_metrics(hpa):
        kind = metric.target.get("type")
        out.append(
            {
                "type": metric.kind,
                "name": metric.name or "?",
                "current": _format_value(metric.current, kind),
                "target": _format_value(metric.target, kind),
            }
        )
    return out


def hpa_row(hpa: Mapping[str, Any]) -> dict[str, Any]:
    """Bounds, current and desired replicas, metrics and last scale time of an HPA."""
    spec = hpa.get("spec") or {}
    status = hpa.get("status") or {}
    ann = annotations_of(hpa)
    return {
        "name": _name(hpa),
        "component": _component_of(hpa),
        "target": (spec.get("scaleTargetRef") or {}).get("name"),
        "min": 1 if spec.get("minReplicas") is None else int(spec["minReplicas"]),
        "max": int(spec.get("maxReplicas") or 0),
        "current": status.get("currentReplicas"),
        "desired": status.get("desiredReplicas"),
        "metrics": hpa_metrics(hpa),
        "last_scale_time": _ts(status.get("lastScaleTime")),
        "profile": ann.get(PROFILE_ANNOTATION),
    }


def _event_time(ev: Mapping[str, Any]) -> str | None:
    meta = ev.get("metadata") or {}
    for value in (
        ev.get("lastTimestamp"),
        ev.get("eventTime"),
        ev.get("firstTimestamp"),
        meta.get("creationTimestamp"),
    ):
        if value:
            return _ts(value)
    return None


def scaling_events(
    events: Iterable[Mapping[str, Any]], names: Iterable[str] | None = None, limit: int = 10
) -> list[dict[str, Any]]:
    """The latest ``limit`` events about HPAs and Deployments (of ``names``), oldest first."""
    wanted = set(names) if names is not None else None
    picked = []
    for ev in events:
        obj = ev.get("involvedObject") or ev.get("regarding") or {}
        if obj.get("kind") not in SCALING_EVENT_KINDS:
            continue
        if wanted is not None and obj.get("name") not in wanted:
            continue
        picked.append(
            {
                "time": _event_time(ev),
                "type": ev.get("type") or "Normal",
                "object": f"{obj.get('kind')}/{obj.get('name')}",
                "reason": ev.get("reason") or "",
                "message": (ev.get("message") or ev.get("note") or "").strip(),
                "count": int(ev.get("count") or 1),
            }
        )
    picked.sort(key=lambda e: parse_time(e["time"]) or datetime.min.replace(tzinfo=UTC))
    return picked[-limit:] if limit > 0 else []


def profile_in_effect(deployments: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The traffic profile recorded on the API and worker Deployments.

    ``name`` is the profile when both carry the same one, ``mixed`` when they differ, None when
    tradewise never recorded one.
    """
    by_component: dict[str, str | None] = {}
    applied: list[str] = []
    for dep in deployments:
        comp = _component_of(dep) or _component_by_name(_name(dep))
        if comp not in ("api", "worker"):
            continue
        ann = annotations_of(dep)
        by_component[comp] = ann.get(PROFILE_ANNOTATION)
        if ann.get(APPLIED_AT_ANNOTATION):
            applied.append(ann[APPLIED_AT_ANNOTATION])
    values = {v for v in by_component.values()}
    if not by_component or values == {None}:
        name = None
    elif len(values) == 1:
        name = next(iter(values))
    else:
        name = "mixed"
    return {
        "name": name,
        "applied_at": max(applied) if applied else None,
        "by_component": by_component,
    }


def _component_by_name(name: str) -> str:
    for comp, dep_name in DEPLOYMENTS.items():
        if name == dep_name or name.startswith(f"{dep_name}-"):  # -blue / -green: a slot
            return comp
    return ""


def status_report(
    env: Environment,
    deployments: Sequence[Mapping[str, Any]],
    hpas: Sequence[Mapping[str, Any]],
    events: Sequence[Mapping[str, Any]],
    event_limit: int = 10,
    profiles: Mapping[str, Profile] | None = None,
) -> dict[str, Any]:
    """The ``scale status`` document: Deployments, HPAs, the profile in effect, recent events.

    With ``profiles`` (the config's), ``warnings`` names each HPA whose floor no longer matches
    the profile recorded on it (for example after an apply that reset the HPA's bounds).
    """
    names = {_name(o) for o in list(deployments) + list(hpas)}
    hpa_rows = sorted((hpa_row(h) for h in hpas), key=lambda r: str(r["name"]))
    return {
        "environment": env.name,
        "namespace": env.namespace,
        "profile": profile_in_effect(deployments),
        "deployments": sorted(
            (deployment_row(d) for d in deployments), key=lambda r: str(r["name"])
        ),
        "hpas": hpa_rows,
        "events": scaling_events(events, names, event_limit),
        "warnings": profile_drift(hpa_rows, profiles or {}),
    }


def profile_drift(
    hpa_rows: Sequence[Mapping[str, Any]], profiles: Mapping[str, Profile]
) -> list[str]:
    """One sentence per HPA whose floor differs from what its recorded profile set."""
    out = []
    for row in hpa_rows:
        recorded = row.get("profile")
        component = row.get("component") or _component_by_name(str(row.get("target") or ""))
        if recorded not in profiles or component not in ("api", "worker"):
            continue
        profile = profiles[str(recorded)]
        wanted = profile.api if component == "api" else profile.workers
        if wanted > 0 and row["min"] != wanted:
            out.append(
                f"{row['name']} has a floor of {row['min']}, not the {wanted} of profile "
                f"{recorded} recorded on it (reset since?): re-apply it with "
                f"`tradewise scale traffic {recorded}`"
            )
    return out


def _profile_text(profile: Mapping[str, Any]) -> str:
    name = profile.get("name")
    if name is None:
        return "none recorded (no `tradewise scale` has run here)"
    if name == "mixed":
        parts = ", ".join(f"{c}={p or 'none'}" for c, p in sorted(profile["by_component"].items()))
        return f"mixed ({parts})"
    return str(name)


def status_summary(report: Mapping[str, Any], now: datetime) -> list[str]:
    """The lines above the ``scale status`` tables: where, which profile, since when."""
    prof = report["profile"]
    applied = prof.get("applied_at")
    where = report["environment"]
    if report.get("namespace"):
        where += f" (namespace {report['namespace']})"
    lines = [f"environment: {where}", f"traffic profile: {_profile_text(prof)}"]
    if applied:
        lines.append(f"applied: {applied} ({age(applied, now)} ago)")
    if not report["events"]:
        lines.append("recent scaling events: none")
    lines.extend(f"warning: {w}" for w in report.get("warnings", []))
    return lines


def status_tables(report: Mapping[str, Any], now: datetime) -> list[Rows]:
    """The ``scale status`` report as tables: Deployments, HPAs, events (when there are any)."""
    tables = [
        Rows(
            "Deployments",
            ["NAME", "DESIRED", "UP-TO-DATE", "READY", "AVAILABLE", "PROFILE"],
            [
                [
                    d["name"],
                    d["desired"],
                    d["updated"],
                    d["ready"],
                    d["available"],
                    d["profile"] or "-",
                ]
                for d in report["deployments"]
            ],
        )
    ]
    hpa_rows = []
    for h in report["hpas"]:
        metrics = ", ".join(
            f"{m['name']} {m['current'] or '<unknown>'}/{m['target'] or '?'}" for m in h["metrics"]
        )
        last = h["last_scale_time"]
        hpa_rows.append(
            [
                h["name"],
                h["min"],
                h["max"],
                "-" if h["current"] is None else h["current"],
                "-" if h["desired"] is None else h["desired"],
                metrics or "-",
                f"{age(last, now)} ago" if last else "never",
            ]
        )
    if hpa_rows:
        tables.append(
            Rows(
                "Autoscalers",
                [
                    "NAME",
                    "MIN",
                    "MAX",
                    "CURRENT",
                    "DESIRED",
                    "METRICS (CURRENT/TARGET)",
                    "LAST SCALE",
                ],
                hpa_rows,
            )
        )
    if report["events"]:
        tables.append(
            Rows(
                "Recent scaling events",
                ["AGE", "TYPE", "OBJECT", "REASON", "MESSAGE"],
                [
                    [age(e["time"], now), e["type"], e["object"], e["reason"], e["message"]]
                    for e in report["events"]
                ],
            )
        )
    return tables


def local_status_report(
    env: Environment,
    processes: Mapping[str, int],
    profile: str | None,
    applied_at: str | None = None,
) -> dict[str, Any]:
    """The ``scale status`` document of a local or compose stack: process counts, no HPAs."""
    return {
        "environment": env.name,
        "namespace": None,
        "profile": {
            "name": profile,
            "applied_at": applied_at if profile else None,
            "by_component": {c: profile for c in ("api", "worker") if c in processes},
        },
        "deployments": [
            {
                "name": f"{comp} processes",
                "component": comp,
                "desired": n,
                "updated": n,
                "ready": n,
                "available": n,
                "profile": profile,
                "profile_applied_at": None,
            }
            for comp, n in processes.items()
        ],
        "hpas": [],
        "events": [],
        "warnings": [],
    }
