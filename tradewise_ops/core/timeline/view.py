"""The cluster as a sequence of records describes it, and its replicas over time."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from tradewise_ops.core.timeline.records import (
    DeploymentSample,
    HpaSample,
    LoadSample,
    PodSample,
    ProcessSample,
    Record,
)


class ClusterView:
    """The latest HPAs, Deployments, pods and processes after a sequence of records."""

    def __init__(self) -> None:
        self.hpas: dict[str, HpaSample] = {}
        self.deployments: dict[str, DeploymentSample] = {}
        self.pods: dict[str, PodSample] = {}
        self.processes: dict[str, ProcessSample] = {}
        self.load: LoadSample | None = None
        self._seen_pods_of: set[str] = set()

    def apply(self, record: Record) -> None:
        """Fold one record in."""
        if isinstance(record, HpaSample):
            _put(self.hpas, record.name, record, record.deleted)
        elif isinstance(record, DeploymentSample):
            _put(self.deployments, record.name, record, record.deleted)
        elif isinstance(record, PodSample):
            owner = self.owner(record)
            if owner:
                self._seen_pods_of.add(owner)
            _put(self.pods, record.name, record, record.deleted)
        elif isinstance(record, ProcessSample):
            self.processes[record.component] = record
        elif isinstance(record, LoadSample):
            self.load = record

    def copy(self) -> ClusterView:
        """A copy that later records do not change (records themselves are immutable)."""
        other = ClusterView()
        other.hpas = dict(self.hpas)
        other.deployments = dict(self.deployments)
        other.pods = dict(self.pods)
        other.processes = dict(self.processes)
        other.load = self.load
        other._seen_pods_of = set(self._seen_pods_of)
        return other

    def owner(self, pod: PodSample) -> str | None:
        """The Deployment a pod belongs to: its ReplicaSet's owner, else a matching selector."""
        if pod.deployment:
            return pod.deployment
        for dep in self.deployments.values():
            if dep.selector and all(pod.labels.get(k) == v for k, v in dep.selector.items()):
                return dep.name
        return None

    def pods_of(self, deployment: str) -> list[PodSample]:
        """The live pods of a Deployment."""
        return [p for p in self.pods.values() if self.owner(p) == deployment]

    def ready(self, deployment: str) -> int:
        """Serving pods of a Deployment (its status' readyReplicas until any pod of it is seen)."""
        if deployment in self._seen_pods_of:
            return sum(1 for p in self.pods_of(deployment) if p.serving)
        dep = self.deployments.get(deployment)
        return dep.ready if dep else 0

    def desired(self, deployment: str) -> int | None:
        """What a Deployment wants: its HPA's desired replicas, else its ``spec.replicas``.

        The HPA decides first; the Deployment's spec follows a moment later.
        """
        for hpa in self.hpas.values():
            if hpa.target == deployment and hpa.desired:
                return hpa.desired
        dep = self.deployments.get(deployment)
        return dep.desired if dep is not None else None

    def lowest_desired(self, deployment: str) -> int | None:
        """The lower of the HPA's decision and the Deployment's spec (scale-downs show in both)."""
        values = [h.desired for h in self.hpas.values() if h.target == deployment and h.desired]
        dep = self.deployments.get(deployment)
        if dep is not None and dep.desired is not None:
            values.append(dep.desired)
        return min(values) if values else None

    def deployment_names(self) -> list[str]:
        """Every Deployment known from its own records, its HPA or its pods, sorted."""
        names = set(self.deployments) | {h.target for h in self.hpas.values() if h.target}
        names |= self._seen_pods_of
        return sorted(names)


def _put(table: dict[str, Any], key: str, record: Any, deleted: bool) -> None:
    if deleted:
        table.pop(key, None)
    else:
        table[key] = record


@dataclass(frozen=True)
class ReplicaPoint:
    """Desired and ready replicas of one Deployment at one moment."""

    t: float
    desired: int | None
    ready: int


def replica_series(records: Sequence[Record]) -> dict[str, list[ReplicaPoint]]:
    """Per Deployment, a point each time its desired or ready replicas changed."""
    view = ClusterView()
    out: dict[str, list[ReplicaPoint]] = {}
    for record in sorted(records, key=lambda r: r.t):
        if not isinstance(record, (HpaSample, DeploymentSample, PodSample)):
            continue
        view.apply(record)
        for name in view.deployment_names():
            point = ReplicaPoint(record.t, view.desired(name), view.ready(name))
            series = out.setdefault(name, [])
            if series and (series[-1].desired, series[-1].ready) == (point.desired, point.ready):
                continue
            if series and series[-1].t == point.t:
                series[-1] = point
            else:
                series.append(point)
    return out
