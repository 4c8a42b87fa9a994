"""Deploy plans and diffs as data: what a deploy will create, change, prune or skip.

``build_plan`` takes the rendered objects, which kinds the cluster serves, the previous release's
manifests and (for ``--dry-run`` and ``diff``) the live and predicted state of each object; it does
no I/O. ``object_diff`` is a kubectl-style unified diff of one object.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from tradewise_ops.core.release import ObjectRef, prune_refs

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


@dataclass(frozen=True)
class DeployPlan:
    """Every object of a deploy, in apply order, then the prunes (reverse apply order)."""

    environment: str
    namespace: str
    tag: str | None
    items: tuple[PlanItem, ...]
    objects: tuple[dict[str, Any], ...] = field(default=(), repr=False)  # what will be applied

    def of(self, *actions: str) -> list[PlanItem]:
        return [i for i in self.items if i.action in actions]

    @property
    def to_apply(self) -> list[dict[str, Any]]:
        """The rendered objects to apply (not skipped), in apply order."""
        return list(self.objects)

    @property
    def to_prune(self) -> list[ObjectRef]:
        return [i.ref for i in self.of(PRUNE)]

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
) -> DeployPlan:
    """The plan of a deploy.

    ``served(apiVersion, kind)`` says what the cluster serves; objects of other kinds are
    ``skip``. ``previous`` is the last release's manifests (for prune). ``live`` maps a ref to
    ``(live object or None, object as it would be after the apply)``; without it, actions are
    ``apply`` (create or update, unknown).
    """
    items: list[PlanItem] = []
    objects: list[dict[str, Any]] = []
    for obj in rendered:
        ref = ObjectRef.of(obj)
        if not served(ref.api_version, ref.kind):
            items.append(
                PlanItem(ref, SKIP, f"the cluster does not serve {ref.kind} ({ref.api_version})")
            )
            continue
        objects.append(obj)
        if live is None or ref not in live:
            items.append(PlanItem(ref, APPLY))
            continue
        current, predicted = live[ref]
        if current is None:
            items.append(PlanItem(ref, CREATE))
        elif predicted is not None and _clean(current) != _clean(predicted):
            items.append(PlanItem(ref, UPDATE, ", ".join(changed_fields(current, predicted)[:4])))
        else:
            items.append(PlanItem(ref, UNCHANGED))
    for ref in prune_refs(previous, rendered):
        items.append(PlanItem(ref, PRUNE, "no longer rendered"))
    return DeployPlan(environment, namespace, tag, tuple(items), tuple(objects))


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
