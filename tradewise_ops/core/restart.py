"""Rolling restarts as data: which workloads to restart, how, and which pods are the new ones.

On Kubernetes a restart is what ``kubectl rollout restart`` does: the pod template gets the
annotation ``kubectl.kubernetes.io/restartedAt: <time>``, so the Deployment controller rolls
every pod over (``maxUnavailable: 0``: new pods are ready before old ones go). The new pods
carry that annotation with that value, which is how the restart tells them from the old ones.
The API's Deployment is the one the live Service serves: under blue-green the live slot's
(``core.bluegreen``), else the one its HPA targets, else the one labelled
``app.kubernetes.io/component=api``.

On the local stack (kind ``local``) each process is restarted in turn: the API by gunicorn's
graceful reload (SIGHUP to the master: new workers start, old ones finish their requests, the
listening socket never closes), each Celery worker and the scheduler by stop and start.

``plan_restart`` / ``plan_local_restart`` build the plan; ``--dry-run`` prints it; the adapter
(``adapters/restarter``) carries out exactly its steps, in order.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from tradewise_ops.core.bluegreen import API_DEPLOYMENT, live_slot, slot_deployment
from tradewise_ops.errors import BadInputError, NotFoundError

RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"
COMPONENT_LABEL = "app.kubernetes.io/component"
COMPONENTS = ("api", "worker", "precompute")
TARGETS = (*COMPONENTS, "all")
DEPLOYMENTS = {
    "api": API_DEPLOYMENT,
    "worker": "tradewise-worker-deployment",
    "precompute": "tradewise-precompute-deployment",
}

# local actions
RELOAD = "reload"  # SIGHUP to the gunicorn master: graceful, the socket stays open
STOP_START = "stop-start"  # TERM (the task in hand finishes), then start again
PATCH = "patch"  # the pod-template annotation (Kubernetes)


def components_for(target: str | None) -> tuple[str, ...]:
    """The components ``target`` names: ``api``, ``worker``, ``precompute`` or ``all``.

    ``workers`` is accepted for ``worker``. Anything else is ``BadInputError`` (exit 2).
    """
    name = {"workers": "worker", None: "all", "": "all"}.get(target, target)
    if name == "all":
        return COMPONENTS
    if name not in COMPONENTS:
        raise BadInputError(f"cannot restart {target!r}: use one of {', '.join(TARGETS)}")
    return (str(name),)


def restart_patch(at: str) -> dict[str, Any]:
    """The strategic-merge patch ``kubectl rollout restart`` sends: the template annotation."""
    return {"spec": {"template": {"metadata": {"annotations": {RESTARTED_AT: at}}}}}


@dataclass(frozen=True)
class RestartStep:
    """One thing the restart does, in order: patch a Deployment, or reload / restart a process."""

    component: str
    kind: str  # Deployment | Process
    name: str
    action: str  # patch | reload | stop-start
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "component": self.component,
            "kind": self.kind,
            "name": self.name,
            "action": self.action,
            "detail": self.detail,
        }

    def row(self) -> list[str]:
        return [self.action, f"{self.kind}/{self.name}", self.detail]


@dataclass(frozen=True)
class RestartPlan:
    """The ordered steps of one restart of an environment."""

    environment: str
    kind: str  # kubernetes | local
    namespace: str | None
    at: str  # the restartedAt value (UTC, RFC 3339), also the local restart's start
    steps: tuple[RestartStep, ...]
    slot: str | None = None  # blue-green: the live slot whose API Deployment restarts
    notes: tuple[str, ...] = ()

    @property
    def components(self) -> list[str]:
        return list(dict.fromkeys(s.component for s in self.steps))

    def to_dict(self) -> dict[str, Any]:
        return {
            "environment": self.environment,
            "kind": self.kind,
            "namespace": self.namespace,
            "restarted_at": self.at,
            "slot": self.slot,
            "steps": [s.to_dict() for s in self.steps],
            "notes": list(self.notes),
        }

    def rows(self) -> list[list[str]]:
        """Rows ``ACTION OBJECT DETAIL``, one per step, in order."""
        return [s.row() for s in self.steps]


def _labels(obj: Mapping[str, Any]) -> Mapping[str, str]:
    return (obj.get("metadata") or {}).get("labels") or {}


def _name(obj: Mapping[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("name", ""))


def pick_deployment(
    component: str,
    deployments: Sequence[Mapping[str, Any]],
    service: Mapping[str, Any] | None = None,
    hpas: Sequence[Mapping[str, Any]] = (),
) -> tuple[Mapping[str, Any], str | None]:
    """The live Deployment of ``component`` and, for the API under blue-green, its slot.

    The API: the live Service's slot (``tradewise-api-deployment-<slot>``), else the Deployment
    an HPA targets, else the one labelled ``component=api`` (the rolling name first). Others:
    the one labelled with the component (its usual name first). ``NotFoundError`` when none.
    """
    ours = [d for d in deployments if _labels(d).get(COMPONENT_LABEL) == component]
    by_name = {_name(d): d for d in ours}
    slot = live_slot(service) if component == "api" else None
    if slot is not None:
        chosen = by_name.get(slot_deployment(slot))
        if chosen is None:
            raise NotFoundError(
                f"the API Service selects slot {slot}, but Deployment {slot_deployment(slot)} "
                "does not exist: nothing to restart (deploy again)"
            )
        return chosen, slot
    targets = {
        ((h.get("spec") or {}).get("scaleTargetRef") or {}).get("name")
        for h in hpas
        if ((h.get("spec") or {}).get("scaleTargetRef") or {}).get("kind", "Deployment")
        == "Deployment"
    }
    targeted = [d for d in ours if _name(d) in targets]
    if targeted:
        return targeted[0], None
    usual = by_name.get(DEPLOYMENTS[component])
    if usual is not None:
        return usual, None
    if ours:
        return sorted(ours, key=_name)[0], None
    raise NotFoundError(
        f"no {component} Deployment ({DEPLOYMENTS[component]}, label "
        f"{COMPONENT_LABEL}={component}) is deployed: nothing to restart"
    )


def plan_restart(
    environment: str,
    namespace: str,
    components: Iterable[str],
    at: str,
    deployments: Sequence[Mapping[str, Any]],
    service: Mapping[str, Any] | None = None,
    hpas: Sequence[Mapping[str, Any]] = (),
) -> RestartPlan:
    """The restart of ``components`` on Kubernetes: one template patch per live Deployment."""
    steps = []
    slot = None
    for component in components:
        dep, dep_slot = pick_deployment(component, deployments, service, hpas)
        slot = dep_slot or slot
        replicas = (dep.get("spec") or {}).get("replicas", 1)
        detail = f"{RESTARTED_AT}={at}; rolls {replicas} pods"
        if dep_slot:
            detail += f" (live blue-green slot {dep_slot})"
        steps.append(RestartStep(component, "Deployment", _name(dep), PATCH, detail))
    return RestartPlan(environment, "kubernetes", namespace, at, tuple(steps), slot)


_DETAILS = {
    "local": (
        "SIGHUP to the gunicorn master: new workers, old ones finish their requests",
        "TERM (the task in hand finishes), start again, wait for its heartbeat",
    ),
    "compose": (
        "docker kill --signal HUP: the container's gunicorn starts new workers, old ones "
        "finish their requests",
        "docker restart (TERM: the task in hand finishes), wait until it runs (healthy)",
    ),
}


def plan_local_restart(
    environment: str,
    components: Iterable[str],
    at: str,
    processes: Mapping[str, str],
    kind: str = "local",
) -> RestartPlan:
    """The restart of ``components`` on the local stack (or the compose stack's containers,
    ``kind="compose"``), one process at a time.

    ``processes`` maps each running process (container) name (``api``, ``worker-1``, ...) to its
    component. The API first (graceful reload), then the workers one by one, then the scheduler.
    A component with no running process is ``BadInputError`` (start the stack first).
    """
    reload_detail, restart_detail = _DETAILS[kind]
    wanted = list(components)
    steps = []
    for component in COMPONENTS:
        if component not in wanted:
            continue
        names = sorted(
            (n for n, c in processes.items() if c == component),
            key=lambda n: (len(n), n),
        )
        if not names:
            what = "container" if kind == "compose" else "process"
            raise BadInputError(
                f"no {component} {what} runs in the {kind} stack of {environment}: "
                f"start it with `tradewise local up --env {environment}`"
            )
        obj = "Container" if kind == "compose" else "Process"
        for name in names:
            if component == "api":
                steps.append(RestartStep(component, obj, name, RELOAD, reload_detail))
            else:
                steps.append(RestartStep(component, obj, name, STOP_START, restart_detail))
    return RestartPlan(environment, kind, None, at, tuple(steps))


def new_pods(
    workload: Mapping[str, Any], pods: Iterable[Mapping[str, Any]], at: str
) -> list[Mapping[str, Any]]:
    """The pods of ``workload`` started by the restart at ``at``: selected by its
    ``matchLabels`` and carrying ``restartedAt: at`` (copied from the template), not deleted."""
    match = (((workload.get("spec") or {}).get("selector") or {}).get("matchLabels")) or {}
    out = []
    for pod in pods:
        meta = pod.get("metadata") or {}
        labels = meta.get("labels") or {}
        if meta.get("deletionTimestamp") or any(labels.get(k) != v for k, v in match.items()):
            continue
        if (meta.get("annotations") or {}).get(RESTARTED_AT) == at:
            out.append(pod)
    return sorted(out, key=_name)


def is_restarted_pod(at: str) -> Any:
    """A filter for the rollout wait: only the pods this restart started count (an old pod that
    was already crash-looping, the reason for the restart, is not this restart's failure)."""

    def keep(pod: Mapping[str, Any]) -> bool:
        annotations = (pod.get("metadata") or {}).get("annotations") or {}
        return annotations.get(RESTARTED_AT) == at

    return keep


@dataclass
class RestartedWorkload:
    """What one restarted Deployment (or local process) ended as."""

    component: str
    name: str
    ok: bool
    state: str
    new_pods: list[str] = field(default_factory=list)
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "component": self.component,
            "name": self.name,
            "ok": self.ok,
            "state": self.state,
            "new_pods": list(self.new_pods),
            "detail": self.detail,
        }

    def row(self) -> list[str]:
        return [self.component, self.name, self.state, ", ".join(self.new_pods) or "-"]
