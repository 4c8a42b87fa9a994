"""Kubernetes objects as the API serves them (plain dicts), for timeline and monitor tests."""

from __future__ import annotations

from typing import Any

API = "tradewise-api-deployment"
API_HPA = "tradewise-api-hpa"
WORKER = "tradewise-worker-deployment"
WORKER_HPA = "tradewise-worker-hpa"
NAMESPACE = "tradewise-ai"
HASH = "7d9f8c6b5"


def hpa(
    name: str = API_HPA,
    target: str = API,
    *,
    min_replicas: int = 3,
    max_replicas: int = 20,
    current: int | None = 3,
    desired: int | None = 3,
    cpu: int | None = 40,
    cpu_target: int = 70,
    p95: str | None = None,
    p95_target: str = "500",
) -> dict[str, Any]:
    """An autoscaling/v2 HPA with a CPU utilization metric and, optionally, a p95 Pods metric."""
    metrics: list[dict[str, Any]] = [
        {
            "type": "Resource",
            "resource": {
                "name": "cpu",
                "target": {"type": "Utilization", "averageUtilization": cpu_target},
            },
        }
    ]
    current_metrics: list[dict[str, Any]] = []
    if cpu is not None:
        current_metrics.append(
            {
                "type": "Resource",
                "resource": {"name": "cpu", "current": {"averageUtilization": cpu}},
            }
        )
    if p95 is not None:
        metrics.append(
            {
                "type": "Pods",
                "pods": {
                    "metric": {"name": "http_request_duration_p95_ms"},
                    "target": {"type": "AverageValue", "averageValue": p95_target},
                },
            }
        )
        current_metrics.append(
            {
                "type": "Pods",
                "pods": {
                    "metric": {"name": "http_request_duration_p95_ms"},
                    "current": {"averageValue": p95},
                },
            }
        )
    status: dict[str, Any] = {"currentMetrics": current_metrics}
    if current is not None:
        status["currentReplicas"] = current
    if desired is not None:
        status["desiredReplicas"] = desired
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": target},
            "minReplicas": min_replicas,
            "maxReplicas": max_replicas,
            "metrics": metrics,
        },
        "status": status,
    }


def deployment(
    name: str = API,
    *,
    replicas: int | None = 3,
    ready: int = 3,
    updated: int | None = None,
    component: str = "api",
) -> dict[str, Any]:
    """An apps/v1 Deployment with its status."""
    spec: dict[str, Any] = {
        "selector": {
            "matchLabels": {
                "app.kubernetes.io/name": "tradewise",
                "app.kubernetes.io/component": component,
            }
        },
        "template": {"metadata": {"labels": {"app.kubernetes.io/component": component}}},
    }
    if replicas is not None:
        spec["replicas"] = replicas
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": spec,
        "status": {
            "replicas": max(ready, replicas or 0),
            "readyReplicas": ready,
            "updatedReplicas": ready if updated is None else updated,
            "availableReplicas": ready,
        },
    }


def pod(
    name: str,
    *,
    deployment_name: str = API,
    component: str = "api",
    ready: bool = True,
    phase: str = "Running",
    restarts: int = 0,
    waiting: str | None = None,
    last_terminated: str | None = None,
    reason: str | None = None,
    terminating: bool = False,
) -> dict[str, Any]:
    """A pod owned by a Deployment's ReplicaSet."""
    state: dict[str, Any] = {"running": {}} if waiting is None else {"waiting": {"reason": waiting}}
    container: dict[str, Any] = {
        "name": component,
        "ready": ready,
        "restartCount": restarts,
        "state": state,
    }
    if last_terminated:
        container["lastState"] = {"terminated": {"reason": last_terminated, "exitCode": 137}}
    meta: dict[str, Any] = {
        "name": name,
        "namespace": NAMESPACE,
        "labels": {
            "app.kubernetes.io/name": "tradewise",
            "app.kubernetes.io/component": component,
            "pod-template-hash": HASH,
        },
        "ownerReferences": [
            {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": f"{deployment_name}-{HASH}"}
        ],
    }
    if terminating:
        meta["deletionTimestamp"] = "2026-11-27T14:00:00Z"
    status: dict[str, Any] = {
        "phase": phase,
        "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
        "containerStatuses": [container],
    }
    if reason:
        status["reason"] = reason
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "status": status}


def event(
    reason: str,
    message: str,
    *,
    kind: str = "HorizontalPodAutoscaler",
    name: str = API_HPA,
    type_: str = "Normal",
    count: int = 1,
    uid: str | None = None,
    timestamp: str = "2026-11-27T14:00:00Z",
) -> dict[str, Any]:
    """A core/v1 Event about an object."""
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": uid or f"{name}.{reason}".lower(), "namespace": NAMESPACE, "uid": uid},
        "involvedObject": {"kind": kind, "name": name, "namespace": NAMESPACE},
        "reason": reason,
        "message": message,
        "type": type_,
        "count": count,
        "firstTimestamp": timestamp,
        "lastTimestamp": timestamp,
    }
