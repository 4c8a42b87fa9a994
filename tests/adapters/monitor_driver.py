"""Plays the HPA, Deployment and kubelet controllers on the emulator for the monitor's tests."""

from __future__ import annotations

import copy
import time
from typing import Any

from tests.core.timeline_objects import API, API_HPA, NAMESPACE, deployment, hpa, pod
from tests.helpers import wait_until
from tests.k8s_emulator import Emulator

# the four watches of a monitor (HPAs, Deployments, Pods, Events)
WATCHES = 4


class Driver:
    """Writes objects and their status through the emulator's store (watches see every change)."""

    def __init__(self, emu: Emulator, namespace: str = NAMESPACE) -> None:
        self.emu = emu
        self.ns = namespace

    def write(self, obj: dict[str, Any]) -> None:
        """Create ``obj``, or replace its spec and then its status (as two controllers would)."""
        obj = copy.deepcopy(obj)
        obj["metadata"]["namespace"] = self.ns
        res = self.emu.resource(obj["kind"])
        name = obj["metadata"]["name"]
        if self.emu.store.find(res, self.ns, name) is None:
            self.emu.store.create(res, self.ns, obj)
            return
        self.emu.put(obj)
        self.emu.store.replace(res, self.ns, name, obj, status_only=True)

    def delete(self, kind: str, name: str) -> None:
        self.emu.store.delete(self.emu.resource(kind), self.ns, name)

    def event(self, kind: str, name: str, reason: str, message: str, type_: str = "Normal") -> None:
        self.emu.controllers.event(self.ns, kind, name, reason, message, type=type_)

    def baseline(self, replicas: int = 3) -> None:
        """An API HPA at ``replicas`` with cpu at 40% of 70%, and that many ready pods."""
        self.write(hpa(current=replicas, desired=replicas, cpu=40))
        self.write(deployment(replicas=replicas, ready=replicas))
        for i in range(replicas):
            self.write(pod(f"api-{i}"))

    def wait_watching(self, count: int = WATCHES, timeout: float = 10.0) -> None:
        """Until ``count`` watch connections are open (changes from now on arrive as events)."""
        wait_until(
            lambda: len([r for r in self.emu.requests_matching("GET") if r.watch]) >= count,
            timeout=timeout,
            what=f"{count} watches",
        )
        time.sleep(0.1)

    def scale_up(self, gap: float, start: int = 3, to: int = 5) -> None:
        """cpu crosses its target; ``gap`` s later the HPA rescales; ``gap`` s later pods ready."""
        self.write(hpa(current=start, desired=start, cpu=85))
        time.sleep(gap)
        self.write(hpa(current=start, desired=to, cpu=90))
        self.event(
            "HorizontalPodAutoscaler",
            API_HPA,
            "SuccessfulRescale",
            f"New size: {to}; reason: cpu resource utilization (percentage of request) above "
            "target",
        )
        self.write(deployment(replicas=to, ready=start))
        for i in range(start, to):
            self.write(pod(f"api-{i}", ready=False))
        time.sleep(gap)
        for i in range(start, to):
            self.write(pod(f"api-{i}"))
        self.write(deployment(replicas=to, ready=to))

    def scale_down(self, start: int = 5, to: int = 3) -> None:
        """cpu falls; the HPA rescales down and the extra pods go away (no failure)."""
        self.write(hpa(current=start, desired=start, cpu=20))
        self.write(hpa(current=start, desired=to, cpu=20))
        self.event(
            "HorizontalPodAutoscaler",
            API_HPA,
            "SuccessfulRescale",
            f"New size: {to}; reason: All metrics below target",
        )
        self.write(deployment(replicas=to, ready=start))
        for i in range(to, start):
            self.write(pod(f"api-{i}", terminating=True))
            self.delete("Pod", f"api-{i}")
        self.write(deployment(replicas=to, ready=to))

    def kill_pod(self, name: str, replacement: str, gap: float, replicas: int = 3) -> None:
        """A pod is OOM-killed and deleted; its replacement is ready ``gap`` s later."""
        self.event(
            "Pod", name, "OOMKilling", f"Memory cgroup out of memory: killed {name}", "Warning"
        )
        self.write(pod(name, ready=False, restarts=1, last_terminated="OOMKilled"))
        self.delete("Pod", name)
        self.write(deployment(replicas=replicas, ready=replicas - 1))
        self.write(pod(replacement, ready=False))
        time.sleep(gap)
        self.write(pod(replacement))
        self.write(deployment(replicas=replicas, ready=replicas))


__all__ = ["API", "API_HPA", "NAMESPACE", "Driver"]
