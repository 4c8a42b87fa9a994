"""Putting the steps of a release decided by evidence into a deploy plan (``core.release_steps``).

``with_verification`` turns a planned blue-green deploy's steps into a verified one's (preview,
verify, switch, close the preview, keep the previous slot); ``with_canary`` into a canary's
(open the canary, each weight held and judged, switch, close the canary, keep the previous
slot); ``with_retired`` adds the deletion of
slot Deployments that do not serve; ``instant_steps`` are an instant rollback's (record, switch
back to the kept slot, keep the slot left, finish). Pure.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from tradewise_ops.core.bluegreen import slot_deployment
from tradewise_ops.core.canary import CANARY_INGRESS, CanaryPlan
from tradewise_ops.core.plan import (
    DeployPlan,
    FinishRelease,
    PruneObject,
    RecordRelease,
    Step,
    SwitchTraffic,
)
from tradewise_ops.core.release import ObjectRef
from tradewise_ops.core.release_steps import (
    CanaryStep,
    CloseCanary,
    ClosePreview,
    KeepPrevious,
    KeptSlot,
    OpenCanary,
    OpenPreview,
    RetireSlot,
    VerifyRelease,
)
from tradewise_ops.core.verify import VerifyPlan


def _deployment_ref(slot: str, namespace: str) -> ObjectRef:
    return ObjectRef("apps/v1", "Deployment", slot_deployment(slot), namespace)


def with_verification(
    plan: DeployPlan,
    *,
    verify: VerifyPlan,
    preview: Sequence[dict[str, Any]],
    keep_seconds: float,
) -> DeployPlan:
    """A blue-green ``plan`` (planned with ``wait``) with its preview, verification and kept
    previous slot (see the module's docstring). ``verify`` skipped: no preview, no verify step.
    ``keep_seconds`` 0: the old slot is deleted once the new one serves, as before."""
    if plan.slot is None or not any(isinstance(s, SwitchTraffic) for s in plan.steps):
        return plan
    out: list[Step] = []
    opened = None
    for step in plan.steps:
        if isinstance(step, SwitchTraffic):
            if not verify.skipped:
                opened = OpenPreview(plan.slot, tuple(preview))
                out.append(opened)
                out.append(VerifyRelease(plan.slot, verify, plan.namespace))
            out.append(step)
            if opened is not None:
                out.append(ClosePreview(tuple(opened.refs)))
            continue
        old = plan.live_slot
        if (
            isinstance(step, PruneObject)
            and step.late
            and old is not None
            and keep_seconds > 0
            and step.ref.name == slot_deployment(old)
        ):
            out.append(KeepPrevious(old, plan.namespace, _serving_revision(plan), keep_seconds))
            continue
        out.append(step)
    return replace(plan, steps=tuple(out), verification=verify, preview=tuple(preview))


def with_retired(plan: DeployPlan, stale: Sequence[KeptSlot]) -> DeployPlan:
    """``plan`` with a ``retire`` step per slot in ``stale`` right after the release record
    (one the plan prunes anyway is left to its prune)."""
    pruned = {s.ref.name for s in plan.steps if isinstance(s, PruneObject)}
    retire = [
        RetireSlot(k.slot, plan.namespace, k.revision, k.until)
        for k in stale
        if slot_deployment(k.slot) not in pruned
    ]
    if not retire:
        return plan
    out: list[Step] = []
    for step in plan.steps:
        out.append(step)
        if isinstance(step, RecordRelease):
            out.extend(retire)
    return replace(plan, steps=tuple(out))


def _serving_revision(plan: DeployPlan) -> int | None:
    """The revision the old slot serves: the one the finish step supersedes."""
    for step in plan.steps:
        if isinstance(step, FinishRelease) and step.supersede:
            return max(r for r, _status in step.supersede)
    return None


def instant_steps(
    plan: DeployPlan,
    *,
    switch_objects: Sequence[dict[str, Any]],
    leaving_revision: int | None,
    keep_seconds: float,
    supersede: Sequence[tuple[int, str]],
) -> DeployPlan:
    """An instant rollback's steps: record, switch the Service and HPA back to ``plan.slot`` (a
    kept previous slot), keep the slot left (``plan.live_slot``) as the previous one (or delete
    it when ``keep_seconds`` is 0), finish."""
    assert plan.revision is not None and plan.slot is not None
    steps: list[Step] = [RecordRelease(plan.revision, len(plan.to_record))]
    steps.append(SwitchTraffic(plan.slot, plan.live_slot, tuple(switch_objects), reclaim=True))
    if plan.live_slot is not None:
        if keep_seconds > 0:
            steps.append(
                KeepPrevious(plan.live_slot, plan.namespace, leaving_revision, keep_seconds)
            )
        else:
            steps.append(PruneObject(_deployment_ref(plan.live_slot, plan.namespace), late=True))
    steps.append(FinishRelease(plan.revision, tuple(supersede)))
    return replace(plan, steps=tuple(steps))


def with_canary(
    plan: DeployPlan,
    *,
    canary: CanaryPlan,
    objects: Sequence[dict[str, Any]],
    preview: Sequence[dict[str, Any]],
    keep_seconds: float,
) -> DeployPlan:
    """A slotted ``plan`` (planned with ``wait``) as a canary: once the new slot is ready, the
    canary ``objects`` open at weight 0 (and, without Prometheus, the ``preview`` for the
    verification load of each step), each weight is held and judged, then the Service and HPA
    switch to the new slot, the canary (and preview) objects go and the old slot is kept for
    ``keep_seconds`` (0: deleted)."""
    if plan.slot is None or not any(isinstance(s, SwitchTraffic) for s in plan.steps):
        return plan
    judged_by = canary.describe()
    out: list[Step] = []
    total = len(canary.weights)
    for step in plan.steps:
        if isinstance(step, SwitchTraffic):
            opened = OpenCanary(plan.slot, tuple(objects))
            out.append(opened)
            previewed = None
            if canary.analysis is None and preview:
                previewed = OpenPreview(plan.slot, tuple(preview))
                out.append(previewed)
            for number, weight in enumerate(canary.weights, 1):
                out.append(
                    CanaryStep(
                        number, total, weight, canary.hold_seconds, CANARY_INGRESS, judged_by
                    )
                )
            out.append(step)
            out.append(CloseCanary(tuple(reversed(opened.refs))))
            if previewed is not None:
                out.append(ClosePreview(tuple(previewed.refs)))
            continue
        old = plan.live_slot
        if (
            isinstance(step, PruneObject)
            and step.late
            and old is not None
            and keep_seconds > 0
            and step.ref.name == slot_deployment(old)
        ):
            out.append(KeepPrevious(old, plan.namespace, _serving_revision(plan), keep_seconds))
            continue
        out.append(step)
    return replace(
        plan,
        steps=tuple(out),
        canary=canary,
        verification=canary.verify,
        preview=tuple(preview) if canary.analysis is None else (),
    )
