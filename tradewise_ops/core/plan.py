"""Deploy plans and diffs as data: what a deploy will create, change, prune or skip, step by step.

``build_plan`` takes the rendered objects, which kinds the cluster serves, the previous release's
manifests and (for ``--dry-run`` and ``diff``) the live and predicted state of each object; it does
no I/O. ``release_steps`` turns a plan into the ordered, typed steps that a deploy carries out
(``with_steps`` puts them into the plan): the dry run prints exactly these steps and
``adapters.deployer`` executes exactly these, one for one. ``object_diff`` is a kubectl-style
unified diff of one object.
"""

from __future__ import annotations

import copy
import difflib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar

from tradewise_ops.core.bluegreen import (
    API_SERVICE,
    SLOTTED,
    is_api_deployment,
    switch_objects,
)
from tradewise_ops.core.canary import CanaryPlan
from tradewise_ops.core.release import ROLLED_BACK, ObjectRef, Release, after_success, prune_refs
from tradewise_ops.core.release_steps import (
    CanaryStep,
    CloseCanary,
    ClosePreview,
    KeepPrevious,
    OpenCanary,
    OpenPreview,
    RetireSlot,
    VerifyRelease,
)
from tradewise_ops.core.rollout import WORKLOAD_KINDS
from tradewise_ops.core.scaling import (
    APPLIED_AT_ANNOTATION,
    EMERGENCY_DOWN,
    MANUAL,
    PROFILE_ANNOTATION,
)
from tradewise_ops.core.verify import VerifyPlan

CREATE = "create"
UPDATE = "update"
UNCHANGED = "unchanged"
APPLY = "apply"  # create or update, not known without reading the cluster
PRUNE = "prune"
SKIP = "skip"

# kinds an optional operator provides: skipped (reported) when not served, unless --strict
OPTIONAL_KINDS = frozenset(
    {"ServiceMonitor", "PrometheusRule", "PodMonitor", "VerticalPodAutoscaler"}  # VPA: issue 16
)


@dataclass(frozen=True)
class PlanItem:
    """One object and what the deploy does with it."""

    ref: ObjectRef
    action: str
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.ref.kind,
            "name": self.ref.name,
            "namespace": self.ref.namespace,
            "apiVersion": self.ref.api_version,
            "action": self.action,
            **({"reason": self.reason} if self.reason else {}),
        }


# the spec fields a ``tradewise scale`` command sets, by kind: what a deploy keeps from the live
# object while the object carries the traffic-profile annotation
HELD_FIELDS: Mapping[str, tuple[str, ...]] = {
    "HorizontalPodAutoscaler": ("minReplicas", "maxReplicas"),
    "Deployment": ("replicas",),
    "StatefulSet": ("replicas",),
}
SCALING_ANNOTATIONS = (PROFILE_ANNOTATION, APPLIED_AT_ANNOTATION)


@dataclass(frozen=True)
class ScalingHold:
    """A scaling choice recorded on a live object (``tradewise scale ...``) that a deploy meets.

    ``kept``: the deploy applies the live values (``live``) instead of the config's (``config``)
    and leaves the annotations; otherwise (``--reset-scaling``) it applies the config's values and
    removes the annotations. ``profile`` is the recorded value: a profile name, ``manual``
    (``scale api N``) or ``emergency-down``.
    """

    kind: str
    name: str
    profile: str
    kept: bool
    live: Mapping[str, int | None]
    config: Mapping[str, int | None]

    @property
    def what(self) -> str:
        """How users name the choice: ``traffic profile high``, ``emergency-down``, ..."""
        if self.profile == MANUAL:
            return "the manual scale (scale api|workers N)"
        if self.profile == EMERGENCY_DOWN:
            return "emergency-down"
        return f"traffic profile {self.profile}"

    def sentence(self) -> str:
        """``keeps traffic profile high: min 10, max 20`` or ``resets ...: min 10 -> 3, ...``."""
        parts = []
        for key in self.live:
            word = _FIELD_WORDS.get(key, key)
            before, after = self.live[key], self.config.get(key)
            if self.kept:
                parts.append(f"{word} {before}")
            else:
                parts.append(
                    f"{word} {before} -> {after}" if before != after else f"{word} {after}"
                )
        values = f": {', '.join(parts)}" if parts else ""
        verb = "keeps" if self.kept else "resets"
        return f"{verb} {self.what}{values}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "name": self.name,
            "profile": self.profile,
            "kept": self.kept,
            "live": dict(self.live),
            "config": dict(self.config),
            "sentence": self.sentence(),
        }


_FIELD_WORDS = {"minReplicas": "min", "maxReplicas": "max", "replicas": "replicas"}


def hold_scaling(
    rendered: Sequence[dict[str, Any]],
    live: Mapping[tuple[str, str], Mapping[str, Any] | None],
    reset: bool = False,
) -> tuple[list[dict[str, Any]], list[ScalingHold]]:
    """Keep what ``tradewise scale`` set on live objects, unless ``reset``.

    ``live`` maps ``(kind, name)`` to the live object (absent or None: not deployed). A live HPA,
    Deployment or StatefulSet carrying the ``tradewise.io/traffic-profile`` annotation keeps its
    live ``minReplicas``/``maxReplicas`` (HPA) or ``replicas`` (where the rendered object sets
    them): the returned objects are copies of ``rendered`` with those values. With ``reset`` the
    rendered objects are returned as they are, and every annotated object gets a hold with
    ``kept=False`` (the caller removes the annotations after the apply). Pure.
    """
    out: list[dict[str, Any]] = []
    holds: list[ScalingHold] = []
    for obj in rendered:
        kind, name = obj.get("kind", ""), (obj.get("metadata") or {}).get("name", "")
        current = live.get((kind, name))
        profile = _annotation(current, PROFILE_ANNOTATION)
        if current is None or profile is None or kind not in HELD_FIELDS:
            out.append(obj)
            continue
        spec = obj.get("spec") or {}
        live_spec = current.get("spec") or {}
        keys = [k for k in HELD_FIELDS[kind] if k in spec and live_spec.get(k) is not None]
        live_values = {k: _int_or_none(live_spec.get(k)) for k in keys}
        config_values = {k: _int_or_none(spec.get(k)) for k in keys}
        if reset:
            holds.append(ScalingHold(kind, name, profile, False, live_values, config_values))
            out.append(obj)
            continue
        if not keys:  # e.g. an HPA-managed Deployment: nothing rendered to keep, nothing to say
            out.append(obj)
            continue
        kept = copy.deepcopy(obj)
        kept["spec"].update(live_values)
        holds.append(ScalingHold(kind, name, profile, True, live_values, config_values))
        out.append(kept)
    return out, holds


def _is_api_deployment(ref: ObjectRef) -> bool:
    return is_api_deployment({"kind": ref.kind, "metadata": {"name": ref.name}})


def _annotation(obj: Mapping[str, Any] | None, key: str) -> str | None:
    annotations = ((obj or {}).get("metadata") or {}).get("annotations") or {}
    value = annotations.get(key)
    return str(value) if value is not None else None


def _int_or_none(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


@dataclass(frozen=True)
class DeployPlan:
    """Every object of a deploy, in apply order, then the prunes (reverse apply order)."""

    environment: str
    namespace: str
    tag: str | None
    items: tuple[PlanItem, ...]
    objects: tuple[dict[str, Any], ...] = field(default=(), repr=False)  # what will be applied
    holds: tuple[ScalingHold, ...] = ()  # scaling choices kept from (or reset on) live objects
    # what the release record keeps: the rendered objects, with the config's scaling (None: the
    # objects applied)
    manifests: tuple[dict[str, Any], ...] | None = field(default=None, repr=False)
    strategy: str = "rolling"  # rolling | blue-green
    slot: str | None = None  # blue-green: the slot the new version goes to
    live_slot: str | None = None  # blue-green: the slot serving now (None: a rolling API, or none)
    # what the deploy does, in order (``with_steps``); empty: not planned for a release yet
    revision: int | None = None  # the revision the release will be recorded as
    wait: bool = True  # whether the deploy waits for the rollout (and, blue-green, switches)
    steps: tuple[Step, ...] = field(default=(), repr=False)
    # blue-green / canary: how the new slot is verified, and its preview objects
    verification: VerifyPlan | None = None
    preview: tuple[dict[str, Any], ...] = field(default=(), repr=False)
    canary: CanaryPlan | None = None  # a canary release's steps and analysis

    def of(self, *actions: str) -> list[PlanItem]:
        return [i for i in self.items if i.action in actions]

    @property
    def to_apply(self) -> list[dict[str, Any]]:
        """The rendered objects to apply (not skipped), in apply order."""
        return list(self.objects)

    @property
    def to_record(self) -> list[dict[str, Any]]:
        """The manifests of the release record: as rendered, with the config's scaling."""
        return list(self.objects if self.manifests is None else self.manifests)

    @property
    def to_reset(self) -> list[ScalingHold]:
        """The objects whose scaling annotations ``--reset-scaling`` removes after the apply."""
        return [h for h in self.holds if not h.kept]

    @property
    def to_prune(self) -> list[ObjectRef]:
        """What to delete right after the apply (the API Deployments wait: ``to_prune_late``)."""
        return [i.ref for i in self.of(PRUNE) if not _is_api_deployment(i.ref)]

    @property
    def to_prune_late(self) -> list[ObjectRef]:
        """API Deployments no longer rendered (the old slot, or the rolling one): deleted only
        once the new version is ready (and, blue-green, serving), so the API never goes dark."""
        return [i.ref for i in self.of(PRUNE) if _is_api_deployment(i.ref)]

    @property
    def skipped(self) -> list[PlanItem]:
        return self.of(SKIP)

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for item in self.items:
            out[item.action] = out.get(item.action, 0) + 1
        return out

    @property
    def changes(self) -> bool:
        """Whether applying it would change anything (create, update, prune)."""
        return bool(self.of(CREATE, UPDATE, PRUNE, APPLY))

    def to_dict(self) -> dict[str, Any]:
        return {
            "environment": self.environment,
            "namespace": self.namespace,
            "tag": self.tag,
            "counts": self.counts(),
            "objects": [i.to_dict() for i in self.items],
            "scaling": [h.to_dict() for h in self.holds],
            "strategy": self.strategy,
            "slot": self.slot,
            "live_slot": self.live_slot,
            **self._release_dict(),
        }

    def _release_dict(self) -> dict[str, Any]:
        """Blue-green and canary plans: the verification and every step, in order."""
        if self.strategy == "rolling":
            return {}
        return {
            "verification": self.verification.to_dict() if self.verification else None,
            **({"canary": self.canary.to_dict()} if self.canary is not None else {}),
            "preview": [str(ObjectRef.of(o)) for o in self.preview],
            "steps": [{"op": s.op, "target": s.target, "detail": s.detail} for s in self.steps],
        }

    def rows(self) -> list[list[Any]]:
        """Rows ``ACTION KIND NAME REASON``."""
        return [[i.action, i.ref.kind, i.ref.name, i.reason] for i in self.items]

    def step_rows(self) -> list[list[Any]]:
        """Rows ``# STEP OBJECT DETAIL``, one per step, in the order a deploy takes them."""
        return [[n, s.op, s.target, s.detail] for n, s in enumerate(self.steps, 1)]


# -- the steps of a release ---------------------------------------------------------------------
# Each step is one thing ``Deployer.apply`` does; ``phase`` is what an interruption or a failure
# during it reports (apply, prune, wait, switch), as the deploy's progress has always named them.


@dataclass(frozen=True)
class ApplyObject:
    """Server-side apply one object; ``action`` is create / update / unchanged when the plan
    read the cluster (a dry run), else apply."""

    op: ClassVar[str] = "apply"
    phase: ClassVar[str] = "apply"
    obj: dict[str, Any] = field(repr=False)
    action: str = APPLY
    reason: str = ""

    @property
    def ref(self) -> ObjectRef:
        return ObjectRef.of(self.obj)

    @property
    def target(self) -> str:
        return str(self.ref)

    @property
    def detail(self) -> str:
        return f"{self.action}: {self.reason}" if self.reason else self.action


@dataclass(frozen=True)
class EnsureNamespace:
    """Create the namespace when it is missing (no Namespace object is rendered)."""

    op: ClassVar[str] = "ensure-namespace"
    phase: ClassVar[str] = "apply"
    namespace: str

    @property
    def target(self) -> str:
        return f"Namespace/{self.namespace}"

    @property
    def detail(self) -> str:
        return "created when missing"


@dataclass(frozen=True)
class RecordRelease:
    """Store the release record as pending; it doubles as a lock (another deploy of the
    environment that got there first makes this fail)."""

    op: ClassVar[str] = "record"
    phase: ClassVar[str] = "apply"
    revision: int
    objects: int

    @property
    def target(self) -> str:
        return f"revision {self.revision}"

    @property
    def detail(self) -> str:
        return f"pending, {self.objects} objects"


@dataclass(frozen=True)
class ResetScaling:
    """Remove the traffic-profile annotations of one object (``--reset-scaling``)."""

    op: ClassVar[str] = "reset-scaling"
    phase: ClassVar[str] = "apply"
    hold: ScalingHold

    @property
    def target(self) -> str:
        return f"{self.hold.kind}/{self.hold.name}"

    @property
    def detail(self) -> str:
        return f"forget {self.hold.what}"


@dataclass(frozen=True)
class PruneObject:
    """Delete an object no longer rendered; ``late``: an API Deployment, deleted only once the
    new version is ready (and, blue-green, serving)."""

    op: ClassVar[str] = "prune"
    phase: ClassVar[str] = "prune"
    ref: ObjectRef
    late: bool = False

    @property
    def target(self) -> str:
        return str(self.ref)

    @property
    def detail(self) -> str:
        if self.late:
            return "no longer rendered; deleted once the new API version is ready"
        return "no longer rendered"


@dataclass(frozen=True)
class WaitForRollout:
    """Watch the applied workloads until every one is healthy, one fails, or the timeout."""

    op: ClassVar[str] = "wait"
    phase: ClassVar[str] = "wait"
    workloads: tuple[ObjectRef, ...]

    @property
    def target(self) -> str:
        return f"{len(self.workloads)} workloads"

    @property
    def detail(self) -> str:
        return "until each is healthy, one fails, or --timeout passes; a failure stops here"


@dataclass(frozen=True)
class SwitchTraffic:
    """Blue-green: point the API Service and HPA (``objects``) at the new ``slot``, then check
    the Service selects ready pods of it; switch back (and delete the slot) when not."""

    op: ClassVar[str] = "switch"
    phase: ClassVar[str] = "switch"
    slot: str
    live_slot: str | None
    objects: tuple[dict[str, Any], ...] = field(repr=False)
    reclaim: bool = False  # an instant rollback: the slot stops being a kept previous one

    @property
    def target(self) -> str:
        return f"Service/{API_SERVICE}"

    @property
    def detail(self) -> str:
        source = f"slot {self.live_slot}" if self.live_slot else "the running API"
        applied = ", ".join(str(ObjectRef.of(o)) for o in self.objects)
        text = f"from {source} to slot {self.slot} once it has ready pods: applies {applied}"
        if self.reclaim:
            text += f"; slot {self.slot} is no longer a kept previous slot"
        return text


@dataclass(frozen=True)
class FinishRelease:
    """Record the release as deployed, and what it replaces (``supersede``: revision, status)."""

    op: ClassVar[str] = "finish"
    phase: ClassVar[str] = "prune"  # as the prunes before it (the deploy's progress so names it)
    revision: int
    supersede: tuple[tuple[int, str], ...] = ()

    @property
    def target(self) -> str:
        return f"revision {self.revision}"

    @property
    def detail(self) -> str:
        after = "; ".join(f"revision {r} {status}" for r, status in self.supersede)
        return "deployed" + (f"; {after}" if after else "")


Step = (
    ApplyObject
    | EnsureNamespace
    | RecordRelease
    | ResetScaling
    | PruneObject
    | WaitForRollout
    | SwitchTraffic
    | FinishRelease
    | RetireSlot
    | OpenPreview
    | VerifyRelease
    | ClosePreview
    | KeepPrevious
    | OpenCanary
    | CanaryStep
    | CloseCanary
)


def step_line(number: int, step: Step) -> str:
    """``step 3: apply ConfigMap/tradewise-config``: how a step is named as it runs."""
    return f"step {number}: {step.op} {step.target}"


def release_steps(
    plan: DeployPlan,
    revision: int,
    *,
    wait: bool = True,
    releases: Sequence[Release] = (),
    rolling_back_from: Release | None = None,
) -> tuple[Step, ...]:
    """The ordered steps of releasing ``plan`` as ``revision``.

    Namespaces first (or ensure the namespace), then the release record, then every other object
    in apply order, except (blue-green) the API Service and HPA; then the ``--reset-scaling``
    annotations, the prunes, and with ``wait`` the wait for the rollout and (blue-green) the
    switch of the Service and HPA; then the API Deployments no longer rendered; last the record
    as deployed, superseding the earlier deployed ``releases`` (``rolling_back_from``: rolled back
    instead). Without ``wait`` a blue-green plan neither waits nor switches.
    """
    items = {i.ref: i for i in plan.items}

    def apply(obj: dict[str, Any]) -> ApplyObject:
        item = items.get(ObjectRef.of(obj))
        return ApplyObject(obj, item.action if item else APPLY, item.reason if item else "")

    objects = plan.to_apply
    namespaces = [o for o in objects if o["kind"] == "Namespace"]
    rest = [o for o in objects if o["kind"] != "Namespace"]
    steps: list[Step] = [apply(o) for o in namespaces] or [EnsureNamespace(plan.namespace)]
    steps.append(RecordRelease(revision, len(objects)))
    deferred = switch_objects(rest) if plan.strategy in SLOTTED else []
    steps += [apply(o) for o in rest if o not in deferred]
    steps += [ResetScaling(h) for h in plan.to_reset]
    steps += [PruneObject(ref) for ref in plan.to_prune]
    if wait:
        workloads = tuple(
            ObjectRef.of(o)
            for o in [*namespaces, *rest]
            if o not in deferred and o["kind"] in WORKLOAD_KINDS
        )
        steps.append(WaitForRollout(workloads))
        if plan.slot is not None:
            steps.append(SwitchTraffic(plan.slot, plan.live_slot, tuple(deferred)))
    steps += [PruneObject(ref, late=True) for ref in plan.to_prune_late]
    supersede = []
    for old, status in after_success(releases, revision):
        if rolling_back_from is not None and old.revision == rolling_back_from.revision:
            status = ROLLED_BACK
        supersede.append((old.revision, status))
    steps.append(FinishRelease(revision, tuple(supersede)))
    return tuple(steps)


def with_steps(
    plan: DeployPlan,
    revision: int,
    *,
    wait: bool = True,
    releases: Sequence[Release] = (),
    rolling_back_from: Release | None = None,
) -> DeployPlan:
    """``plan`` with its release steps (``release_steps``), revision and ``wait``."""
    steps = release_steps(
        plan, revision, wait=wait, releases=releases, rolling_back_from=rolling_back_from
    )
    return replace(plan, revision=revision, wait=wait, steps=steps)


def unserved(
    rendered: Sequence[dict[str, Any]], served: Callable[[str, str], bool]
) -> list[ObjectRef]:
    """The rendered objects whose kind the cluster does not serve."""
    return [ObjectRef.of(obj) for obj in rendered if not served(obj["apiVersion"], obj["kind"])]


def build_plan(
    environment: str,
    namespace: str,
    tag: str | None,
    rendered: Sequence[dict[str, Any]],
    served: Callable[[str, str], bool],
    previous: Sequence[dict[str, Any]] | None = None,
    live: Mapping[ObjectRef, tuple[dict[str, Any] | None, dict[str, Any] | None]] | None = None,
    holds: Sequence[ScalingHold] = (),
    manifests: Sequence[dict[str, Any]] | None = None,
) -> DeployPlan:
    """The plan of a deploy.

    ``served(apiVersion, kind)`` says what the cluster serves; objects of other kinds are
    ``skip``. ``previous`` is the last release's manifests (for prune). ``live`` maps a ref to
    ``(live object or None, object as it would be after the apply)``; without it, actions are
    ``apply`` (create or update, unknown). ``holds`` (from ``hold_scaling``, whose objects
    ``rendered`` then are) add their sentence to the object's reason; ``manifests`` are the
    rendered objects before ``hold_scaling``, for the release record.
    """
    items: list[PlanItem] = []
    objects: list[dict[str, Any]] = []
    said = {(h.kind, h.name): h.sentence() for h in holds}
    for obj in rendered:
        ref = ObjectRef.of(obj)
        if not served(ref.api_version, ref.kind):
            items.append(
                PlanItem(ref, SKIP, f"the cluster does not serve {ref.kind} ({ref.api_version})")
            )
            continue
        objects.append(obj)
        note = said.get((ref.kind, ref.name), "")
        if live is None or ref not in live:
            items.append(PlanItem(ref, APPLY, note))
            continue
        current, predicted = live[ref]
        if current is None:
            items.append(PlanItem(ref, CREATE, note))
        elif predicted is not None and _clean(current) != _clean(predicted):
            fields = ", ".join(changed_fields(current, predicted)[:4])
            items.append(PlanItem(ref, UPDATE, "; ".join(p for p in (fields, note) if p)))
        else:
            items.append(PlanItem(ref, UNCHANGED, note))
    for ref in prune_refs(previous, rendered):
        reason = "no longer rendered"
        if _is_api_deployment(ref):
            reason += "; deleted once the new API version is ready"
        items.append(PlanItem(ref, PRUNE, reason))
    kept_manifests = None
    if manifests is not None:
        kept_manifests = tuple(m for m in manifests if served(m["apiVersion"], m["kind"]))
    return DeployPlan(
        environment,
        namespace,
        tag,
        tuple(items),
        tuple(objects),
        tuple(holds),
        kept_manifests,
    )


def _clean(obj: Mapping[str, Any] | None) -> dict[str, Any]:
    """``obj`` without what the server changes on every write (managedFields, resourceVersion,
    generation) and without status."""
    if not obj:
        return {}
    out = {k: v for k, v in obj.items() if k != "status"}
    meta = dict(out.get("metadata") or {})
    for key in ("managedFields", "resourceVersion", "generation"):
        meta.pop(key, None)
    out["metadata"] = meta
    return out


def changed_fields(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[str]:
    """Dotted paths whose values differ (``spec.template.spec.containers``), shallowest first."""
    out: list[str] = []

    def walk(a: Any, b: Any, path: str) -> None:
        if isinstance(a, Mapping) and isinstance(b, Mapping):
            for key in sorted(set(a) | set(b)):
                walk(a.get(key), b.get(key), f"{path}.{key}" if path else str(key))
        elif a != b:
            out.append(path)

    walk(_clean(before), _clean(after), "")
    return out


def diff_name(ref: ObjectRef) -> str:
    """kubectl's file name for an object in a diff: ``apps.v1.Deployment.NS.NAME``."""
    group_version = ref.api_version.replace("/", ".")
    return ".".join(p for p in (group_version, ref.kind, ref.namespace or "", ref.name) if p)


def object_diff(
    ref: ObjectRef, live: Mapping[str, Any] | None, predicted: Mapping[str, Any] | None
) -> str:
    """A unified diff of one object, live vs after the apply, as ``kubectl diff`` prints it.

    Empty when nothing changes. ``managedFields`` are left out, as kubectl does.
    """
    import yaml

    def text(obj: Mapping[str, Any] | None) -> list[str]:
        if not obj:
            return []
        shown = dict(obj)
        meta = dict(shown.get("metadata") or {})
        meta.pop("managedFields", None)
        shown["metadata"] = meta
        return yaml.safe_dump(shown, sort_keys=True, default_flow_style=False).splitlines(True)

    before, after = text(live), text(predicted)
    if before == after:
        return ""
    name = diff_name(ref)
    left, right = f"/tmp/LIVE/{name}", f"/tmp/MERGED/{name}"
    body = "".join(difflib.unified_diff(before, after, left, right))
    return f"diff -u -N {left} {right}\n{body}"
