"""Waiting for a rollout: watch (never poll) the workloads, their pods and events until done.

``wait_for_rollout`` folds the gateway's watch events into the workloads' latest state and asks
``core.rollout.evaluate`` after each change whether the rollout is done, has failed, or goes on;
it returns at once when it is decided, or when the timeout passes.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass
from typing import Any

from tradewise_ops.adapters.kube import KubeGateway
from tradewise_ops.core.rollout import WORKLOAD_KINDS, RolloutState, WorkloadStatus, evaluate

WATCHED_KINDS = ("Deployment", "StatefulSet", "Pod", "Event")


@dataclass
class RolloutOutcome:
    """How the wait ended."""

    state: RolloutState
    timed_out: bool
    seconds: float

    @property
    def ok(self) -> bool:
        return self.state.done and not self.state.failed and not self.timed_out


def resource_version(obj: dict[str, Any]) -> int:
    """``obj``'s resourceVersion as a number (0 when absent or not a number)."""
    try:
        return int((obj.get("metadata") or {}).get("resourceVersion") or 0)
    except ValueError:
        return 0


def wait_for_rollout(
    gw: KubeGateway,
    workloads: Sequence[dict[str, Any]],
    timeout: float,
    since_rv: str | None = None,
    on_change: Callable[[WorkloadStatus], None] | None = None,
    pod_filter: Callable[[dict[str, Any]], bool] | None = None,
) -> RolloutOutcome:
    """Watch (not poll) workloads, their pods and events until all are done, one fails, or
    ``timeout`` s pass. ``workloads`` are the objects as the apply answered them.

    ``pod_filter`` (when given) says which pods count: a restart ignores the old pods, so an
    old pod that was crash-looping (the reason for the restart) is not its failure."""
    start = time.monotonic()
    state = {(w["kind"], w["metadata"]["name"]): w for w in workloads}
    pods: dict[str, dict[str, Any]] = {}
    events: list[dict[str, Any]] = []
    shown: dict[tuple[str, str], str] = {}

    def judge() -> RolloutState:
        result = evaluate(list(state.values()), list(pods.values()), events)
        for w in result.workloads:
            line = w.line()
            if shown.get((w.kind, w.name)) != line:
                shown[(w.kind, w.name)] = line
                if on_change is not None:
                    on_change(w)
        return result

    current = judge()
    if current.done or current.failed or not workloads:
        return RolloutOutcome(current, False, time.monotonic() - start)
    if since_rv is None:
        since_rv = str(max(resource_version(w) for w in workloads))
    stop = threading.Event()
    stream: Generator[Any, None, None] = gw.watch(  # type: ignore[assignment]
        WATCHED_KINDS, since_rv=since_rv, timeout=timeout, stop=stop
    )
    try:
        for event in stream:
            key = (event.kind, event.name)
            if event.kind in WORKLOAD_KINDS:
                if key not in state:
                    continue
                if event.type == "DELETED" and resource_version(event.obj) < resource_version(
                    state[key]
                ):
                    continue  # an earlier object of that name (a blue-green slot's last round)
                if event.type == "DELETED":  # someone deleted it mid-rollout: it cannot finish
                    gone = dict(event.obj)
                    gone["metadata"] = {
                        **(gone.get("metadata") or {}),
                        "deletionTimestamp": "deleted",
                    }
                    state[key] = gone
                elif event.type == "SYNC" or resource_version(event.obj) >= resource_version(
                    state[key]
                ):
                    state[key] = event.obj  # (older ones were replayed from before our apply)
            elif event.kind == "Pod":
                if pod_filter is not None and not pod_filter(event.obj):
                    continue
                if event.type == "DELETED":
                    pods.pop(event.name, None)
                else:
                    pods[event.name] = event.obj
            elif event.kind == "Event":
                if event.obj.get("type") == "Warning":
                    events.append(event.obj)
                if (event.obj.get("involvedObject") or {}).get("kind") != "Pod":
                    continue
            current = judge()
            if current.done or current.failed:
                stop.set()
                return RolloutOutcome(current, False, time.monotonic() - start)
    finally:
        stop.set()
        with contextlib.suppress(Exception):
            stream.close()
    return RolloutOutcome(judge(), True, time.monotonic() - start)
