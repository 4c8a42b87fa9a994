"""Where each kind lives on the API server, and which kinds the cluster serves.

The kinds tradewise touches are known (``KNOWN_KINDS``): reading them needs no discovery request.
Others, and the question "is this served" (the Prometheus operator's kinds), cost one request per
groupVersion, cached for the gateway's life.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from tradewise_ops.errors import BadInputError, NotFoundError


@dataclass(frozen=True)
class KindInfo:
    """A kind the cluster serves: where its REST endpoint is."""

    api_version: str
    kind: str
    plural: str
    namespaced: bool = True

    @property
    def group(self) -> str:
        return self.api_version.split("/")[0] if "/" in self.api_version else ""

    @property
    def base(self) -> str:
        """``/api/v1`` or ``/apis/GROUP/VERSION``."""
        return (
            f"/apis/{self.api_version}" if "/" in self.api_version else f"/api/{self.api_version}"
        )

    @property
    def resource(self) -> str:
        """``deployments.apps``-style name for messages."""
        return f"{self.plural}.{self.group}" if self.group else self.plural


# kinds tradewise touches, so that reading them needs no discovery request
KNOWN_KINDS: dict[str, KindInfo] = {
    k.kind: k
    for k in (
        KindInfo("v1", "Namespace", "namespaces", namespaced=False),
        KindInfo("v1", "Node", "nodes", namespaced=False),
        KindInfo("v1", "Pod", "pods"),
        KindInfo("v1", "Service", "services"),
        KindInfo("v1", "ConfigMap", "configmaps"),
        KindInfo("v1", "Secret", "secrets"),
        KindInfo("v1", "Event", "events"),
        KindInfo("v1", "ServiceAccount", "serviceaccounts"),
        KindInfo("v1", "PersistentVolumeClaim", "persistentvolumeclaims"),
        KindInfo("v1", "Endpoints", "endpoints"),
        KindInfo("apps/v1", "Deployment", "deployments"),
        KindInfo("apps/v1", "StatefulSet", "statefulsets"),
        KindInfo("apps/v1", "ReplicaSet", "replicasets"),
        KindInfo("autoscaling/v2", "HorizontalPodAutoscaler", "horizontalpodautoscalers"),
        KindInfo("networking.k8s.io/v1", "Ingress", "ingresses"),
        KindInfo("networking.k8s.io/v1", "NetworkPolicy", "networkpolicies"),
        KindInfo("policy/v1", "PodDisruptionBudget", "poddisruptionbudgets"),
        KindInfo("batch/v1", "CronJob", "cronjobs"),
        KindInfo("batch/v1", "Job", "jobs"),
        KindInfo("rbac.authorization.k8s.io/v1", "Role", "roles"),
        KindInfo("rbac.authorization.k8s.io/v1", "RoleBinding", "rolebindings"),
        KindInfo("scheduling.k8s.io/v1", "PriorityClass", "priorityclasses", namespaced=False),
        KindInfo("coordination.k8s.io/v1", "Lease", "leases"),
        KindInfo("monitoring.coreos.com/v1", "ServiceMonitor", "servicemonitors"),
        KindInfo("monitoring.coreos.com/v1", "PrometheusRule", "prometheusrules"),
        KindInfo("monitoring.coreos.com/v1", "PodMonitor", "podmonitors"),
        KindInfo("autoscaling.k8s.io/v1", "VerticalPodAutoscaler", "verticalpodautoscalers"),
    )
}

Send = Callable[..., Any]  # ``Transport.send``


class Discovery:
    """The kinds one cluster serves, asked through ``send`` (the gateway's request path)."""

    def __init__(self, send: Send, namespace: str) -> None:
        self._send = send
        self.namespace = namespace
        self._served: dict[str, dict[str, KindInfo] | None] = {}  # groupVersion -> kinds|None
        self._lock = threading.Lock()

    def group_version(self, api_version: str) -> dict[str, KindInfo] | None:
        """The kinds served in ``api_version`` (None: not served); one request, then cached."""
        with self._lock:
            if api_version in self._served:
                return self._served[api_version]
        path = f"/apis/{api_version}" if "/" in api_version else f"/api/{api_version}"
        try:
            doc = self._send("GET", path, what=("discover", api_version, None))
            kinds: dict[str, KindInfo] | None = {
                r["kind"]: KindInfo(api_version, r["kind"], r["name"], bool(r.get("namespaced")))
                for r in doc.get("resources", [])
                if "/" not in r["name"]
            }
        except NotFoundError:
            kinds = None
        with self._lock:
            self._served[api_version] = kinds
        return kinds

    def served(self, api_version: str, kind: str) -> bool:
        """Whether the cluster serves ``kind`` in ``api_version`` (one request per groupVersion)."""
        kinds = self.group_version(api_version)
        return kinds is not None and kind in kinds

    def discover(self) -> set[tuple[str, str]]:
        """Every ``(apiVersion, kind)`` the cluster serves (``/api/v1``, ``/apis``, each group)."""
        out: set[tuple[str, str]] = set()
        versions = ["v1"]
        doc = self._send("GET", "/apis", what=("discover", "API groups", None))
        for group in doc.get("groups", []):
            versions.extend(v["groupVersion"] for v in group.get("versions", []))
        for gv in versions:
            for kind in self.group_version(gv) or {}:
                out.add((gv, kind))
        return out

    def kind_info(self, kind: str, api_version: str | None = None) -> KindInfo:
        """Where ``kind`` lives; known kinds need no request, others are discovered."""
        known = KNOWN_KINDS.get(kind)
        if known is not None and (api_version is None or api_version == known.api_version):
            return known
        if api_version is None:
            raise BadInputError(f"kind {kind!r} needs an apiVersion")
        kinds = self.group_version(api_version)
        if not kinds or kind not in kinds:
            raise NotFoundError(f"the cluster does not serve {kind} in {api_version}")
        return kinds[kind]

    def path(self, info: KindInfo, name: str | None = None, namespace: str | None = None) -> str:
        """The REST path of ``info``'s collection, or of the object ``name``, in ``namespace``
        (default: the gateway's)."""
        path = info.base
        if info.namespaced:
            path += f"/namespaces/{quote(namespace or self.namespace, safe='')}"
        path += f"/{info.plural}"
        if name:
            path += f"/{quote(name, safe='')}"
        return path
