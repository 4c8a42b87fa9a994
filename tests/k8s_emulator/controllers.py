"""The controllers, played by the tests: rollout status, pods, events, HPA decisions.

Each method writes through the store (so watches see the changes, with new resourceVersions).
``auto()`` starts a thread that makes every Deployment/StatefulSet ready shortly after each change
(or fails its pods when its image matches ``fail_image``), and lets HPAs clamp their targets.
"""

from __future__ import annotations

import copy
import datetime
import hashlib
import json
import threading
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tests.k8s_emulator.emulator import Emulator

WORKLOAD_KINDS = ("Deployment", "StatefulSet")


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def template_hash(obj: dict[str, Any]) -> str:
    """A short hash of the pod template, like the pod-template-hash label."""
    template = (obj.get("spec") or {}).get("template") or {}
    return hashlib.sha1(json.dumps(template, sort_keys=True).encode()).hexdigest()[:8]


class Controllers:
    """What the Deployment, StatefulSet, kubelet, scheduler and HPA controllers would do."""

    def __init__(self, emu: Emulator) -> None:
        self.emu = emu
        self.fail_images: dict[str, str] = {}  # image substring -> waiting reason
        self.delay = 0.05
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._seen: dict[tuple[str, str, str], tuple[Any, ...]] = {}
        self.ready_at: dict[tuple[str, str], float] = {}  # (ns, name) -> when marked ready

    # -- helpers --------------------------------------------------------------------------
    def _workload(self, ns: str, name: str, kind: str | None = None) -> dict[str, Any]:
        for k in (kind,) if kind else WORKLOAD_KINDS:
            obj = self.emu.get(k, ns, name)
            if obj is not None:
                return obj
        raise KeyError(f"no Deployment/StatefulSet {ns}/{name}")

    def _write_status(self, obj: dict[str, Any], status: dict[str, Any]) -> dict[str, Any]:
        res = self.emu.resource(obj["kind"])
        meta = obj["metadata"]
        new = copy.deepcopy(obj)
        new["status"] = status
        return self.emu.store.replace(
            res, meta.get("namespace"), meta["name"], new, status_only=True
        )

    def _pods_of(self, obj: dict[str, Any]) -> list[dict[str, Any]]:
        ns = obj["metadata"]["namespace"]
        return [
            p
            for p in self.emu.list("Pod", ns)
            if (p["metadata"].get("labels") or {}).get("tradewise.emulator/owner")
            == obj["metadata"]["name"]
        ]

    def _make_pods(
        self,
        obj: dict[str, Any],
        count: int,
        *,
        ready: bool,
        waiting: str | None = None,
        message: str = "",
        unschedulable: bool = False,
        keep_old: bool = False,
    ) -> list[str]:
        """Replace the workload's pods by ``count`` pods of its current template."""
        store = self.emu.store
        pod_res = self.emu.resource("Pod")
        ns = obj["metadata"]["namespace"]
        name = obj["metadata"]["name"]
        h = template_hash(obj)
        for pod in self._pods_of(obj):
            same = (pod["metadata"].get("labels") or {}).get("pod-template-hash") == h
            if not keep_old or same:
                store.delete(pod_res, ns, pod["metadata"]["name"])
        template = (obj.get("spec") or {}).get("template") or {}
        labels = dict((template.get("metadata") or {}).get("labels") or {})
        labels["pod-template-hash"] = h
        labels["tradewise.emulator/owner"] = name
        containers = (template.get("spec") or {}).get("containers") or [{"name": "main"}]
        names = []
        for i in range(count):
            pod_name = f"{name}-{i}" if obj["kind"] == "StatefulSet" else f"{name}-{h}-{i}"
            statuses = []
            for c in containers:
                if waiting:
                    state: dict[str, Any] = {"waiting": {"reason": waiting, "message": message}}
                else:
                    state = {"running": {"startedAt": _now()}}
                cstatus: dict[str, Any] = {
                    "name": c.get("name", "main"),
                    "image": c.get("image", ""),
                    "imageID": "",
                    "ready": ready,
                    "restartCount": 3 if waiting == "CrashLoopBackOff" else 0,
                    "state": state,
                }
                if waiting == "CrashLoopBackOff":  # as the kubelet keeps it: how the last run ended
                    cstatus["lastState"] = {
                        "terminated": {"reason": "Error", "exitCode": 1, "finishedAt": _now()}
                    }
                statuses.append(cstatus)
            phase = (
                "Pending"
                if (waiting and waiting != "CrashLoopBackOff") or unschedulable
                else ("Running")
            )
            conditions = [{"type": "Ready", "status": "True" if ready else "False"}]
            if unschedulable:
                conditions = [
                    {
                        "type": "PodScheduled",
                        "status": "False",
                        "reason": "Unschedulable",
                        "message": message,
                    }
                ]
            meta: dict[str, Any] = {"name": pod_name, "namespace": ns, "labels": labels}
            annotations = (template.get("metadata") or {}).get("annotations")
            if annotations:  # as the ReplicaSet controller does: the template's annotations
                meta["annotations"] = dict(annotations)
            pod = {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": meta,
                "spec": {"containers": containers},
                "status": {
                    "phase": phase,
                    "conditions": conditions,
                    **({} if unschedulable else {"containerStatuses": statuses}),
                },
            }
            if store.find(pod_res, ns, pod_name) is not None:
                store.delete(pod_res, ns, pod_name)
            store.create(pod_res, ns, pod)
            names.append(pod_name)
        return names

    # -- what tests call ------------------------------------------------------------------
    def deployment_progress(
        self, ns: str, name: str, ready: bool = True, kind: str | None = None
    ) -> dict[str, Any]:
        """Roll ``name`` out: new pods for its template, status at its generation, all ready."""
        obj = self._workload(ns, name, kind)
        desired = (obj.get("spec") or {}).get("replicas", 1)
        self._make_pods(obj, desired, ready=ready)
        n = desired if ready else 0
        status: dict[str, Any] = {
            "observedGeneration": obj["metadata"].get("generation", 1),
            "replicas": desired,
            "updatedReplicas": desired,
            "readyReplicas": n,
            "availableReplicas": n,
        }
        if obj["kind"] == "Deployment":
            status["conditions"] = [
                {"type": "Available", "status": "True" if ready else "False"},
                {
                    "type": "Progressing",
                    "status": "True",
                    "reason": "NewReplicaSetAvailable" if ready else "ReplicaSetUpdated",
                },
            ]
        else:
            status["currentReplicas"] = desired
            status["updateRevision"] = status["currentRevision"] = template_hash(obj)
        written = self._write_status(obj, status)
        if ready:
            self.ready_at[(ns, name)] = time.monotonic()  # when the ready status was stored
        return written

    def fail_pods(
        self,
        ns: str,
        name: str,
        reason: str = "ImagePullBackOff",
        message: str | None = None,
        kind: str | None = None,
    ) -> list[str]:
        """The new pods of ``name`` fail: waiting ``reason`` (ImagePullBackOff, ErrImagePull,
        CrashLoopBackOff) or ``FailedScheduling`` (Pending, unschedulable); a Warning Event each."""
        obj = self._workload(ns, name, kind)
        old = obj.get("status") or {}
        image = ""
        containers = ((obj.get("spec") or {}).get("template") or {}).get("spec", {}).get(
            "containers"
        ) or [{}]
        image = containers[0].get("image", "")
        unschedulable = reason == "FailedScheduling"
        if message is None:
            message = {
                "ImagePullBackOff": f'Back-off pulling image "{image}"',
                "ErrImagePull": f'Failed to pull image "{image}": not found',
                "CrashLoopBackOff": "back-off 40s restarting failed container",
                "FailedScheduling": "0/3 nodes are available: 3 Insufficient cpu.",
            }.get(reason, reason)
        pods = self._make_pods(
            obj,
            1,
            ready=False,
            waiting=None if unschedulable else reason,
            message=message,
            unschedulable=unschedulable,
            keep_old=True,
        )
        status = {
            "observedGeneration": obj["metadata"].get("generation", 1),
            "replicas": old.get("replicas", 0) + 1,
            "updatedReplicas": 1,
            "readyReplicas": old.get("readyReplicas", 0),
            "availableReplicas": old.get("availableReplicas", 0),
        }
        if obj["kind"] == "Deployment":
            status["conditions"] = [
                {"type": "Progressing", "status": "True", "reason": "ReplicaSetUpdated"}
            ]
        self._write_status(obj, status)
        event_reason = {"ImagePullBackOff": "BackOff", "CrashLoopBackOff": "BackOff"}.get(
            reason, "Failed" if reason == "ErrImagePull" else reason
        )
        for pod in pods:
            self.event(ns, "Pod", pod, event_reason, message)
        return pods

    def progress_deadline_exceeded(self, ns: str, name: str) -> dict[str, Any]:
        """The Deployment controller gives up: Progressing=False, ProgressDeadlineExceeded."""
        obj = self._workload(ns, name, "Deployment")
        status = copy.deepcopy(obj.get("status") or {})
        status["observedGeneration"] = obj["metadata"].get("generation", 1)
        status["conditions"] = [
            {
                "type": "Progressing",
                "status": "False",
                "reason": "ProgressDeadlineExceeded",
                "message": f'ReplicaSet "{name}" has timed out progressing.',
            }
        ]
        return self._write_status(obj, status)

    def event(
        self,
        ns: str,
        kind: str,
        name: str,
        reason: str,
        message: str,
        type: str = "Warning",  # noqa: A002 - the Event field
    ) -> dict[str, Any]:
        """Record an Event about ``kind/name``."""
        res = self.emu.resource("Event")
        body = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"generateName": f"{name}.", "namespace": ns},
            "involvedObject": {"kind": kind, "name": name, "namespace": ns, "apiVersion": "v1"},
            "reason": reason,
            "message": message,
            "type": type,
            "count": 1,
            "firstTimestamp": _now(),
            "lastTimestamp": _now(),
            "source": {"component": "tradewise-emulator"},
        }
        return self.emu.store.create(res, ns, body)

    def set_hpa(self, ns: str, name: str, desired: int) -> None:
        """The HPA ``name`` decides ``desired`` replicas: its status and its target's scale."""
        hpa = self.emu.get("HorizontalPodAutoscaler", ns, name)
        if hpa is None:
            raise KeyError(name)
        target = hpa["spec"]["scaleTargetRef"]
        obj = self._workload(ns, target["name"], target.get("kind"))
        current = (obj.get("status") or {}).get("readyReplicas", 0)
        self._write_status(
            hpa,
            {"currentReplicas": current, "desiredReplicas": desired, "lastScaleTime": _now()},
        )
        if obj["spec"].get("replicas") != desired:
            new = copy.deepcopy(obj)
            new["spec"]["replicas"] = desired
            new["metadata"].pop("resourceVersion", None)
            res = self.emu.resource(obj["kind"])
            self.emu.store.replace(res, ns, obj["metadata"]["name"], new)

    def hpa_conditions(
        self,
        ns: str,
        name: str,
        *,
        able: bool = True,
        active: bool = True,
        limited: bool = False,
        reason: str | None = None,
        message: str | None = None,
    ) -> dict[str, Any]:
        """The HPA controller's verdict on ``name``: its ``AbleToScale``, ``ScalingActive``
        and ``ScalingLimited`` conditions (worded as the real controller words them), kept with
        its current/desired replicas. ``reason``/``message`` go to the condition that is off."""
        hpa = self.emu.get("HorizontalPodAutoscaler", ns, name)
        if hpa is None:
            raise KeyError(name)
        status = copy.deepcopy(hpa.get("status") or {})
        now = _now()

        def cond(kind: str, ok: bool, good: tuple[str, str], bad: tuple[str, str]) -> dict:
            why, text = good if ok else (reason or bad[0], message or bad[1])
            return {
                "type": kind,
                "status": "True" if ok else "False",
                "lastTransitionTime": now,
                "reason": why,
                "message": text,
            }

        high = (hpa.get("spec") or {}).get("maxReplicas")
        status["conditions"] = [
            cond(
                "AbleToScale",
                able,
                ("ReadyForNewScale", "recommended size matches current size"),
                (
                    "FailedGetScale",
                    "the HPA controller was unable to get the target's current scale",
                ),
            ),
            cond(
                "ScalingActive",
                active,
                ("ValidMetricFound", "the HPA was able to successfully calculate a replica count"),
                (
                    "FailedGetResourceMetric",
                    "the HPA was unable to compute the replica count: failed to get cpu "
                    "utilization: unable to get metrics for resource cpu: no metrics returned "
                    "from resource metrics API",
                ),
            ),
            {
                "type": "ScalingLimited",
                "status": "True" if limited else "False",
                "lastTransitionTime": now,
                "reason": "TooManyReplicas" if limited else "DesiredWithinRange",
                "message": "the desired replica count is more than the maximum replica count"
                if limited
                else "the desired count is within the acceptable range",
            },
        ]
        if limited and high is not None:
            status["currentReplicas"] = status["desiredReplicas"] = high
        return self._write_status(hpa, status)

    # -- auto mode ------------------------------------------------------------------------
    def auto(self, delay: float = 0.05) -> None:
        """Start the background controller: workloads become ready ``delay`` s after each change."""
        self.delay = delay
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, daemon=True, name="emulator-ctrl")
        self._thread.start()

    def stop(self) -> None:
        """Stop the background controller."""
        self._stop.set()
        store = self.emu.store
        with store.lock:
            store.changed.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def _run(self) -> None:
        store = self.emu.store
        last_rv = -1
        while not self._stop.is_set():
            with store.lock:
                if store.rv == last_rv:
                    store.changed.wait(0.1)
                    continue
                last_rv = store.rv
            time.sleep(self.delay)
            try:
                self._reconcile()
            except Exception:  # noqa: BLE001 - a race with a client write: try again
                last_rv = -1

    def _reconcile(self) -> None:
        for hpa in self.emu.list("HorizontalPodAutoscaler"):
            spec = hpa.get("spec") or {}
            target = spec.get("scaleTargetRef") or {}
            ns = hpa["metadata"]["namespace"]
            try:
                obj = self._workload(ns, target.get("name", ""), target.get("kind"))
            except KeyError:
                continue
            replicas = obj["spec"].get("replicas", 1)
            if replicas == 0 and spec.get("minReplicas", 1) != 0:
                continue  # as Kubernetes: a target scaled to 0 disables the HPA (ScalingDisabled)
            low, high = spec.get("minReplicas", 1), spec.get("maxReplicas", replicas)
            desired = min(max(replicas, low), high)
            status = hpa.get("status") or {}
            if desired != replicas or status.get("desiredReplicas") != desired:
                self.set_hpa(ns, hpa["metadata"]["name"], desired)
        for kind in WORKLOAD_KINDS:
            for obj in self.emu.list(kind):
                meta = obj["metadata"]
                ns, name = meta["namespace"], meta["name"]
                key = (kind, ns, name)
                state = (meta.get("uid"), meta.get("generation"), obj["spec"].get("replicas"))
                if self._seen.get(key) == state:
                    continue
                image = " ".join(
                    c.get("image", "")
                    for c in ((obj["spec"].get("template") or {}).get("spec") or {}).get(
                        "containers", []
                    )
                )
                failing = next((r for s, r in self.fail_images.items() if s in image), None)
                if failing:
                    self.fail_pods(ns, name, failing, kind=kind)
                else:
                    self.deployment_progress(ns, name, ready=True, kind=kind)
                self._seen[key] = state
