"""Scaling as data: the plans of ``tradewise scale ...`` and the ``scale status`` report.

Pure: nothing here talks to a cluster. The CLI reads the live Deployments and HPAs (plain dicts in
the Kubernetes JSON shape), builds a ``ScalePlan`` here, prints it (``--dry-run``) or hands it to
the gateway, which applies each step in order: HPA bounds first, then the Deployment's replicas
through the scale subresource, then the annotations that record the traffic profile.

- ``objects``: the Deployments and HPAs scaling touches, the annotations it records;
- ``plan``: the live state a plan starts from, and the plans (the HPA-floor rule, emergency-down);
- ``status``: the ``scale status`` report and its tables.

This package re-exports the names its users import (``from tradewise_ops.core import scaling``,
``from tradewise_ops.core.scaling import X``).
"""

from __future__ import annotations

from tradewise_ops.core.scaling.objects import (
    APPLIED_AT_ANNOTATION,
    COMMAND_COMPONENTS,
    DEPLOYMENTS,
    EMERGENCY_DOWN,
    HPAS,
    MANUAL,
    PROFILE_ANNOTATION,
    SCALER_PERMISSIONS,
    SCALING_EVENT_KINDS,
    annotations_of,
    iso_utc,
)
from tradewise_ops.core.scaling.plan import (
    HpaBounds,
    LiveComponent,
    ScalePlan,
    ScaleStep,
    check_maintenance,
    component_for,
    emergency_floor,
    live_component,
    parse_replicas,
    plan_emergency_down,
    plan_manual,
    plan_profile,
    settled_replicas,
)
from tradewise_ops.core.scaling.status import (
    Rows,
    age,
    deployment_row,
    hpa_metrics,
    hpa_row,
    local_status_report,
    parse_time,
    profile_drift,
    profile_in_effect,
    scaling_events,
    status_report,
    status_summary,
    status_tables,
)

__all__ = [
    "APPLIED_AT_ANNOTATION",
    "COMMAND_COMPONENTS",
    "DEPLOYMENTS",
    "EMERGENCY_DOWN",
    "HPAS",
    "MANUAL",
    "PROFILE_ANNOTATION",
    "SCALER_PERMISSIONS",
    "SCALING_EVENT_KINDS",
    "HpaBounds",
    "LiveComponent",
    "Rows",
    "ScalePlan",
    "ScaleStep",
    "age",
    "annotations_of",
    "check_maintenance",
    "component_for",
    "deployment_row",
    "emergency_floor",
    "hpa_metrics",
    "hpa_row",
    "iso_utc",
    "live_component",
    "local_status_report",
    "parse_replicas",
    "parse_time",
    "plan_emergency_down",
    "plan_manual",
    "plan_profile",
    "profile_drift",
    "profile_in_effect",
    "scaling_events",
    "settled_replicas",
    "status_report",
    "status_summary",
    "status_tables",
]
