"""Deploy plans and diffs as data: what a deploy will create, change, prune or skip.

``build_plan`` takes the rendered objects, which kinds the cluster serves, the previous release's
manifests and (for ``--dry-run`` and ``diff``) the live and predicted state of each object; it does
no I/O. ``object_diff`` is a kubectl-style unified diff of one object.
"""

from __future__ import annotations

import copy
import difflib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from tradewise_ops.core.bluegreen import is_api_deployment
from tradewise_ops.core.release import ObjectRef, prune_refs
from tradewise_ops.core.scaling import (
    APPLIED_AT_ANNOTATION,
    EMERGENCY_DOWN,
    MANUAL,
    PROFILE_ANNOTATION,
)

CREATE = "create"
UPDATE = "update"
UNCHANGED = "unchanged"
APPLY = "apply"  # create or update, not known without reading the cluster
PRUNE = "prune"
SKIP = "skip"

# kinds an optional operator provides: skipped (reported) when not served, unless --strict
OPTIONAL_KINDS = frozenset({"ServiceMonitor", "PrometheusRule", "PodMonitor"})


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
        }

    def rows(self) -> list[list[Any]]:
        """Rows ``ACTION KIND NAME REASON``."""
        return [[i.action, i.ref.kind, i.ref.name, i.reason] for i in self.items]


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
