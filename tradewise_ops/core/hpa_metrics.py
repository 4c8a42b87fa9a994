"""An HPA's metrics as the API serves them: each target of its spec with its current value.

The one reader of HorizontalPodAutoscaler metrics: ``scale status`` shows them as written
(``320m/500m``), the monitor's timeline turns them into numbers. An ``autoscaling/v2`` metric
keeps its body under the key its type names (``Resource`` -> ``resource``, ``ContainerResource``
-> ``containerResource``); an ``autoscaling/v1`` HPA has one CPU utilization target.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class HpaMetric:
    """One metric of an HPA: what it measures, its target and its current value.

    ``target`` and ``current`` are the API's ``MetricTarget`` and ``MetricValueStatus`` (keys
    ``type``, ``averageUtilization``, ``averageValue``, ``value``); ``current`` is empty until the
    controller has measured it. ``name`` is empty when the metric names none.
    """

    kind: str
    name: str
    target: Mapping[str, Any]
    current: Mapping[str, Any]


def read_hpa_metrics(hpa: Mapping[str, Any]) -> tuple[HpaMetric, ...]:
    """Each metric of ``hpa`` (a dict in the Kubernetes JSON shape), in the spec's order."""
    spec = _map(hpa.get("spec"))
    status = _map(hpa.get("status"))
    if "targetCPUUtilizationPercentage" in spec:  # autoscaling/v1
        now = status.get("currentCPUUtilizationPercentage")
        target = {
            "type": "Utilization",
            "averageUtilization": spec["targetCPUUtilizationPercentage"],
        }
        return (
            HpaMetric(
                "Resource", "cpu", target, {} if now is None else {"averageUtilization": now}
            ),
        )
    currents: dict[tuple[str, str], Mapping[str, Any]] = {}
    for item in _list(status.get("currentMetrics")):
        kind, name, body = _parts(_map(item))
        currents[(kind, name)] = _map(body.get("current"))
    out = []
    for item in _list(spec.get("metrics")):
        kind, name, body = _parts(_map(item))
        out.append(HpaMetric(kind, name, _map(body.get("target")), currents.get((kind, name), {})))
    return tuple(out)


def _parts(item: Mapping[str, Any]) -> tuple[str, str, Mapping[str, Any]]:
    kind = str(item.get("type") or "")
    body = _map(item.get(kind[:1].lower() + kind[1:]))
    name = body.get("name") or _map(body.get("metric")).get("name") or ""
    return kind, str(name), body


def _map(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, (list, tuple)) else []
