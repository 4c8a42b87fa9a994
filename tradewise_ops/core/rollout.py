"""Rollout status, evaluated from objects as data: is every workload really done, or failing?

Done means what ``kubectl rollout status`` means, for every workload at once: the controller has
observed the new generation, and updated == ready == available == desired replicas, with no old
pods left. Desired is the live ``spec.replicas`` (for an HPA-managed Deployment, what the HPA set).
A failure is named with its pod and reason: a container waiting in ImagePullBackOff, ErrImagePull,
CrashLoopBackOff (or another unrecoverable waiting reason), a pod that cannot be scheduled
(FailedScheduling), or a Deployment past its progress deadline.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

WORKLOAD_KINDS = ("Deployment", "StatefulSet")
FAILING_WAITING_REASONS = frozenset(
    {
        "ImagePullBackOff",
        "ErrImagePull",
        "CrashLoopBackOff",
        "CreateContainerConfigError",
        "CreateContainerError",
        "InvalidImageName",
        "ErrImageNeverPull",
    }
)
FAILING_EVENT_REASONS = frozenset({"FailedScheduling", "FailedCreate"})


@dataclass(frozen=True)
class WorkloadStatus:
    """Where one Deployment or StatefulSet is in its rollout."""

    kind: str
    name: str
    desired: int
    updated: int
    ready: int
    available: int
    total: int
    generation: int
    observed: int
    done: bool
    failure: str | None = None  # the reason, when failing
    pod: str | None = None  # the pod that fails
    message: str = ""

    @property
    def state(self) -> str:
        """``ready``, ``failed: REASON`` or ``waiting: ...`` (one short phrase)."""
        if self.failure:
            return f"failed: {self.failure}"
        if self.done:
            return "ready"
        if self.observed < self.generation:
            return "waiting: new spec not observed yet"
        if self.updated < self.desired:
            return f"waiting: {self.updated}/{self.desired} updated"
        if self.total > self.updated:
            return f"waiting: {self.total - self.updated} old pods terminating"
        if self.ready < self.desired:
            return f"waiting: {self.ready}/{self.desired} ready"
        return f"waiting: {self.available}/{self.desired} available"

    def line(self) -> str:
        """One progress line: ``Deployment/x  2/3 ready  waiting: ...``."""
        text = f"{self.kind}/{self.name}: {self.ready}/{self.desired} ready, {self.state}"
        if self.failure:
            text += f" (pod {self.pod}: {self.message})" if self.pod else f" ({self.message})"
        return text

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, with ``state``."""
        return {**asdict(self), "state": self.state}


@dataclass(frozen=True)
class RolloutState:
    """Every workload's status; ``done`` when all are, ``failed`` when any fails."""

    workloads: tuple[WorkloadStatus, ...]

    @property
    def done(self) -> bool:
        return all(w.done for w in self.workloads)

    @property
    def failures(self) -> list[WorkloadStatus]:
        return [w for w in self.workloads if w.failure]

    @property
    def failed(self) -> bool:
        return bool(self.failures)


def _int(value: Any) -> int:
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return 0


def _images(obj: Mapping[str, Any]) -> list[str]:
    containers = (obj.get("spec") or {}).get("containers") or []
    return [c.get("image", "") for c in containers]


def template_images(workload: Mapping[str, Any]) -> list[str]:
    """The images of a workload's pod template, in order."""
    template = (workload.get("spec") or {}).get("template") or {}
    return _images(template)


def pods_of(workload: Mapping[str, Any], pods: Iterable[Mapping[str, Any]]) -> list[Mapping]:
    """The pods of ``workload`` running its current template: selected by its ``matchLabels``
    and with the template's images (so the failing pods of an earlier release do not count)."""
    spec = workload.get("spec") or {}
    match = (spec.get("selector") or {}).get("matchLabels") or {}
    namespace = (workload.get("metadata") or {}).get("namespace")
    images = template_images(workload)
    out = []
    for pod in pods:
        meta = pod.get("metadata") or {}
        if namespace and meta.get("namespace") not in (None, namespace):
            continue
        labels = meta.get("labels") or {}
        if not match or any(labels.get(k) != v for k, v in match.items()):
            continue
        if images and _images(pod) != images:
            continue
        out.append(pod)
    return out


def _pod_failure(
    pod: Mapping[str, Any], events: Sequence[Mapping[str, Any]]
) -> tuple[str, str] | None:
    status = pod.get("status") or {}
    statuses = list(status.get("initContainerStatuses") or []) + list(
        status.get("containerStatuses") or []
    )
    for cs in statuses:
        waiting = (cs.get("state") or {}).get("waiting") or {}
        reason = waiting.get("reason")
        if reason in FAILING_WAITING_REASONS:
            return reason, waiting.get("message") or reason
    for cond in status.get("conditions") or []:
        if (
            cond.get("type") == "PodScheduled"
            and cond.get("status") == "False"
            and cond.get("reason") == "Unschedulable"
        ):
            return "FailedScheduling", cond.get("message") or "unschedulable"
    name = (pod.get("metadata") or {}).get("name")
    for event in events:
        involved = event.get("involvedObject") or {}
        if (
            event.get("type") == "Warning"
            and involved.get("kind") == "Pod"
            and involved.get("name") == name
            and event.get("reason") in FAILING_EVENT_REASONS
        ):
            return str(event.get("reason")), event.get("message") or ""
    return None


def workload_status(
    workload: Mapping[str, Any],
    pods: Iterable[Mapping[str, Any]] = (),
    events: Sequence[Mapping[str, Any]] = (),
) -> WorkloadStatus:
    """The rollout status of one Deployment or StatefulSet, given the pods and events seen."""
    meta = workload.get("metadata") or {}
    spec = workload.get("spec") or {}
    status = workload.get("status") or {}
    kind = workload.get("kind", "")
    desired = _int(spec.get("replicas", 1))
    generation = _int(meta.get("generation", 1))
    observed = _int(status.get("observedGeneration"))
    updated = _int(status.get("updatedReplicas"))
    ready = _int(status.get("readyReplicas"))
    available = _int(status.get("availableReplicas", ready if kind == "StatefulSet" else 0))
    total = _int(status.get("replicas"))
    done = (
        observed >= generation
        and updated == desired
        and ready == desired
        and available == desired
        and total <= desired
    )
    if kind == "StatefulSet" and done:
        update_rev = status.get("updateRevision")
        current_rev = status.get("currentRevision")
        if update_rev and current_rev and update_rev != current_rev and updated < desired:
            done = False
    failure = pod_name = None
    message = ""
    if meta.get("deletionTimestamp"):
        failure, message = "Deleted", f"{kind} {meta.get('name')} was deleted during the rollout"
    elif observed >= generation:
        for cond in status.get("conditions") or []:
            if cond.get("type") == "Progressing" and cond.get("reason") == (
                "ProgressDeadlineExceeded"
            ):
                failure, message = "ProgressDeadlineExceeded", cond.get("message") or ""
    if not done and failure is None:
        for pod in pods_of(workload, pods):
            found = _pod_failure(pod, events)
            if found:
                failure, message = found
                pod_name = (pod.get("metadata") or {}).get("name")
                break
    return WorkloadStatus(
        kind=kind,
        name=meta.get("name", ""),
        desired=desired,
        updated=updated,
        ready=ready,
        available=available,
        total=total,
        generation=generation,
        observed=observed,
        done=done and failure is None,
        failure=failure,
        pod=pod_name,
        message=message,
    )


def evaluate(
    workloads: Iterable[Mapping[str, Any]],
    pods: Iterable[Mapping[str, Any]] = (),
    events: Sequence[Mapping[str, Any]] = (),
) -> RolloutState:
    """The status of every workload."""
    pod_list = list(pods)
    return RolloutState(tuple(workload_status(w, pod_list, events) for w in workloads))


def summary_rows(state: RolloutState) -> list[list[Any]]:
    """Rows ``WORKLOAD READY UP-TO-DATE AVAILABLE STATUS`` for the summary table."""
    return [
        [
            f"{w.kind}/{w.name}",
            f"{w.ready}/{w.desired}",
            w.updated,
            w.available,
            w.state + (f" (pod {w.pod}: {w.message})" if w.failure and w.pod else ""),
        ]
        for w in state.workloads
    ]


def ready_pods(pods: Iterable[Mapping[str, Any]]) -> list[str]:
    """Names of the pods whose ``Ready`` condition is True and that are not being deleted: what a
    Service's endpoints would hold."""
    out = []
    for pod in pods:
        meta = pod.get("metadata") or {}
        if meta.get("deletionTimestamp"):
            continue
        conditions = (pod.get("status") or {}).get("conditions") or []
        if any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions):
            out.append(str(meta.get("name", "")))
    return out
