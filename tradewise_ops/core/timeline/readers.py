"""Kubernetes objects (plain dicts, as the API serves them) -> timeline records."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tradewise_ops.core.hpa_metrics import read_hpa_metrics
from tradewise_ops.core.timeline.records import (
    DeploymentSample,
    EventRecord,
    HpaSample,
    MetricValue,
    PodSample,
)
from tradewise_ops.core.units import quantity_value as quantity

WATCHED_KINDS = ("HorizontalPodAutoscaler", "Deployment", "Pod", "Event")


def hpa_record(obj: Mapping[str, Any], t: float, deleted: bool = False) -> HpaSample:
    """An ``autoscaling/v2`` (or ``v1``) HorizontalPodAutoscaler as a sample."""
    meta = _map(obj.get("metadata"))
    spec = _map(obj.get("spec"))
    status = _map(obj.get("status"))
    ref = _map(spec.get("scaleTargetRef"))
    return HpaSample(
        t=t,
        name=str(meta.get("name", "")),
        target=str(ref.get("name", "")),
        min_replicas=_int(spec.get("minReplicas"), 1),
        max_replicas=_int(spec.get("maxReplicas"), 0),
        current=_int(status.get("currentReplicas"), 0),
        desired=_int(status.get("desiredReplicas"), 0),
        metrics=_hpa_metrics(obj),
        deleted=deleted,
    )


def deployment_record(obj: Mapping[str, Any], t: float, deleted: bool = False) -> DeploymentSample:
    """A Deployment as a sample (``desired`` is ``spec.replicas``, None when unset)."""
    meta = _map(obj.get("metadata"))
    spec = _map(obj.get("spec"))
    status = _map(obj.get("status"))
    replicas = spec.get("replicas")
    selector = _map(_map(spec.get("selector")).get("matchLabels"))
    return DeploymentSample(
        t=t,
        name=str(meta.get("name", "")),
        desired=None if replicas is None else _int(replicas, 0),
        ready=_int(status.get("readyReplicas"), 0),
        updated=_int(status.get("updatedReplicas"), 0),
        available=_int(status.get("availableReplicas"), 0),
        selector={str(k): str(v) for k, v in selector.items()},
        deleted=deleted,
    )


def pod_record(obj: Mapping[str, Any], t: float, deleted: bool = False) -> PodSample:
    """A Pod as a sample; its Deployment comes from its ReplicaSet owner and pod-template-hash."""
    meta = _map(obj.get("metadata"))
    status = _map(obj.get("status"))
    labels = {str(k): str(v) for k, v in _map(meta.get("labels")).items()}
    ready = any(
        _map(c).get("type") == "Ready" and _map(c).get("status") == "True"
        for c in _list(status.get("conditions"))
    )
    restarts = 0
    reason: str | None = None
    last_termination: str | None = None
    for cs in _list(status.get("containerStatuses")):
        cs = _map(cs)
        restarts += _int(cs.get("restartCount"), 0)
        state = _map(cs.get("state"))
        now = _map(state.get("waiting")).get("reason") or _map(state.get("terminated")).get(
            "reason"
        )
        if now and reason is None:
            reason = str(now)
        last = _map(_map(cs.get("lastState")).get("terminated")).get("reason")
        if last and last_termination is None:
            last_termination = str(last)
    if status.get("reason"):
        reason = str(status["reason"])  # Evicted, Preempting...: the pod's own reason wins
    return PodSample(
        t=t,
        name=str(meta.get("name", "")),
        deployment=_pod_deployment(meta, labels),
        phase=str(status.get("phase") or "Pending"),
        ready=ready,
        restarts=restarts,
        reason=reason,
        last_termination=last_termination,
        terminating=bool(meta.get("deletionTimestamp")),
        deleted=deleted,
        labels=labels,
    )


def event_record(obj: Mapping[str, Any], t: float, listed: bool = False) -> EventRecord:
    """A ``v1`` or ``events.k8s.io/v1`` Event as a record."""
    about = _map(obj.get("involvedObject")) or _map(obj.get("regarding"))
    series = _map(obj.get("series"))
    at = (
        obj.get("lastTimestamp")
        or obj.get("deprecatedLastTimestamp")
        or series.get("lastObservedTime")
        or obj.get("eventTime")
        or obj.get("firstTimestamp")
    )
    count = obj.get("count") or obj.get("deprecatedCount") or series.get("count") or 1
    return EventRecord(
        t=t,
        reason=str(obj.get("reason") or ""),
        event_type=str(obj.get("type") or "Normal"),
        object_kind=str(about.get("kind") or ""),
        object_name=str(about.get("name") or ""),
        message=str(obj.get("message") or obj.get("note") or "").strip(),
        count=_int(count, 1),
        at=None if at is None else str(at),
        listed=listed,
    )


def _hpa_metrics(obj: Mapping[str, Any]) -> tuple[MetricValue, ...]:
    out = []
    for metric in read_hpa_metrics(obj):
        target = metric.target
        ttype = str(target.get("type") or "")
        if ttype == "Utilization" or "averageUtilization" in target:
            key, unit = "averageUtilization", "%"
        elif ttype == "Value" or ("value" in target and "averageValue" not in target):
            key, unit = "value", ""
        else:
            key, unit = "averageValue", ""
        out.append(
            MetricValue(
                name=metric.name,
                kind=metric.kind,
                value=quantity(metric.current.get(key)),
                target=quantity(target.get(key)),
                unit=unit,
                per_pod=key == "averageValue",
            )
        )
    return tuple(out)


def _pod_deployment(meta: Mapping[str, Any], labels: Mapping[str, str]) -> str | None:
    hash_ = labels.get("pod-template-hash")
    for ref in _list(meta.get("ownerReferences")):
        ref = _map(ref)
        if ref.get("kind") == "ReplicaSet":
            rs = str(ref.get("name") or "")
            if hash_ and rs.endswith("-" + hash_):
                return rs[: -len(hash_) - 1]
            return rs.rsplit("-", 1)[0] if "-" in rs else rs
        if ref.get("kind") == "Deployment":
            return str(ref.get("name"))
    return None


def _map(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, (list, tuple)) else []


def _int(value: Any, default: int) -> int:
    if value is None or isinstance(value, bool):
        return default
    try:
        return int(value)
    except (TypeError, ValueError):
        return default
