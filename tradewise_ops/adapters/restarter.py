"""Carry out a restart plan (``core.restart``): on Kubernetes, or on the local process stack.

Kubernetes: read the live Deployments, the API Service and the HPAs (``Restarter.plan``), then
patch each Deployment's pod template with ``kubectl.kubernetes.io/restartedAt`` and wait for the
rollouts exactly as ``deploy`` does (``adapters.rollout_wait``: watched, failing fast with the pod
and reason), counting only the pods this restart started; then name those new pods.

Local and compose: each step of the plan in order, one process (container) at a time
(``reload_api``, ``restart_process`` of ``LocalStack`` or ``ComposeStack``).

The release lock (``adapters.lock.ReleaseLock``, a ``coordination.k8s.io`` Lease, which
``tradewise restart`` passes in from the CLI state) hooks in through the ``lock`` parameter:
``lock(what)`` is a context manager held around the whole restart. It defaults to ``no_lock``.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tradewise_ops.core.bluegreen import API_SERVICE
from tradewise_ops.core.restart import (
    PATCH,
    RELOAD,
    RestartedWorkload,
    RestartPlan,
    is_restarted_pod,
    new_pods,
    plan_local_restart,
    plan_restart,
    restart_patch,
)
from tradewise_ops.errors import BadInputError

if TYPE_CHECKING:
    from tradewise_ops.adapters.kube import KubeGateway
    from tradewise_ops.adapters.local import LocalStack
    from tradewise_ops.adapters.local.compose import ComposeStack
    from tradewise_ops.adapters.rollout_wait import RolloutOutcome
    from tradewise_ops.core.rollout import WorkloadStatus

PART_OF = "app.kubernetes.io/part-of=tradewise"
Lock = Callable[[str], contextlib.AbstractContextManager[Any]]


@contextlib.contextmanager
def no_lock(what: str) -> Iterator[None]:
    """The default ``lock``: holds nothing (the CLI passes the release Lease instead)."""
    yield


def utc_now() -> str:
    """Now, as ``kubectl rollout restart`` writes it: RFC 3339, UTC, whole seconds."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


@dataclass
class RestartOutcome:
    """How a restart ended: per workload, its state and new pods."""

    plan: RestartPlan
    workloads: list[RestartedWorkload] = field(default_factory=list)
    seconds: float = 0.0
    timed_out: bool = False
    waited: bool = True
    requests: int = 0
    rollout: RolloutOutcome | None = None

    @property
    def ok(self) -> bool:
        return not self.timed_out and all(w.ok for w in self.workloads)

    @property
    def message(self) -> str:
        names = ", ".join(w.name for w in self.workloads)
        if not self.waited:
            return f"restart of {names} started (not waited for)"
        if self.ok:
            return f"restarted {names} in {self.seconds:.1f}s"
        bad = [w for w in self.workloads if not w.ok]
        reasons = "; ".join(
            f"{w.name}: {w.state}" + (f" ({w.detail})" if w.detail else "") for w in bad
        )
        if self.timed_out:
            return f"the restart did not finish in time: {reasons}"
        return f"the restart failed: {reasons}"

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.plan.to_dict(),
            "ok": self.ok,
            "waited": self.waited,
            "timed_out": self.timed_out,
            "seconds": round(self.seconds, 2),
            "requests": self.requests,
            "workloads": [w.to_dict() for w in self.workloads],
            "message": self.message,
        }


class Restarter:
    """Rolling restarts of tradewise's Deployments in one namespace."""

    def __init__(
        self,
        gw: KubeGateway,
        environment: str,
        namespace: str,
        *,
        on_step: Callable[[str], None] | None = None,
        on_progress: Callable[[WorkloadStatus], None] | None = None,
        lock: Lock = no_lock,
    ) -> None:
        self.gw = gw
        self.environment = environment
        self.namespace = namespace
        self._step = on_step or (lambda _m: None)
        self._progress = on_progress
        self.lock = lock

    def plan(self, components: Iterable[str], at: str | None = None) -> RestartPlan:
        """Which Deployments to restart (the API's live slot under blue-green). Reads only."""
        wanted = list(components)
        deployments = self.gw.list("Deployment", PART_OF, namespace=self.namespace)
        service = hpas = None
        if "api" in wanted:
            service = self.gw.find("Service", API_SERVICE, namespace=self.namespace)
            hpas = self.gw.list("HorizontalPodAutoscaler", PART_OF, namespace=self.namespace)
        return plan_restart(
            self.environment,
            self.namespace,
            wanted,
            at or utc_now(),
            deployments,
            service,
            hpas or [],
        )

    def apply(
        self, plan: RestartPlan, *, wait: bool = True, timeout: float = 300.0
    ) -> RestartOutcome:
        """Patch every Deployment of ``plan`` in order, then wait for all of them (``wait``)."""
        start = time.monotonic()
        before = self.gw.request_count
        outcome = RestartOutcome(plan, waited=wait)
        try:
            with self.lock(f"restart {', '.join(s.name for s in plan.steps)}"):
                patched = []
                for step in plan.steps:
                    if step.action != PATCH:
                        raise BadInputError(
                            f"a {plan.kind} plan cannot be carried out on a cluster"
                        )
                    self._step(f"restarting Deployment/{step.name} ({step.component})")
                    patched.append(
                        self.gw.patch(
                            "Deployment",
                            step.name,
                            restart_patch(plan.at),
                            "strategic",
                            namespace=self.namespace,
                        )
                    )
                if not wait:
                    outcome.workloads = [
                        RestartedWorkload(s.component, s.name, True, "restarting")
                        for s in plan.steps
                    ]
                    return outcome
                self._step(f"waiting up to {timeout:g}s for {len(patched)} rollouts")
                from tradewise_ops.adapters.rollout_wait import wait_for_rollout

                result = wait_for_rollout(
                    self.gw,
                    patched,
                    timeout,
                    on_change=self._progress,
                    pod_filter=is_restarted_pod(plan.at),
                )
                outcome.rollout = result
                outcome.timed_out = result.timed_out
                pods = self.gw.list("Pod", namespace=self.namespace)
                statuses = {w.name: w for w in result.state.workloads}
                for step, obj in zip(plan.steps, patched, strict=True):
                    status = statuses[step.name]
                    started = [str(p["metadata"]["name"]) for p in new_pods(obj, pods, plan.at)]
                    detail = ""
                    if status.failure:
                        detail = (
                            f"pod {status.pod}: {status.message}" if status.pod else status.message
                        )
                    outcome.workloads.append(
                        RestartedWorkload(
                            step.component,
                            step.name,
                            status.done and not status.failure,
                            status.state,
                            started,
                            detail,
                        )
                    )
                return outcome
        finally:
            outcome.seconds = time.monotonic() - start
            outcome.requests = self.gw.request_count - before


def plan_local(
    stack: LocalStack | ComposeStack, components: Iterable[str], at: str | None = None
) -> RestartPlan:
    """The local (or compose) restart of ``components``: the stack's running processes (or
    containers), one at a time."""
    from tradewise_ops.adapters.local import LocalStack

    running = {i.name: i.component for i in stack.status() if i.state == "running"}
    kind = "local" if isinstance(stack, LocalStack) else "compose"
    return plan_local_restart(stack.env.name, components, at or utc_now(), running, kind)


def apply_local(
    stack: LocalStack | ComposeStack,
    plan: RestartPlan,
    *,
    timeout: float = 60.0,
    on_step: Callable[[str], None] | None = None,
    lock: Lock = no_lock,
) -> RestartOutcome:
    """Carry out a local plan step by step; stops at the first process that does not come back.

    Ctrl-C or SIGTERM (the CLI's ``Terminated``) stops it too: what was restarted, what was in
    hand and what was not started are said through ``on_step``, then the interrupt goes on.
    """
    step_to = on_step or (lambda _m: None)
    start = time.monotonic()
    outcome = RestartOutcome(plan)
    step = None
    try:
        with lock(f"restart {', '.join(s.name for s in plan.steps)}"):
            for step in plan.steps:
                if step.action == RELOAD:
                    step_to(f"reloading {step.name} (gunicorn: graceful, the socket stays open)")
                    old, new = stack.reload_api(timeout=timeout)
                    outcome.workloads.append(
                        RestartedWorkload(
                            step.component,
                            step.name,
                            True,
                            "ready",
                            [f"pid {p}" for p in new],
                            f"{len(old)} old gunicorn workers replaced",
                        )
                    )
                else:
                    step_to(f"restarting {step.name}")
                    pid = stack.restart_process(step.name, timeout=timeout)
                    outcome.workloads.append(
                        RestartedWorkload(step.component, step.name, True, "ready", [f"pid {pid}"])
                    )
    except KeyboardInterrupt:
        done = [w.name for w in outcome.workloads]
        left = [s.name for s in plan.steps if s.name not in done and s is not step]
        step_to(
            f"restart interrupted during {step.name if step else 'the start'}: restarted "
            f"{', '.join(done) or 'none'}; not started {', '.join(left) or 'none'}"
        )
        raise
    finally:
        outcome.seconds = time.monotonic() - start
    return outcome
