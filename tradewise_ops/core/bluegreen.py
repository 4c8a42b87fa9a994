"""Blue-green releases of the API as data: slotted manifests and which slot is live.

A blue-green deploy runs the new API version beside the current one, in the other *slot*: the
API Deployment is named ``tradewise-api-deployment-<slot>`` (slot ``blue`` or ``green``) and its
pods carry the label ``tradewise.io/slot``. The Service ``tradewise-api-service`` selects one
slot; the HPA targets that slot's Deployment. Everything else (workers, precompute, databases) is
the same as a rolling deploy. ``slotted`` turns rendered (rolling) manifests into a slot's; it
does no I/O. The adapter (``adapters/deployer``) applies the new slot, waits for it, then
switches the Service and the HPA (``switch_objects``) and deletes the old slot.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

from tradewise_ops.errors import BadInputError

ROLLING = "rolling"
BLUE_GREEN = "blue-green"
CANARY = "canary"  # slotted like blue-green; traffic moves in weighted steps (core.canary)
STRATEGIES = (ROLLING, BLUE_GREEN, CANARY)
SLOTTED = (BLUE_GREEN, CANARY)  # the strategies that put the API in a slot
SLOTS = ("blue", "green")
SLOT_LABEL = "tradewise.io/slot"
API_DEPLOYMENT = "tradewise-api-deployment"
API_SERVICE = "tradewise-api-service"
API_HPA = "tradewise-api-hpa"


def check_strategy(strategy: str) -> str:
    """``strategy`` if known, else ``BadInputError`` naming the allowed values."""
    if strategy not in STRATEGIES:
        raise BadInputError(
            f"--strategy {strategy!r} is not one of {', '.join(STRATEGIES)}",
        )
    return strategy


def slot_deployment(slot: str) -> str:
    """The API Deployment's name in ``slot``: ``tradewise-api-deployment-blue``."""
    return f"{API_DEPLOYMENT}-{slot}"


def other_slot(slot: str | None) -> str:
    """The slot a new version goes to: the one not live (``blue`` when none is)."""
    return "green" if slot == "blue" else "blue"


def live_slot(service: Mapping[str, Any] | None) -> str | None:
    """The slot the live API Service selects (None: no Service, or a rolling one)."""
    selector = ((service or {}).get("spec") or {}).get("selector") or {}
    slot = selector.get(SLOT_LABEL)
    return str(slot) if slot in SLOTS else None


def is_api_deployment(obj: Mapping[str, Any]) -> bool:
    """Whether ``obj`` is the API Deployment, rolling or in a slot."""
    name = str((obj.get("metadata") or {}).get("name", ""))
    return obj.get("kind") == "Deployment" and (
        name == API_DEPLOYMENT or name in {slot_deployment(s) for s in SLOTS}
    )


def unslotted(objects: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rolling form of ``objects`` (a blue-green release's manifests, for a rolling
    rollback): the API Deployment back under its plain name, no slot label or selector."""
    out = []
    for obj in objects:
        kind, name = obj.get("kind"), (obj.get("metadata") or {}).get("name")
        if is_api_deployment(obj) or (kind, name) in (
            ("Service", API_SERVICE),
            ("HorizontalPodAutoscaler", API_HPA),
        ):
            obj = copy.deepcopy(obj)
            _drop_slot(obj)
        out.append(obj)
    return out


def _drop_slot(obj: dict[str, Any]) -> None:
    meta = obj.get("metadata") or {}
    (meta.get("labels") or {}).pop(SLOT_LABEL, None)
    spec = obj.get("spec") or {}
    if obj["kind"] == "Deployment":
        meta["name"] = API_DEPLOYMENT
        ((spec.get("selector") or {}).get("matchLabels") or {}).pop(SLOT_LABEL, None)
        tmeta = (spec.get("template") or {}).get("metadata") or {}
        (tmeta.get("labels") or {}).pop(SLOT_LABEL, None)
    elif obj["kind"] == "Service":
        (spec.get("selector") or {}).pop(SLOT_LABEL, None)
    else:
        (spec.get("scaleTargetRef") or {})["name"] = API_DEPLOYMENT


def slotted(
    objects: Sequence[dict[str, Any]], slot: str, replicas: int | None = None
) -> list[dict[str, Any]]:
    """``objects`` (rendered, or an earlier release's) with the API in ``slot``.

    The API Deployment is renamed ``tradewise-api-deployment-<slot>`` and labelled (metadata,
    selector, pod template) ``tradewise.io/slot: <slot>``; ``replicas`` (the live slot's count,
    so the new slot takes the same load at once) becomes its ``spec.replicas``. The Service
    selects the slot and the HPA targets its Deployment. Copies; ``objects`` are not changed.
    """
    if slot not in SLOTS:
        raise BadInputError(f"slot {slot!r} is not one of {', '.join(SLOTS)}")
    out = []
    for obj in unslotted(objects):
        kind, name = obj.get("kind"), (obj.get("metadata") or {}).get("name")
        if kind == "Deployment" and name == API_DEPLOYMENT:
            obj = copy.deepcopy(obj)
            meta = obj["metadata"]
            meta["name"] = slot_deployment(slot)
            meta.setdefault("labels", {})[SLOT_LABEL] = slot
            spec = obj["spec"]
            spec.setdefault("selector", {}).setdefault("matchLabels", {})[SLOT_LABEL] = slot
            template = spec.setdefault("template", {}).setdefault("metadata", {})
            template.setdefault("labels", {})[SLOT_LABEL] = slot
            if replicas is not None:
                spec["replicas"] = int(replicas)
        elif (kind, name) == ("Service", API_SERVICE):
            obj = copy.deepcopy(obj)
            obj["spec"].setdefault("selector", {})[SLOT_LABEL] = slot
        elif (kind, name) == ("HorizontalPodAutoscaler", API_HPA):
            obj = copy.deepcopy(obj)
            obj["spec"]["scaleTargetRef"]["name"] = slot_deployment(slot)
        out.append(obj)
    return out


def switch_objects(objects: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The objects a blue-green deploy applies only after the new slot is ready: the API
    Service (traffic) and the API HPA (autoscaling follows the traffic)."""
    return [
        o
        for o in objects
        if (o.get("kind"), (o.get("metadata") or {}).get("name"))
        in (("Service", API_SERVICE), ("HorizontalPodAutoscaler", API_HPA))
    ]
