"""What is live in the cluster, read for a plan or a diff: changes nothing.

Which rendered kinds the cluster serves (``check_served``), each object live and as an apply would
leave it (``live_and_predicted``), the scaling that ``tradewise scale`` recorded on live objects
(``live_scaled``), the blue-green slot that serves now (``as_live_slot``), and the maintenance
mode: whether the Ingress points at the page (``maintenance_is_on``), whether the page is deployed
(``maintenance_page_deployed``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from tradewise_ops.adapters.kube import KubeGateway
from tradewise_ops.core.bluegreen import API_SERVICE, live_slot, slot_deployment, slotted
from tradewise_ops.core.plan import HELD_FIELDS, OPTIONAL_KINDS, ScalingHold, hold_scaling
from tradewise_ops.core.release import ObjectRef
from tradewise_ops.errors import GoalMissedError

# the kinds ``tradewise scale`` changes (and annotates), read once per deploy to keep its choices
SCALED_KINDS = ("Deployment", "HorizontalPodAutoscaler")
PART_OF = "app.kubernetes.io/part-of=tradewise"
INGRESS = "tradewise-ingress"
MAINTENANCE_DEPLOYMENT = "tradewise-maintenance-deployment"
MAINTENANCE_ANNOTATION = "tradewise.io/maintenance"


def maintenance_is_on(gw: KubeGateway) -> bool:
    """Whether the live Ingress points at the maintenance page (its annotation says ``on``)."""
    ingress = gw.find("Ingress", INGRESS)
    annotations = ((ingress or {}).get("metadata") or {}).get("annotations") or {}
    return annotations.get(MAINTENANCE_ANNOTATION) == "on"


def maintenance_page_deployed(gw: KubeGateway) -> bool:
    """Whether the maintenance page's Deployment exists (an Ingress must never point at none)."""
    return gw.find("Deployment", MAINTENANCE_DEPLOYMENT) is not None


def check_served(
    gw: KubeGateway, objects: Sequence[dict[str, Any]], strict: bool
) -> Callable[[str, str], bool]:
    """Discover which rendered kinds the cluster serves, before anything is applied.

    Returns ``served(apiVersion, kind)``. An unserved optional kind (ServiceMonitor,
    PrometheusRule: the Prometheus operator is missing) is skipped, or fails under ``strict``;
    any other unserved kind fails (``GoalMissedError``), so no release is ever half applied.
    """
    missing: list[str] = []
    fatal: list[str] = []
    for api_version, kind in dict.fromkeys((o["apiVersion"], o["kind"]) for o in objects):
        if not gw.served(api_version, kind):
            missing.append(f"{kind} ({api_version})")
            if strict or kind not in OPTIONAL_KINDS:
                fatal.append(f"{kind} ({api_version})")
    if fatal:
        raise GoalMissedError(
            f"the cluster at {gw.server} does not serve {', '.join(fatal)}: nothing was applied",
            hint=None
            if not strict
            else "without --strict, kinds of the Prometheus operator are skipped when missing",
        )
    missing_set = set(missing)
    return lambda api_version, kind: f"{kind} ({api_version})" not in missing_set


def live_and_predicted(
    gw: KubeGateway, objects: Sequence[dict[str, Any]], *, reset_scaling: bool = False
) -> dict[ObjectRef, tuple[dict[str, Any] | None, dict[str, Any] | None]]:
    """For each object: the live one (None when absent) and the result of a server-side dry-run
    apply (the rendered object itself when absent), keeping the live scaling as a deploy does
    (``hold_scaling``) unless ``reset_scaling``. Changes nothing."""
    return live_held_and_predicted(gw, objects, reset_scaling=reset_scaling)[0]


def live_held_and_predicted(
    gw: KubeGateway, objects: Sequence[dict[str, Any]], *, reset_scaling: bool = False
) -> tuple[
    dict[ObjectRef, tuple[dict[str, Any] | None, dict[str, Any] | None]],
    list[dict[str, Any]],
    list[ScalingHold],
]:
    """``live_and_predicted``, plus the objects as a deploy would apply them and the scaling
    holds (``core.plan.hold_scaling``). One GET per object, one dry-run apply per live one."""
    lives: dict[ObjectRef, dict[str, Any] | None] = {}
    for obj in objects:
        meta = obj.get("metadata") or {}
        lives[ObjectRef.of(obj)] = gw.find(
            obj["kind"],
            meta["name"],
            namespace=meta.get("namespace"),
            api_version=obj["apiVersion"],
        )
    by_name = {(ref.kind, ref.name): live for ref, live in lives.items()}
    held, holds = hold_scaling(objects, by_name, reset=reset_scaling)
    out: dict[ObjectRef, tuple[dict[str, Any] | None, dict[str, Any] | None]] = {}
    for obj in held:
        ref = ObjectRef.of(obj)
        live = lives[ref]
        predicted = gw.apply(obj, dry_run=True) if live is not None else obj
        out[ref] = (live, predicted)
    return out, held, holds


def as_live_slot(
    gw: KubeGateway, rendered: Sequence[dict[str, Any]], namespace: str | None = None
) -> list[dict[str, Any]]:
    """``rendered`` with the API in the slot the live Service selects (with that Deployment's
    replicas), so a comparison with the cluster (``diff``) meets the same objects; unchanged when
    the live API is rolling. Two reads."""
    serving = live_slot(gw.find("Service", API_SERVICE, namespace=namespace))
    if serving is None:
        return list(rendered)
    dep = gw.find("Deployment", slot_deployment(serving), namespace=namespace)
    replicas = ((dep or {}).get("spec") or {}).get("replicas")
    return slotted(rendered, serving, None if replicas is None else int(replicas))


def live_scaled(
    gw: KubeGateway, objects: Sequence[dict[str, Any]], namespace: str
) -> dict[tuple[str, str], dict[str, Any]]:
    """The live Deployments and HPAs of tradewise by ``(kind, name)``: one list per kind that
    ``objects`` hold (what ``hold_scaling`` needs to keep a traffic profile)."""
    kinds = {o["kind"] for o in objects} & set(SCALED_KINDS) & set(HELD_FIELDS)
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for kind in SCALED_KINDS:
        if kind in kinds:
            for item in gw.list(kind, PART_OF, namespace=namespace):
                out[(kind, (item.get("metadata") or {}).get("name", ""))] = item
    return out
