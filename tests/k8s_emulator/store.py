"""The emulator's object store: resources served, objects, resourceVersions, the event log, patches.

Thread-safe (one lock + condition); pure data, no HTTP. The HTTP layer is ``server.py``.
"""

from __future__ import annotations

import copy
import datetime
import itertools
import re
import threading
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class ResourceType:
    """One served resource: ``apps/v1 deployments`` (kind Deployment), namespaced or not."""

    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool = True
    subresources: tuple[str, ...] = ()
    short: tuple[str, ...] = ()

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def group_version(self) -> str:
        return self.api_version

    def singular(self) -> str:
        return self.kind.lower()


CORE = [
    ResourceType("", "v1", "namespaces", "Namespace", namespaced=False, short=("ns",)),
    ResourceType(
        "", "v1", "nodes", "Node", namespaced=False, subresources=("status",), short=("no",)
    ),
    ResourceType("", "v1", "pods", "Pod", subresources=("status",), short=("po",)),
    ResourceType("", "v1", "services", "Service", subresources=("status",), short=("svc",)),
    ResourceType("", "v1", "configmaps", "ConfigMap", short=("cm",)),
    ResourceType("", "v1", "secrets", "Secret"),
    ResourceType("", "v1", "events", "Event", short=("ev",)),
    ResourceType("", "v1", "serviceaccounts", "ServiceAccount", short=("sa",)),
    ResourceType("", "v1", "persistentvolumeclaims", "PersistentVolumeClaim", short=("pvc",)),
    ResourceType("", "v1", "endpoints", "Endpoints", short=("ep",)),
    ResourceType(
        "apps",
        "v1",
        "deployments",
        "Deployment",
        subresources=("status", "scale"),
        short=("deploy",),
    ),
    ResourceType(
        "apps",
        "v1",
        "statefulsets",
        "StatefulSet",
        subresources=("status", "scale"),
        short=("sts",),
    ),
    ResourceType("apps", "v1", "replicasets", "ReplicaSet", subresources=("status", "scale")),
    ResourceType(
        "autoscaling",
        "v2",
        "horizontalpodautoscalers",
        "HorizontalPodAutoscaler",
        subresources=("status",),
        short=("hpa",),
    ),
    ResourceType("networking.k8s.io", "v1", "ingresses", "Ingress", subresources=("status",)),
    ResourceType("networking.k8s.io", "v1", "networkpolicies", "NetworkPolicy"),
    ResourceType("policy", "v1", "poddisruptionbudgets", "PodDisruptionBudget", short=("pdb",)),
    ResourceType("batch", "v1", "cronjobs", "CronJob", subresources=("status",)),
    ResourceType("batch", "v1", "jobs", "Job", subresources=("status",)),
    ResourceType("rbac.authorization.k8s.io", "v1", "roles", "Role"),
    ResourceType("rbac.authorization.k8s.io", "v1", "rolebindings", "RoleBinding"),
    ResourceType(
        "scheduling.k8s.io",
        "v1",
        "priorityclasses",
        "PriorityClass",
        namespaced=False,
        short=("pc",),
    ),
    ResourceType("coordination.k8s.io", "v1", "leases", "Lease"),
]
# served on demand (``Emulator.serve_metrics_api``, ``serve_vpa``): metrics-server's read-only
# PodMetrics (the test puts them), and the VerticalPodAutoscaler CRD
VPA = [
    ResourceType(
        "autoscaling.k8s.io",
        "v1",
        "verticalpodautoscalers",
        "VerticalPodAutoscaler",
        subresources=("status",),
        short=("vpa",),
    )
]
# what metrics-server serves (the resource metrics API); tests write the usage
METRICS_API = [
    ResourceType("metrics.k8s.io", "v1beta1", "pods", "PodMetrics"),
    ResourceType("metrics.k8s.io", "v1beta1", "nodes", "NodeMetrics", namespaced=False),
]
PROMETHEUS_OPERATOR = [
    ResourceType("monitoring.coreos.com", "v1", "servicemonitors", "ServiceMonitor"),
    ResourceType("monitoring.coreos.com", "v1", "prometheusrules", "PrometheusRule"),
    ResourceType("monitoring.coreos.com", "v1", "podmonitors", "PodMonitor"),
]


class ApiError(Exception):
    """A Kubernetes ``Status`` failure: code, reason, message."""

    def __init__(self, code: int, reason: str, message: str, details: dict | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details or {}

    def status(self) -> dict[str, Any]:
        return {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "details": self.details,
            "code": self.code,
        }


@dataclass
class Event:
    """One change in the store: what a watch streams."""

    rv: int
    resource: ResourceType
    namespace: str | None
    type: str  # ADDED MODIFIED DELETED
    obj: dict[str, Any]


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# ------------------------------------------------------------------------------------------
# label selectors
# ------------------------------------------------------------------------------------------
_SET_EXPR = re.compile(r"^\s*([^\s!=]+)\s+(in|notin)\s+\(([^)]*)\)\s*$")


def _split_selector(text: str) -> list[str]:
    parts, depth, cur = [], 0, ""
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    if cur.strip():
        parts.append(cur)
    return parts


def selector_matches(selector: str | None, labels: dict[str, str] | None) -> bool:
    """Whether ``labels`` match a label selector string (=, ==, !=, in, notin, exists)."""
    if not selector:
        return True
    labels = labels or {}
    for term in _split_selector(selector):
        term = term.strip()
        m = _SET_EXPR.match(term)
        if m:
            key, op, values = m.group(1), m.group(2), {v.strip() for v in m.group(3).split(",")}
            if op == "in" and labels.get(key) not in values:
                return False
            if op == "notin" and labels.get(key) in values:
                return False
            continue
        if "!=" in term:
            key, value = (s.strip() for s in term.split("!=", 1))
            if labels.get(key) == value:
                return False
        elif "==" in term or "=" in term:
            key, value = (s.strip() for s in re.split("==?", term, maxsplit=1))
            if labels.get(key) != value:
                return False
        elif term.startswith("!"):
            if term[1:].strip() in labels:
                return False
        elif term not in labels:
            return False
    return True


def field_selector_matches(selector: str | None, obj: dict[str, Any]) -> bool:
    """Field selectors on dotted paths with = / != (metadata.name, involvedObject.name, ...)."""
    if not selector:
        return True
    for term in selector.split(","):
        neg = "!=" in term
        path, value = (s.strip() for s in re.split("!=|==?", term, maxsplit=1))
        cur: Any = obj
        for part in path.split("."):
            cur = cur.get(part) if isinstance(cur, dict) else None
        actual = "" if cur is None else str(cur)
        if (actual == value) == neg:
            return False
    return True


# ------------------------------------------------------------------------------------------
# patches
# ------------------------------------------------------------------------------------------
def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def strategic_merge_patch(target: Any, patch: Any) -> Any:
    """Merge patch, plus lists of objects with ``name`` merged by name (containers, ports, env)."""
    if isinstance(patch, list) and isinstance(target, list):
        if all(isinstance(i, dict) and "name" in i for i in patch + target) and patch:
            by_name = {i["name"]: i for i in target}
            out = []
            for item in patch:
                out.append(strategic_merge_patch(by_name.get(item["name"], {}), item))
            return out
        return copy.deepcopy(patch)
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if key.startswith("$"):
            continue
        if value is None:
            result.pop(key, None)
        else:
            result[key] = strategic_merge_patch(result.get(key), value)
    return result


def json_patch(target: Any, ops: list[dict[str, Any]]) -> Any:
    """RFC 6902 JSON patch: add, replace, remove, test."""
    doc = copy.deepcopy(target)
    for op in ops:
        parts = [p.replace("~1", "/").replace("~0", "~") for p in op["path"].split("/")[1:]]
        parent = doc
        for part in parts[:-1]:
            parent = parent[int(part)] if isinstance(parent, list) else parent[part]
        last = parts[-1] if parts else ""
        kind = op["op"]
        if kind in ("add", "replace"):
            if isinstance(parent, list):
                if last == "-":
                    parent.append(op["value"])
                elif kind == "add":
                    parent.insert(int(last), op["value"])
                else:
                    parent[int(last)] = op["value"]
            else:
                if kind == "replace" and last not in parent:
                    raise ApiError(422, "Invalid", f"replace: path {op['path']} does not exist")
                parent[last] = op["value"]
        elif kind == "remove":
            if isinstance(parent, list):
                parent.pop(int(last))
            elif last in parent:
                del parent[last]
            else:
                raise ApiError(422, "Invalid", f"remove: path {op['path']} does not exist")
        elif kind == "test":
            current = parent[int(last)] if isinstance(parent, list) else parent.get(last)
            if current != op.get("value"):
                raise ApiError(422, "Invalid", f"test failed at {op['path']}")
        else:
            raise ApiError(422, "Invalid", f"unsupported json-patch op {kind!r}")
    return doc


def _leaf_paths(value: Any, prefix: tuple[str, ...] = ()) -> set[tuple[str, ...]]:
    """Paths of the leaves of a document; lists are atomic leaves (a simplification of SSA)."""
    if isinstance(value, dict) and value:
        out: set[tuple[str, ...]] = set()
        for key, sub in value.items():
            out |= _leaf_paths(sub, (*prefix, key))
        return out
    return {prefix}


def _remove_path(doc: dict[str, Any], path: tuple[str, ...]) -> None:
    cur: Any = doc
    for part in path[:-1]:
        if not isinstance(cur, dict) or part not in cur:
            return
        cur = cur[part]
    if isinstance(cur, dict):
        cur.pop(path[-1], None)


def _deep_set(target: dict[str, Any], source: dict[str, Any]) -> dict[str, Any]:
    result = copy.deepcopy(target)
    for key, value in source.items():
        if isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = _deep_set(result[key], value)
        else:
            result[key] = copy.deepcopy(value)
    return result


# ------------------------------------------------------------------------------------------
# the store
# ------------------------------------------------------------------------------------------
@dataclass
class Store:
    """Objects by (resource, namespace, name), one resourceVersion counter, and an event log."""

    resources: list[ResourceType] = field(default_factory=lambda: list(CORE))
    history_limit: int = 5000
    lock: threading.RLock = field(default_factory=threading.RLock)
    objects: dict[tuple[str, str, str, str], dict[str, Any]] = field(default_factory=dict)
    events: list[Event] = field(default_factory=list)
    rv: int = 100
    compacted_rv: int = 0  # watches from an older resourceVersion get 410 Gone
    # per object: manager -> the last configuration it applied (server-side apply ownership)
    applied: dict[tuple[str, str, str, str], dict[str, dict[str, Any]]] = field(
        default_factory=dict
    )

    def __post_init__(self) -> None:
        self.changed = threading.Condition(self.lock)
        self._uid = itertools.count(1)

    # -- resources -----------------------------------------------------------------------
    def resource(self, group: str, version: str, plural: str) -> ResourceType:
        for res in self.resources:
            if (res.group, res.version, res.plural) == (group, version, plural):
                return res
        gv = f"{group}/{version}" if group else version
        raise ApiError(
            404, "NotFound", f"the server could not find the requested resource ({gv} {plural})"
        )

    def resource_for_kind(self, api_version: str, kind: str) -> ResourceType:
        for res in self.resources:
            if res.api_version == api_version and res.kind == kind:
                return res
        raise ApiError(404, "NotFound", f"no matches for kind {kind!r} in version {api_version!r}")

    def serve(self, extra: Iterable[ResourceType]) -> None:
        with self.lock:
            for res in extra:
                if res not in self.resources:
                    self.resources.append(res)

    # -- keys ----------------------------------------------------------------------------
    @staticmethod
    def key(res: ResourceType, namespace: str | None, name: str) -> tuple[str, str, str, str]:
        return (res.group, res.plural, namespace or "", name)

    def _next_rv(self) -> int:
        self.rv += 1
        return self.rv

    def _record(self, res: ResourceType, namespace: str | None, kind: str, obj: dict) -> None:
        self.events.append(Event(self.rv, res, namespace, kind, copy.deepcopy(obj)))
        if len(self.events) > self.history_limit:
            drop = len(self.events) - self.history_limit
            self.compacted_rv = self.events[drop - 1].rv
            del self.events[:drop]
        self.changed.notify_all()

    def compact(self) -> None:
        """Forget the event history: a watch from any older resourceVersion now gets 410 Gone."""
        with self.lock:
            self.compacted_rv = self.rv
            self.events.clear()

    # -- reads ---------------------------------------------------------------------------
    def get(self, res: ResourceType, namespace: str | None, name: str) -> dict[str, Any]:
        with self.lock:
            obj = self.objects.get(self.key(res, namespace, name))
            if obj is None:
                raise ApiError(
                    404,
                    "NotFound",
                    f'{res.plural}{"." + res.group if res.group else ""} "{name}" not found',
                    {"name": name, "group": res.group, "kind": res.plural},
                )
            return copy.deepcopy(obj)

    def find(self, res: ResourceType, namespace: str | None, name: str) -> dict[str, Any] | None:
        try:
            return self.get(res, namespace, name)
        except ApiError:
            return None

    def list(
        self,
        res: ResourceType,
        namespace: str | None,
        label_selector: str | None = None,
        field_selector: str | None = None,
    ) -> tuple[list[dict[str, Any]], int]:
        with self.lock:
            items = []
            for (group, plural, ns, _name), obj in sorted(self.objects.items()):
                if (group, plural) != (res.group, res.plural):
                    continue
                if namespace and ns != namespace:
                    continue
                if not selector_matches(label_selector, obj["metadata"].get("labels")):
                    continue
                if not field_selector_matches(field_selector, obj):
                    continue
                items.append(copy.deepcopy(obj))
            return items, self.rv

    # -- writes --------------------------------------------------------------------------
    def _check_namespace(self, res: ResourceType, namespace: str | None) -> None:
        if not res.namespaced:
            return
        ns_res = self.resources[0]
        if self.key(ns_res, None, namespace or "") not in self.objects:
            raise ApiError(
                404,
                "NotFound",
                f'namespaces "{namespace}" not found',
                {"name": namespace, "kind": "namespaces"},
            )

    def create(
        self,
        res: ResourceType,
        namespace: str | None,
        body: dict[str, Any],
        dry_run: bool = False,
        manager: str | None = None,
    ) -> dict[str, Any]:
        with self.lock:
            meta = body.setdefault("metadata", {})
            name = meta.get("name")
            if not name and meta.get("generateName"):
                name = meta["generateName"] + uuid.uuid4().hex[:5]
                meta["name"] = name
            if not name:
                raise ApiError(422, "Invalid", f"{res.kind}: metadata.name: Required value")
            self._check_namespace(res, namespace)
            key = self.key(res, namespace, name)
            if key in self.objects:
                raise ApiError(
                    409,
                    "AlreadyExists",
                    f'{res.plural}{"." + res.group if res.group else ""} "{name}" already exists',
                    {"name": name, "group": res.group, "kind": res.plural},
                )
            obj = copy.deepcopy(body)
            obj["apiVersion"] = res.api_version
            obj["kind"] = res.kind
            meta = obj["metadata"]
            if res.namespaced:
                meta["namespace"] = namespace
            else:
                meta.pop("namespace", None)
            meta["uid"] = str(uuid.UUID(int=next(self._uid)))
            meta["creationTimestamp"] = _now()
            meta["generation"] = 1
            meta.pop("resourceVersion", None)
            if res.kind == "Namespace":
                obj.setdefault("status", {"phase": "Active"})
            _apply_defaults(obj)
            if manager:
                meta["managedFields"] = [{"manager": manager, "operation": "Update"}]
            if dry_run:
                meta["resourceVersion"] = str(self.rv)
                return obj
            meta["resourceVersion"] = str(self._next_rv())
            self.objects[key] = obj
            self._record(res, namespace, "ADDED", obj)
            return copy.deepcopy(obj)

    def _store_update(
        self,
        res: ResourceType,
        namespace: str | None,
        old: dict[str, Any],
        new: dict[str, Any],
        dry_run: bool,
        status_only: bool = False,
    ) -> dict[str, Any]:
        new["apiVersion"] = res.api_version
        new["kind"] = res.kind
        _apply_defaults(new)
        meta = new.setdefault("metadata", {})
        old_meta = old["metadata"]
        for fixed in ("name", "uid", "creationTimestamp", "namespace"):
            if fixed in old_meta:
                meta[fixed] = old_meta[fixed]
        meta["generation"] = old_meta.get("generation", 1)
        if status_only:
            body = copy.deepcopy(old)
            body["status"] = new.get("status", {})
            new = body
            meta = new["metadata"]
        else:
            new["status"] = (
                copy.deepcopy(old.get("status")) if "status" in old else new.get("status")
            )
            if new.get("status") is None:
                new.pop("status", None)
            strip = ("metadata", "status", "apiVersion", "kind")
            before = {k: v for k, v in old.items() if k not in strip}
            after = {k: v for k, v in new.items() if k not in strip}
            if before != after:
                meta["generation"] = old_meta.get("generation", 1) + 1
        if new == old or (
            {k: v for k, v in new.items() if k != "metadata"}
            == {k: v for k, v in old.items() if k != "metadata"}
            and {k: v for k, v in meta.items() if k not in ("resourceVersion", "managedFields")}
            == {k: v for k, v in old_meta.items() if k not in ("resourceVersion", "managedFields")}
        ):
            # a no-op write keeps the resourceVersion and sends no watch event (like the real one)
            return copy.deepcopy(old)
        if dry_run:
            meta["resourceVersion"] = old_meta["resourceVersion"]
            return new
        meta["resourceVersion"] = str(self._next_rv())
        self.objects[self.key(res, namespace, meta["name"])] = new
        self._record(res, namespace, "MODIFIED", new)
        return copy.deepcopy(new)

    def replace(
        self,
        res: ResourceType,
        namespace: str | None,
        name: str,
        body: dict[str, Any],
        dry_run: bool = False,
        status_only: bool = False,
    ) -> dict[str, Any]:
        with self.lock:
            old = self.get(res, namespace, name)
            given = (body.get("metadata") or {}).get("resourceVersion")
            if given and given != old["metadata"]["resourceVersion"]:
                raise self.conflict(res, name)
            return self._store_update(
                res, namespace, old, copy.deepcopy(body), dry_run, status_only=status_only
            )

    @staticmethod
    def conflict(res: ResourceType, name: str) -> ApiError:
        return ApiError(
            409,
            "Conflict",
            f"Operation cannot be fulfilled on {res.plural}{'.' + res.group if res.group else ''} "
            f'"{name}": the object has been modified; please apply your changes to the latest '
            "version and try again",
            {"name": name, "group": res.group, "kind": res.plural},
        )

    def patch(
        self,
        res: ResourceType,
        namespace: str | None,
        name: str,
        content_type: str,
        patch: Any,
        dry_run: bool = False,
        manager: str | None = None,
        force: bool = False,
        status_only: bool = False,
    ) -> dict[str, Any]:
        with self.lock:
            if content_type.startswith("application/apply-patch"):
                return self._apply(res, namespace, name, patch, dry_run, manager, force)
            old = self.get(res, namespace, name)
            if content_type.startswith("application/merge-patch"):
                new = merge_patch(old, patch)
            elif content_type.startswith("application/strategic-merge-patch"):
                new = strategic_merge_patch(old, patch)
            elif content_type.startswith("application/json-patch"):
                new = json_patch(old, patch)
            else:
                raise ApiError(
                    415, "UnsupportedMediaType", f"unsupported patch type {content_type}"
                )
            given = (new.get("metadata") or {}).get("resourceVersion")
            if given and given != old["metadata"]["resourceVersion"]:
                raise self.conflict(res, name)
            return self._store_update(res, namespace, old, new, dry_run, status_only=status_only)

    def _apply(
        self,
        res: ResourceType,
        namespace: str | None,
        name: str,
        config: dict[str, Any],
        dry_run: bool,
        manager: str | None,
        force: bool,
    ) -> dict[str, Any]:
        if not manager:
            raise ApiError(422, "Invalid", "PatchOptions.meta.k8s.io: fieldManager: Required value")
        if not isinstance(config, dict):
            raise ApiError(400, "BadRequest", "apply patch must be an object")
        if config.get("kind") != res.kind:
            raise ApiError(
                400, "BadRequest", f"apply kind {config.get('kind')!r} does not match {res.kind}"
            )
        key = self.key(res, namespace, name)
        owned = self.applied.setdefault(key, {})
        old = self.objects.get(key)
        if old is None:
            body = copy.deepcopy(config)
            body.setdefault("metadata", {})["name"] = name
            created = self.create(res, namespace, body, dry_run=dry_run, manager=manager)
            if not dry_run:
                owned.clear()
                owned[manager] = copy.deepcopy(config)
                self.objects[key]["metadata"]["managedFields"] = [
                    {"manager": manager, "operation": "Apply"}
                ]
                created = copy.deepcopy(self.objects[key])
            return created
        given = (config.get("metadata") or {}).get("resourceVersion")
        if given and given != old["metadata"]["resourceVersion"]:
            raise self.conflict(res, name)
        # conflicts: a field another applier owns, set to a different value, without force
        if not force:
            for other, other_config in owned.items():
                if other == manager:
                    continue
                for path in _leaf_paths(config) & _leaf_paths(other_config):
                    if path[:1] == ("metadata",):
                        continue
                    if _get_path(config, path) != _get_path(old, path):
                        raise ApiError(
                            409,
                            "Conflict",
                            f'Apply failed with 1 conflict: conflict with "{other}": '
                            f".{'.'.join(path)}",
                        )
        previous = owned.get(manager, {})
        new = copy.deepcopy(old)
        gone = _leaf_paths(previous) - _leaf_paths(config)
        others = set().union(*(_leaf_paths(c) for m, c in owned.items() if m != manager))
        for path in gone - others:
            if path and path[0] not in ("apiVersion", "kind"):
                _remove_path(new, path)
                # a map left empty by the removal goes too (unless the config sets it)
                for depth in range(len(path) - 1, 0, -1):
                    parent = path[:depth]
                    if _get_path(new, parent) == {} and _get_path(config, parent) is None:
                        _remove_path(new, parent)
        new = _deep_set(new, config)
        new["metadata"]["resourceVersion"] = old["metadata"]["resourceVersion"]
        managers = [m.get("manager") for m in old["metadata"].get("managedFields", [])]
        if manager not in managers:
            new["metadata"]["managedFields"] = [
                *old["metadata"].get("managedFields", []),
                {"manager": manager, "operation": "Apply"},
            ]
        result = self._store_update(res, namespace, old, new, dry_run)
        if not dry_run:
            owned[manager] = copy.deepcopy(config)
        return result

    def delete(
        self,
        res: ResourceType,
        namespace: str | None,
        name: str,
        dry_run: bool = False,
        preconditions: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Delete; ``preconditions`` (DeleteOptions: ``uid``, ``resourceVersion``) that do not
        match the stored object are a 409, as on a real API server."""
        with self.lock:
            obj = self.get(res, namespace, name)
            for key, word in (("uid", "UID"), ("resourceVersion", "ResourceVersion")):
                wanted = (preconditions or {}).get(key)
                if wanted and wanted != obj["metadata"].get(key):
                    raise ApiError(
                        409,
                        "Conflict",
                        f"Operation cannot be fulfilled on {res.plural}"
                        f'{"." + res.group if res.group else ""} "{name}": Precondition '
                        f"failed: {word} in precondition: {wanted}, "
                        f"{word} in object meta: {obj['metadata'].get(key)}",
                        {"name": name, "group": res.group, "kind": res.plural},
                    )
            if dry_run:
                return obj
            key = self.key(res, namespace, name)
            del self.objects[key]
            self.applied.pop(key, None)
            self._next_rv()
            obj["metadata"]["resourceVersion"] = str(self.rv)
            self._record(res, namespace, "DELETED", obj)
            if res.kind == "Namespace":
                for other in [k for k in self.objects if k[2] == name]:
                    del self.objects[other]
            return obj

    # -- watch ---------------------------------------------------------------------------
    def events_since(
        self, rv: int, res: ResourceType, namespace: str | None
    ) -> tuple[list[Event], int]:
        """Events of ``res`` after ``rv`` and the newest rv seen; 410 when ``rv`` was compacted."""
        with self.lock:
            if rv < self.compacted_rv:
                raise ApiError(
                    410, "Expired", f"too old resource version: {rv} ({self.compacted_rv})"
                )
            out = [
                e
                for e in self.events
                if e.rv > rv and e.resource == res and (not namespace or e.namespace == namespace)
            ]
            return out, self.rv


def _get_path(doc: Any, path: tuple[str, ...]) -> Any:
    cur = doc
    for part in path:
        if not isinstance(cur, dict):
            return None
        cur = cur.get(part)
    return cur


def _apply_defaults(obj: dict[str, Any]) -> None:
    """The API server's defaulting that matters here: workloads get ``spec.replicas: 1``."""
    if obj.get("kind") in ("Deployment", "StatefulSet", "ReplicaSet"):
        spec = obj.setdefault("spec", {})
        if spec.get("replicas") is None:
            spec["replicas"] = 1
