"""Placement by price: which pods may run on spot capacity, and who is evicted first.

``components.<name>.placement`` is ``spot`` or ``on-demand`` and ``priority`` is ``critical``,
``normal`` or ``batch``; the environment's ``cloud`` (``gke``, ``eks``, ``aks`` or ``none``)
chooses how a spot node pool is recognised:

- GKE: nodes labelled ``cloud.google.com/gke-spot=true`` (tainted the same, ``NoSchedule``, when
  the pool was created so);
- EKS (managed node groups): ``eks.amazonaws.com/capacityType=SPOT``, no taint;
- AKS: ``kubernetes.azure.com/scalesetpriority=spot``, always tainted ``...=spot:NoSchedule``.

A ``spot`` pod tolerates the pool's taint and prefers its nodes (weight 100): it runs there when
there is room and on on-demand nodes when the spot pool is empty or reclaimed, so the service
never waits for spot capacity. An ``on-demand`` pod is required to stay off them (``NotIn``, which
also holds on nodes without the label). With ``cloud: none`` no node rule is rendered.
Defaults (the guide): workers and precompute may run on spot; the database, Redis and the API
never. PriorityClasses order eviction and preemption under pressure: ``critical`` (database,
Redis, API) above ``normal`` (workers) above ``batch`` (precompute), which never preempts.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from tradewise_ops.core.findings import Finding

CLOUDS = ("none", "gke", "eks", "aks")
PLACEMENTS = ("spot", "on-demand")
PRIORITIES = ("critical", "normal", "batch")
DEFAULT_PLACEMENT: Mapping[str, str] = {
    "api": "on-demand",
    "worker": "spot",
    "precompute": "spot",
    "postgres": "on-demand",
    "redis": "on-demand",
}
DEFAULT_PRIORITY: Mapping[str, str] = {
    "api": "critical",
    "worker": "normal",
    "precompute": "batch",
    "postgres": "critical",
    "redis": "critical",
}
# PriorityClass values (user classes go up to 1e9; system classes are above 2e9)
PRIORITY_VALUES: Mapping[str, int] = {"critical": 100_000, "normal": 10_000, "batch": 1_000}
PRIORITY_PREFIX = "tradewise-"


@dataclass(frozen=True)
class SpotPool:
    """How one cloud marks its spot nodes: a node label and, maybe, a taint of the same key."""

    label: str
    value: str
    tainted: bool


SPOT_POOLS: Mapping[str, SpotPool] = {
    "gke": SpotPool("cloud.google.com/gke-spot", "true", tainted=True),
    "eks": SpotPool("eks.amazonaws.com/capacityType", "SPOT", tainted=False),
    "aks": SpotPool("kubernetes.azure.com/scalesetpriority", "spot", tainted=True),
}


def priority_class_name(priority: str) -> str:
    """``tradewise-critical`` and so on."""
    return PRIORITY_PREFIX + priority


def priority_classes() -> list[dict[str, Any]]:
    """The three PriorityClasses, as the template writes them (name, value, preemption)."""
    return [
        {
            "name": priority_class_name(p),
            "value": PRIORITY_VALUES[p],
            "preemption": "Never" if p == "batch" else "PreemptLowerPriority",
            "description": _DESCRIPTIONS[p],
        }
        for p in PRIORITIES
    ]


def pod_placement(cloud: str, placement: str, priority: str) -> dict[str, Any]:
    """The pod-spec fields for one component: ``priorityClassName``, ``affinity``,
    ``tolerations`` (the last two only where a cloud's spot pool is named)."""
    out: dict[str, Any] = {"priorityClassName": priority_class_name(priority)}
    pool = SPOT_POOLS.get(cloud)
    if pool is None:
        return out
    if placement == "spot":
        out["affinity"] = {
            "nodeAffinity": {
                "preferredDuringSchedulingIgnoredDuringExecution": [
                    {
                        "weight": 100,
                        "preference": {
                            "matchExpressions": [
                                {"key": pool.label, "operator": "In", "values": [pool.value]}
                            ]
                        },
                    }
                ]
            }
        }
        out["tolerations"] = [
            {"key": pool.label, "operator": "Equal", "value": pool.value, "effect": "NoSchedule"}
        ]
    else:
        out["affinity"] = {
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [
                        {
                            "matchExpressions": [
                                {"key": pool.label, "operator": "NotIn", "values": [pool.value]}
                            ]
                        }
                    ]
                }
            }
        }
    return out


def on_spot(pod_spec: Mapping[str, Any]) -> str | None:
    """The spot pool a pod may land on (``"GKE spot"``...), None when it cannot.

    A pod may land on spot nodes when it tolerates a spot taint, selects or prefers a spot
    label (``nodeSelector``, node affinity ``In``); for EKS, whose spot nodes carry no taint, a
    pod that is not kept off them by a ``NotIn`` rule is not counted (nothing says it is meant
    for spot).
    """
    for cloud, pool in SPOT_POOLS.items():
        name = f"{cloud.upper()} spot"
        for tol in pod_spec.get("tolerations") or []:
            if tol.get("key") == pool.label and tol.get("operator", "Equal") in ("Exists", "Equal"):
                if tol.get("operator") == "Exists" or tol.get("value") == pool.value:
                    return name
        if (pod_spec.get("nodeSelector") or {}).get(pool.label) == pool.value:
            return name
        for expr in _affinity_expressions(pod_spec):
            if expr.get("key") == pool.label and expr.get("operator") == "In":
                if pool.value in (expr.get("values") or []):
                    return name
    return None


def placement_findings(objects: Sequence[Mapping[str, Any]]) -> list[Finding]:
    """Rule ``spot-placement``: no StatefulSet on spot; no Deployment on spot without a PDB.

    A spot node is reclaimed with seconds of notice: a StatefulSet's volume and identity do not
    move that fast, and a Deployment without a PodDisruptionBudget may lose every pod to one
    drain of the pool.
    """
    from tradewise_ops.core.selectors import label_selector_matches

    pdbs = [o for o in objects if o.get("kind") == "PodDisruptionBudget"]
    findings: list[Finding] = []
    for obj in objects:
        kind = obj.get("kind")
        if kind not in ("StatefulSet", "Deployment"):
            continue
        template = (obj.get("spec") or {}).get("template") or {}
        pool = on_spot(template.get("spec") or {})
        if pool is None:
            continue
        name = str((obj.get("metadata") or {}).get("name", "?"))
        path = "spec.template.spec"
        if kind == "StatefulSet":
            findings.append(
                Finding(
                    kind,
                    name,
                    path,
                    "spot-placement",
                    f"a StatefulSet may run on {pool} nodes: a reclaimed node takes its volume "
                    "and identity with it; set placement: on-demand",
                )
            )
            continue
        namespace = (obj.get("metadata") or {}).get("namespace")
        labels = (template.get("metadata") or {}).get("labels") or {}
        covered = any(
            (p.get("metadata") or {}).get("namespace") == namespace
            and label_selector_matches((p.get("spec") or {}).get("selector"), labels)
            for p in pdbs
        )
        if not covered:
            findings.append(
                Finding(
                    kind,
                    name,
                    path,
                    "spot-placement",
                    f"a Deployment on {pool} nodes has no PodDisruptionBudget: one drain of the "
                    "pool may take every pod at once",
                )
            )
    return findings


# ------------------------------------------------------------------------------------------
_DESCRIPTIONS = {
    "critical": "tradewise: the database, Redis and the API; evicted last",
    "normal": "tradewise: the Celery workers; evicted before the API and the database",
    "batch": "tradewise: the pre-computation; evicted first, never preempts",
}


def _affinity_expressions(pod_spec: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    node = ((pod_spec.get("affinity") or {}).get("nodeAffinity")) or {}
    out: list[Mapping[str, Any]] = []
    required = node.get("requiredDuringSchedulingIgnoredDuringExecution") or {}
    for term in required.get("nodeSelectorTerms") or []:
        out.extend(term.get("matchExpressions") or [])
    for pref in node.get("preferredDuringSchedulingIgnoredDuringExecution") or []:
        out.extend((pref.get("preference") or {}).get("matchExpressions") or [])
    return out
