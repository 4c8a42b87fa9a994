"""The objects ``tradewise scale`` touches and the annotations it records on them."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

DEPLOYMENTS: Mapping[str, str] = {
    "api": "tradewise-api-deployment",
    "worker": "tradewise-worker-deployment",
    "precompute": "tradewise-precompute-deployment",
}
HPAS: Mapping[str, str] = {"api": "tradewise-api-hpa", "worker": "tradewise-worker-hpa"}
# the word users type (``scale workers N``) -> the component
COMMAND_COMPONENTS: Mapping[str, str] = {"api": "api", "workers": "worker"}

PROFILE_ANNOTATION = "tradewise.io/traffic-profile"
APPLIED_AT_ANNOTATION = "tradewise.io/traffic-profile-applied-at"
MANUAL = "manual"
EMERGENCY_DOWN = "emergency-down"

# what ``scale traffic`` and ``scale emergency-down`` need from the API server, and nothing more:
# the least-privilege Role of the predictive-scaling CronJobs must grant exactly this (no list,
# no watch, no create/delete, no other resources). (API group, resource) -> verbs.
SCALER_PERMISSIONS: Mapping[tuple[str, str], frozenset[str]] = {
    ("apps", "deployments"): frozenset({"get", "patch"}),
    ("apps", "deployments/scale"): frozenset({"patch"}),
    ("autoscaling", "horizontalpodautoscalers"): frozenset({"get", "patch"}),
}

SCALING_EVENT_KINDS = ("HorizontalPodAutoscaler", "Deployment")


def annotations_of(obj: Mapping[str, Any] | None) -> Mapping[str, str]:
    """The annotations of a Kubernetes object (a dict), empty when it has none."""
    if not obj:
        return {}
    return (obj.get("metadata") or {}).get("annotations") or {}


def iso_utc(now: datetime) -> str:
    """``now`` as ``2026-11-27T14:33:30Z``."""
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    return now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
