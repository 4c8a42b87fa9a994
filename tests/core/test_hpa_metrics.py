"""The one reader of HPA metrics, and its two users (``scale status`` and the timeline)."""

from __future__ import annotations

from typing import Any

from tradewise_ops.core import scaling
from tradewise_ops.core.hpa_metrics import HpaMetric, read_hpa_metrics
from tradewise_ops.core.timeline import hpa_record

V2: dict[str, Any] = {
    "metadata": {"name": "tradewise-api-hpa"},
    "spec": {
        "scaleTargetRef": {"name": "tradewise-api-deployment"},
        "maxReplicas": 10,
        "metrics": [
            {
                "type": "Resource",
                "resource": {
                    "name": "cpu",
                    "target": {"type": "Utilization", "averageUtilization": 70},
                },
            },
            {
                "type": "ContainerResource",
                "containerResource": {
                    "name": "memory",
                    "container": "api",
                    "target": {"type": "AverageValue", "averageValue": "512Mi"},
                },
            },
            {
                "type": "Pods",
                "pods": {
                    "metric": {"name": "p95_seconds"},
                    "target": {"type": "AverageValue", "averageValue": "500m"},
                },
            },
            {
                "type": "External",
                "external": {
                    "metric": {"name": "queue"},
                    "target": {"type": "Value", "value": "50"},
                },
            },
        ],
    },
    "status": {
        "currentReplicas": 2,
        "desiredReplicas": 3,
        "currentMetrics": [
            {
                "type": "Pods",
                "pods": {"metric": {"name": "p95_seconds"}, "current": {"averageValue": "620m"}},
            },
            {
                "type": "Resource",
                "resource": {"name": "cpu", "current": {"averageUtilization": 85}},
            },
        ],
    },
}


def test_each_target_is_paired_with_its_current_value_in_spec_order() -> None:
    metrics = read_hpa_metrics(V2)
    assert [(m.kind, m.name) for m in metrics] == [
        ("Resource", "cpu"),
        ("ContainerResource", "memory"),
        ("Pods", "p95_seconds"),
        ("External", "queue"),
    ]
    assert metrics[0].current == {"averageUtilization": 85}
    assert metrics[2].current == {"averageValue": "620m"}
    assert metrics[1].current == {} and metrics[3].current == {}  # not measured yet
    assert metrics[3].target == {"type": "Value", "value": "50"}


def test_an_autoscaling_v1_hpa_has_one_cpu_utilization_metric() -> None:
    v1 = {
        "spec": {"targetCPUUtilizationPercentage": 60},
        "status": {"currentCPUUtilizationPercentage": 75},
    }
    assert read_hpa_metrics(v1) == (
        HpaMetric(
            "Resource",
            "cpu",
            {"type": "Utilization", "averageUtilization": 60},
            {"averageUtilization": 75},
        ),
    )
    (unmeasured,) = read_hpa_metrics({"spec": {"targetCPUUtilizationPercentage": 60}})
    assert unmeasured.current == {}


def test_no_metrics_and_malformed_parts_read_as_nothing() -> None:
    assert read_hpa_metrics({}) == ()
    assert read_hpa_metrics({"spec": {"metrics": "cpu"}, "status": []}) == ()


def test_scale_status_shows_them_as_written_and_the_timeline_as_numbers() -> None:
    shown = scaling.hpa_metrics(V2)
    assert [(m["name"], m["current"], m["target"]) for m in shown] == [
        ("cpu", "85%", "70%"),
        ("memory", None, "512Mi"),
        ("p95_seconds", "620m", "500m"),
        ("queue", None, "50"),
    ]
    record = hpa_record(V2, 0.0)
    assert [(m.name, m.value, m.target, m.unit, m.per_pod) for m in record.metrics] == [
        ("cpu", 85.0, 70.0, "%", False),
        ("memory", None, 512 * 2**20, "", True),
        ("p95_seconds", 0.62, 0.5, "", True),
        ("queue", None, 50.0, "", False),
    ]
