"""Scaling as data: the plans of ``tradewise scale ...`` and the ``scale status`` report.

Pure: nothing here talks to a cluster. The CLI reads the live Deployments and HPAs (plain dicts in
the Kubernetes JSON shape), builds a ``ScalePlan`` here, prints it (``--dry-run``) or hands it to
the gateway, which applies each step in order: HPA bounds first, then the Deployment's replicas
through the scale subresource, then the annotations that record the traffic profile.

The HPA-floor rule: where an HPA manages a Deployment, a bare replica change is undone by the HPA
within seconds, so asking for N replicas (N >= 1) moves the HPA's ``minReplicas`` to N (and its
``maxReplicas`` up to N when N exceeds it, with a warning). The HPA then keeps at least N; it may
still add pods under load, up to its ceiling. N = 0 leaves the HPA alone: Kubernetes stops
autoscaling a target scaled to zero (condition ``ScalingActive=False``, ``ScalingDisabled``), and an
HPA's ``minReplicas`` cannot be 0 anyway.

Emergency-down (the guide's "System Overload" response): precompute to 0, the API and workers to
their floors (the configured autoscaling minimum; 1 process each for ``local``) with the HPA pinned
there (min = max = floor) so it cannot scale back into the overload. Applying any traffic profile
undoes it: a profile sets the floor to the profile's replicas, the ceiling back to the configured
maximum, and brings precompute back to its configured replicas.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from tradewise_ops.core.config import Environment, Profile
from tradewise_ops.errors import BadInputError, NotFoundError

DEPLOYMENTS: Mapping[str, str] = {
    "api": "tradewise-api-deployment",
    "worker": "tradewise-worker-deployment",
    "precompute": "tradewise-precompute-deployment",
}
HPAS: Mapping[str, str] = {"api": "tradewise-api-hpa", "worker": "tradewise-worker-hpa"}
# the word users type (``scale workers N``) -> the component
COMMAND_COMPONENTS: Mapping[str, str] = {"api": "api", "workers": "worker"}

PROFILE_ANNOTATION = "tradewise.io/traffic-profile"
APPLIED_AT_ANNOTATION = "tradewise.io/traffic-profile-applied-at"
MANUAL = "manual"
EMERGENCY_DOWN = "emergency-down"

# what ``scale traffic`` and ``scale emergency-down`` need from the API server, and nothing more:
# the least-privilege Role of the predictive-scaling CronJobs must grant exactly this (no list,
# no watch, no create/delete, no other resources). (API group, resource) -> verbs.
SCALER_PERMISSIONS: Mapping[tuple[str, str], frozenset[str]] = {
    ("apps", "deployments"): frozenset({"get", "patch"}),
    ("apps", "deployments/scale"): frozenset({"patch"}),
    ("autoscaling", "horizontalpodautoscalers"): frozenset({"get", "patch"}),
}

SCALING_EVENT_KINDS = ("HorizontalPodAutoscaler", "Deployment")
_WHOLE = re.compile(r"^\d+$")


# --------------------------------------------------------------------------------------------
# input checks
# --------------------------------------------------------------------------------------------
def parse_replicas(text: str | int, cap: int, what: str = "replicas") -> int:
    """The replica count in ``text``: a whole number, >= 0 and <= ``cap`` (the config's cap).

    Raises ``BadInputError`` (one sentence) for anything else: ``-1``, ``2.5``, ``ten``, ``51``.
    """
    raw = str(text).strip()
    if raw.startswith("-") and _WHOLE.match(raw[1:]):
        raise BadInputError(f"{what} must be 0 or more, not {raw[:40]}")
    if not _WHOLE.match(raw):
        raise BadInputError(f"{what} must be a whole number like 5, not {raw[:40]!r}")
    digits = raw.lstrip("0") or "0"
    # the config keeps max_replicas within int32; no int() of thousands of digits (it raises)
    if len(digits) > len(str(cap)) or int(digits) > cap:
        shown = digits if len(digits) <= 20 else f"{digits[:12]}... ({len(digits)} digits)"
        raise BadInputError(
            f"{what} {shown} is above the cap of {cap} replicas (max_replicas in the config)"
        )
    return int(digits)


def component_for(word: str) -> str:
    """The component a ``scale`` sub-command word names: ``api`` -> api, ``workers`` -> worker."""
    try:
        return COMMAND_COMPONENTS[word]
    except KeyError:
        raise BadInputError(
            f"unknown scaling target {word!r}: use one of {', '.join(COMMAND_COMPONENTS)}"
        ) from None


# --------------------------------------------------------------------------------------------
# the live state a plan starts from
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class HpaBounds:
    """An HPA's floor and ceiling."""

    min_replicas: int
    max_replicas: int

    def to_dict(self) -> dict[str, int]:
        return {"min": self.min_replicas, "max": self.max_replicas}


@dataclass(frozen=True)
class LiveComponent:
    """What a plan needs to know about one component's live objects.

    ``replicas`` is the Deployment's desired replicas (for ``local``: the number of processes);
    None when the Deployment does not exist. ``hpa`` is None when no HPA manages it.
    """

    component: str
    replicas: int | None
    hpa: HpaBounds | None = None
    profile: str | None = None
    name: str | None = None  # the Deployment's name, when not the usual (a blue-green slot)

    @property
    def exists(self) -> bool:
        return self.replicas is not None


def live_component(
    component: str, deployment: Mapping[str, Any] | None, hpa: Mapping[str, Any] | None = None
) -> LiveComponent:
    """A ``LiveComponent`` from a Deployment dict and an HPA dict (Kubernetes JSON shape)."""
    if deployment is None:
        return LiveComponent(component, None, _hpa_bounds(hpa), None)
    spec = deployment.get("spec") or {}
    replicas = spec.get("replicas")
    # a Deployment created without spec.replicas (HPA-managed) defaults to 1 until someone scales
    replicas = 1 if replicas is None else int(replicas)
    name = (deployment.get("metadata") or {}).get("name")
    return LiveComponent(
        component,
        replicas,
        _hpa_bounds(hpa),
        _profile_of(deployment),
        name if name and name != DEPLOYMENTS.get(component) else None,
    )


def _hpa_bounds(hpa: Mapping[str, Any] | None) -> HpaBounds | None:
    if hpa is None:
        return None
    spec = hpa.get("spec") or {}
    lo = spec.get("minReplicas")
    return HpaBounds(1 if lo is None else int(lo), int(spec.get("maxReplicas") or 1))


def _annotations(obj: Mapping[str, Any] | None) -> Mapping[str, str]:
    if not obj:
        return {}
    return (obj.get("metadata") or {}).get("annotations") or {}


def _profile_of(obj: Mapping[str, Any] | None) -> str | None:
    return _annotations(obj).get(PROFILE_ANNOTATION)


# --------------------------------------------------------------------------------------------
# plans
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ScaleStep:
    """One component's change: its HPA's bounds (if it has one), then its replicas."""

    component: str
    target: str  # the Deployment's name (for local: the process group)
    replicas_before: int | None
    replicas: int
    hpa: str | None = None
    hpa_before: HpaBounds | None = None
    hpa_after: HpaBounds | None = None

    @property
    def changes_hpa(self) -> bool:
        return self.hpa_after is not None and self.hpa_after != self.hpa_before

    def hpa_patch(self, annotations: Mapping[str, str]) -> dict[str, Any] | None:
        """The merge patch for this step's HPA (bounds and annotations), None without an HPA."""
        if self.hpa is None or self.hpa_after is None:
            return None
        return {
            "metadata": {"annotations": dict(annotations)},
            "spec": {
                "minReplicas": self.hpa_after.min_replicas,
                "maxReplicas": self.hpa_after.max_replicas,
            },
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "component": self.component,
            "target": self.target,
            "replicas_before": self.replicas_before,
            "replicas": self.replicas,
            "hpa": self.hpa,
            "hpa_before": self.hpa_before.to_dict() if self.hpa_before else None,
            "hpa_after": self.hpa_after.to_dict() if self.hpa_after else None,
        }


@dataclass(frozen=True)
class ScalePlan:
    """Everything one ``scale`` command will change, in the order it changes it."""

    action: str
    environment: str
    profile: str  # recorded on every touched object: a profile name, "manual", "emergency-down"
    applied_at: str  # ISO 8601, UTC
    steps: tuple[ScaleStep, ...]
    notes: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    maintenance: bool = False  # also point the Ingress at the maintenance page (first)

    def annotations(self) -> dict[str, str]:
        """The annotations recorded on each touched Deployment and HPA."""
        return {PROFILE_ANNOTATION: self.profile, APPLIED_AT_ANNOTATION: self.applied_at}

    def step(self, component: str) -> ScaleStep:
        """The step of ``component`` (KeyError if the plan does not touch it)."""
        for s in self.steps:
            if s.component == component:
                return s
        raise KeyError(component)

    def to_dict(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "environment": self.environment,
            "profile": self.profile,
            "applied_at": self.applied_at,
            "steps": [s.to_dict() for s in self.steps],
            "notes": list(self.notes),
            "warnings": list(self.warnings),
            "maintenance": self.maintenance,
        }

    def rows(self) -> tuple[list[str], list[list[str]]]:
        """Columns and rows of the plan, one row per component."""
        columns = ["COMPONENT", "TARGET", "REPLICAS", "HPA MIN", "HPA MAX"]
        rows = []
        for s in self.steps:
            rows.append(
                [
                    s.component,
                    s.target,
                    _arrow(s.replicas_before, s.replicas),
                    _arrow(_bound(s.hpa_before, "min"), _bound(s.hpa_after, "min")),
                    _arrow(_bound(s.hpa_before, "max"), _bound(s.hpa_after, "max")),
                ]
            )
        return columns, rows


def _bound(b: HpaBounds | None, which: str) -> int | None:
    if b is None:
        return None
    return b.min_replicas if which == "min" else b.max_replicas


def _arrow(before: int | None, after: int | None) -> str:
    if before is None and after is None:
        return "-"
    if before == after:
        return f"{after} (unchanged)"
    return f"{'-' if before is None else before} -> {after}"


def iso_utc(now: datetime) -> str:
    """``now`` as ``2026-11-27T14:33:30Z``."""
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    return now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _target_name(env: Environment, component: str) -> str:
    return DEPLOYMENTS[component] if env.is_kubernetes else f"{component} processes"


def _require(live: Mapping[str, LiveComponent], component: str, env: Environment) -> LiveComponent:
    found = live.get(component)
    if found is None or not found.exists:
        where = f"namespace {env.namespace}" if env.is_kubernetes else f"the {env.name} stack"
        raise NotFoundError(
            f"{_target_name(env, component)} does not exist in {where}: deploy {env.name} first",
            hint=f"tradewise deploy {env.name}",
        )
    return found


def _step(
    env: Environment,
    now: LiveComponent,
    replicas: int,
    hpa_after: HpaBounds | None,
) -> ScaleStep:
    has_hpa = now.hpa is not None
    return ScaleStep(
        component=now.component,
        target=now.name or _target_name(env, now.component),
        replicas_before=now.replicas,
        replicas=replicas,
        hpa=HPAS[now.component] if has_hpa else None,
        hpa_before=now.hpa,
        hpa_after=(hpa_after if hpa_after is not None else now.hpa) if has_hpa else None,
    )


def _check_stack_minimum(env: Environment, component: str, replicas: int) -> None:
    # a local or compose stack serves from at least one API process
    if not env.is_kubernetes and component == "api" and replicas < 1:
        raise BadInputError(f"the {env.name} stack needs at least 1 API process, not {replicas}")


def plan_manual(
    env: Environment,
    component: str,
    replicas: int,
    live: Mapping[str, LiveComponent],
    now: datetime,
) -> ScalePlan:
    """``scale api N`` / ``scale workers N``: N replicas, kept by the HPA's floor.

    ``replicas`` must already be checked (``parse_replicas``). With an HPA and N >= 1 the floor
    becomes N and the ceiling rises to N if needed (a warning says so); N = 0 leaves the HPA alone.
    """
    _check_stack_minimum(env, component, replicas)
    current = _require(live, component, env)
    notes: list[str] = []
    warnings: list[str] = []
    hpa_after = None
    if current.hpa is not None:
        hpa_name = HPAS[component]
        if replicas == 0:
            notes.append(
                f"{hpa_name} stays as it is: Kubernetes stops autoscaling a Deployment "
                "scaled to 0; scale it up again (or apply a traffic profile) to resume"
            )
        else:
            hpa_after = HpaBounds(replicas, max(current.hpa.max_replicas, replicas))
            notes.append(
                f"{hpa_name} floor set to {replicas} so the autoscaler keeps what you asked "
                f"(it may still add pods under load, up to {hpa_after.max_replicas})"
            )
            if replicas > current.hpa.max_replicas:
                warnings.append(
                    f"{replicas} is above {hpa_name}'s ceiling of {current.hpa.max_replicas}: "
                    f"raising the ceiling to {replicas}"
                )
    word = "workers" if component == "worker" else component
    return ScalePlan(
        action=f"scale {word} {replicas}",
        environment=env.name,
        profile=MANUAL,
        applied_at=iso_utc(now),
        steps=(_step(env, current, replicas, hpa_after),),
        notes=tuple(notes),
        warnings=tuple(warnings),
    )


def plan_profile(
    env: Environment,
    profile: Profile,
    live: Mapping[str, LiveComponent],
    now: datetime,
) -> ScalePlan:
    """``scale traffic NAME``: the profile's replicas on the API and the workers, with their HPAs.

    Each HPA gets the profile's replicas as its floor and the configured maximum as its ceiling
    (raised to the profile's replicas if the profile asks for more, with a warning): a profile is
    a known state, so it also undoes an earlier ``emergency-down`` or manual ceiling. Precompute,
    when ``emergency-down`` stopped it, comes back to its configured replicas.
    """
    cap = env.max_replicas
    wanted = {"api": profile.api, "worker": profile.workers}
    steps: list[ScaleStep] = []
    notes: list[str] = []
    warnings: list[str] = []
    for component, replicas in wanted.items():
        if replicas > cap:
            raise BadInputError(
                f"traffic profile {profile.name!r} asks for {replicas} {component} replicas, "
                f"above the cap of {cap} for {env.name} (max_replicas in the config)"
            )
        _check_stack_minimum(env, component, replicas)
        current = _require(live, component, env)
        hpa_after = None
        if current.hpa is not None and replicas > 0:
            scaling = env.components[component].autoscaling if component in env.components else None
            ceiling = scaling.max_replicas if scaling is not None else current.hpa.max_replicas
            if replicas > ceiling:
                warnings.append(
                    f"profile {profile.name} asks for {replicas} {component} replicas, above "
                    f"{HPAS[component]}'s configured ceiling of {ceiling}: raising it to {replicas}"
                )
                ceiling = replicas
            hpa_after = HpaBounds(replicas, ceiling)
        elif current.hpa is not None:
            notes.append(
                f"{HPAS[component]} stays as it is: Kubernetes stops autoscaling a Deployment "
                "scaled to 0"
            )
        steps.append(_step(env, current, replicas, hpa_after))
    precompute = live.get("precompute")
    if precompute is not None and precompute.exists and precompute.profile == EMERGENCY_DOWN:
        restored = env.components["precompute"].replicas if "precompute" in env.components else 1
        steps.append(_step(env, precompute, restored, None))
        notes.append(f"precompute back to {restored} (stopped by emergency-down)")
    if any(c.hpa is not None for c in live.values()):
        notes.append("each HPA keeps its profile's replicas as its floor and may add pods")
    return ScalePlan(
        action=f"scale traffic {profile.name}",
        environment=env.name,
        profile=profile.name,
        applied_at=iso_utc(now),
        steps=tuple(steps),
        notes=tuple(notes),
        warnings=tuple(warnings),
    )


def emergency_floor(env: Environment, component: str) -> int:
    """Where ``emergency-down`` puts ``component``: its autoscaling minimum (local: 1 process)."""
    if not env.is_kubernetes:
        return 1
    comp = env.components.get(component)
    if comp is not None and comp.autoscaling is not None:
        return comp.autoscaling.min_replicas
    return 1


def check_maintenance(env: Environment) -> None:
    """Maintenance mode (the Ingress) exists only on Kubernetes: ``BadInputError`` elsewhere."""
    if not env.is_kubernetes:
        raise BadInputError(
            f"--maintenance needs a Kubernetes environment; {env.name} is of kind {env.kind}"
        )


def plan_emergency_down(
    env: Environment,
    live: Mapping[str, LiveComponent],
    now: datetime,
    overrides: Mapping[str, int] | None = None,
    maintenance: bool = False,
) -> ScalePlan:
    """``scale emergency-down``: precompute to 0, API and workers to their floors, HPAs pinned.

    ``overrides`` (checked replica counts, e.g. ``{"api": 1}``) replace a floor. Each HPA is pinned
    at the floor (min = max) so it cannot scale back into the overload; any traffic profile undoes
    this. ``maintenance`` also sends users to the maintenance page (only on Kubernetes), before
    anything is scaled down, so the remaining pods are not hit harder while they go.
    """
    overrides = dict(overrides or {})
    steps: list[ScaleStep] = []
    notes: list[str] = []
    for component in ("api", "worker"):
        current = _require(live, component, env)
        floor = overrides.get(component, emergency_floor(env, component))
        _check_stack_minimum(env, component, floor)
        hpa_after = None
        if current.hpa is not None and floor > 0:
            hpa_after = HpaBounds(floor, floor)
            notes.append(
                f"{HPAS[component]} pinned at {floor} (min = max) until a profile is applied"
            )
        steps.append(_step(env, current, floor, hpa_after))
    precompute = live.get("precompute")
    if precompute is not None and precompute.exists:
        steps.append(_step(env, precompute, 0, None))
    else:
        notes.append("precompute not touched (not deployed here, or not scalable on its own)")
    notes.append(
        "undo with a traffic profile, e.g. `tradewise scale traffic medium --env " + env.name + "`"
    )
    if maintenance:
        check_maintenance(env)
        notes.append(
            "the Ingress now sends users to the maintenance page; undo with "
            f"`tradewise maintenance off {env.name}`"
        )
    return ScalePlan(
        action="scale emergency-down",
        environment=env.name,
        profile=EMERGENCY_DOWN,
        applied_at=iso_utc(now),
        steps=tuple(steps),
        notes=tuple(notes),
        maintenance=maintenance,
    )


def settled_replicas(replicas: int, hpa: HpaBounds | None) -> int:
    """What an HPA controller would leave a Deployment at, with no load: clamped to [min, max].

    A Deployment at 0 stays at 0 (autoscaling is disabled for a target scaled to zero).
    """
    if hpa is None or replicas == 0:
        return replicas
    return max(hpa.min_replicas, min(hpa.max_replicas, replicas))


# --------------------------------------------------------------------------------------------
# scale status
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Rows:
    """A titled table as data: what the CLI shows with its terminal."""

    title: str
    columns: Sequence[str]
    rows: Sequence[Sequence[Any]]


def _component_of(obj: Mapping[str, Any]) -> str:
    labels = (obj.get("metadata") or {}).get("labels") or {}
    return str(labels.get("app.kubernetes.io/component", ""))


def _name(obj: Mapping[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("name", ""))


def _ts(value: Any) -> str | None:
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return iso_utc(value)
    return str(value)


def parse_time(value: Any) -> datetime | None:
    """A Kubernetes timestamp (``2026-11-27T14:33:30Z``, with or without fractions) as UTC."""
    text = _ts(value)
    if text is None:
        return None
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def age(value: Any, now: datetime) -> str:
    """kubectl-style age of a timestamp: ``45s``, ``3m``, ``2h``, ``5d``; ``-`` when unknown."""
    when = parse_time(value)
    if when is None:
        return "-"
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    seconds = max(0, int((now - when).total_seconds()))
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60}m"
    if seconds < 172800:
        return f"{seconds // 3600}h"
    return f"{seconds // 86400}d"


def deployment_row(dep: Mapping[str, Any]) -> dict[str, Any]:
    """Desired / updated / ready / available replicas and the recorded profile of a Deployment."""
    spec = dep.get("spec") or {}
    status = dep.get("status") or {}
    desired = spec.get("replicas")
    ann = _annotations(dep)
    return {
        "name": _name(dep),
        "component": _component_of(dep),
        "desired": 1 if desired is None else int(desired),
        "updated": int(status.get("updatedReplicas") or 0),
        "ready": int(status.get("readyReplicas") or 0),
        "available": int(status.get("availableReplicas") or 0),
        "profile": ann.get(PROFILE_ANNOTATION),
        "profile_applied_at": ann.get(APPLIED_AT_ANNOTATION),
    }


_METRIC_KEYS = {
    "Resource": "resource",
    "Pods": "pods",
    "Object": "object",
    "External": "external",
    "ContainerResource": "containerResource",
}


def _metric_id(metric: Mapping[str, Any]) -> tuple[str, str]:
    mtype = str(metric.get("type", ""))
    body = metric.get(_METRIC_KEYS.get(mtype, mtype[:1].lower() + mtype[1:])) or {}
    name = body.get("name") or (body.get("metric") or {}).get("name") or "?"
    return mtype, str(name)


def _metric_body(metric: Mapping[str, Any]) -> Mapping[str, Any]:
    mtype = str(metric.get("type", ""))
    return metric.get(_METRIC_KEYS.get(mtype, mtype[:1].lower() + mtype[1:])) or {}


def _format_value(values: Mapping[str, Any] | None, kind: str | None) -> str | None:
    if not values:
        return None
    order = ["averageUtilization", "averageValue", "value"]
    if kind == "AverageValue":
        order = ["averageValue", "value", "averageUtilization"]
    elif kind == "Value":
        order = ["value", "averageValue", "averageUtilization"]
    for key in order:
        if values.get(key) is not None:
            v = values[key]
            return f"{v}%" if key == "averageUtilization" else str(v)
    return None


def hpa_metrics(hpa: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Each metric of an autoscaling/v2 HPA: its type, name, current value and target."""
    current: dict[tuple[str, str], Mapping[str, Any]] = {}
    for m in (hpa.get("status") or {}).get("currentMetrics") or []:
        current[_metric_id(m)] = _metric_body(m).get("current") or {}
    out = []
    for m in (hpa.get("spec") or {}).get("metrics") or []:
        mtype, name = _metric_id(m)
        target = _metric_body(m).get("target") or {}
        kind = target.get("type")
        out.append(
            {
                "type": mtype,
                "name": name,
                "current": _format_value(current.get((mtype, name)), kind),
                "target": _format_value(target, kind),
            }
        )
    return out


def hpa_row(hpa: Mapping[str, Any]) -> dict[str, Any]:
    """Bounds, current and desired replicas, metrics and last scale time of an HPA."""
    spec = hpa.get("spec") or {}
    status = hpa.get("status") or {}
    ann = _annotations(hpa)
    return {
        "name": _name(hpa),
        "component": _component_of(hpa),
        "target": (spec.get("scaleTargetRef") or {}).get("name"),
        "min": 1 if spec.get("minReplicas") is None else int(spec["minReplicas"]),
        "max": int(spec.get("maxReplicas") or 0),
        "current": status.get("currentReplicas"),
        "desired": status.get("desiredReplicas"),
        "metrics": hpa_metrics(hpa),
        "last_scale_time": _ts(status.get("lastScaleTime")),
        "profile": ann.get(PROFILE_ANNOTATION),
    }


def _event_time(ev: Mapping[str, Any]) -> str | None:
    meta = ev.get("metadata") or {}
    for value in (
        ev.get("lastTimestamp"),
        ev.get("eventTime"),
        ev.get("firstTimestamp"),
        meta.get("creationTimestamp"),
    ):
        if value:
            return _ts(value)
    return None


def scaling_events(
    events: Iterable[Mapping[str, Any]], names: Iterable[str] | None = None, limit: int = 10
) -> list[dict[str, Any]]:
    """The latest ``limit`` events about HPAs and Deployments (of ``names``), oldest first."""
    wanted = set(names) if names is not None else None
    picked = []
    for ev in events:
        obj = ev.get("involvedObject") or ev.get("regarding") or {}
        if obj.get("kind") not in SCALING_EVENT_KINDS:
            continue
        if wanted is not None and obj.get("name") not in wanted:
            continue
        picked.append(
            {
                "time": _event_time(ev),
                "type": ev.get("type") or "Normal",
                "object": f"{obj.get('kind')}/{obj.get('name')}",
                "reason": ev.get("reason") or "",
                "message": (ev.get("message") or ev.get("note") or "").strip(),
                "count": int(ev.get("count") or 1),
            }
        )
    picked.sort(key=lambda e: parse_time(e["time"]) or datetime.min.replace(tzinfo=UTC))
    return picked[-limit:] if limit > 0 else []


def profile_in_effect(deployments: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The traffic profile recorded on the API and worker Deployments.

    ``name`` is the profile when both carry the same one, ``mixed`` when they differ, None when
    tradewise never recorded one.
    """
    by_component: dict[str, str | None] = {}
    applied: list[str] = []
    for dep in deployments:
        comp = _component_of(dep) or _component_by_name(_name(dep))
        if comp not in ("api", "worker"):
            continue
        ann = _annotations(dep)
        by_component[comp] = ann.get(PROFILE_ANNOTATION)
        if ann.get(APPLIED_AT_ANNOTATION):
            applied.append(ann[APPLIED_AT_ANNOTATION])
    values = {v for v in by_component.values()}
    if not by_component or values == {None}:
        name = None
    elif len(values) == 1:
        name = next(iter(values))
    else:
        name = "mixed"
    return {
        "name": name,
        "applied_at": max(applied) if applied else None,
        "by_component": by_component,
    }


def _component_by_name(name: str) -> str:
    for comp, dep_name in DEPLOYMENTS.items():
        if name == dep_name or name.startswith(f"{dep_name}-"):  # -blue / -green: a slot
            return comp
    return ""


def status_report(
    env: Environment,
    deployments: Sequence[Mapping[str, Any]],
    hpas: Sequence[Mapping[str, Any]],
    events: Sequence[Mapping[str, Any]],
    event_limit: int = 10,
    profiles: Mapping[str, Profile] | None = None,
) -> dict[str, Any]:
    """The ``scale status`` document: Deployments, HPAs, the profile in effect, recent events.

    With ``profiles`` (the config's), ``warnings`` names each HPA whose floor no longer matches
    the profile recorded on it (for example after an apply that reset the HPA's bounds).
    """
    names = {_name(o) for o in list(deployments) + list(hpas)}
    hpa_rows = sorted((hpa_row(h) for h in hpas), key=lambda r: str(r["name"]))
    return {
        "environment": env.name,
        "namespace": env.namespace,
        "profile": profile_in_effect(deployments),
        "deployments": sorted(
            (deployment_row(d) for d in deployments), key=lambda r: str(r["name"])
        ),
        "hpas": hpa_rows,
        "events": scaling_events(events, names, event_limit),
        "warnings": profile_drift(hpa_rows, profiles or {}),
    }


def profile_drift(
    hpa_rows: Sequence[Mapping[str, Any]], profiles: Mapping[str, Profile]
) -> list[str]:
    """One sentence per HPA whose floor differs from what its recorded profile set."""
    out = []
    for row in hpa_rows:
        recorded = row.get("profile")
        component = row.get("component") or _component_by_name(str(row.get("target") or ""))
        if recorded not in profiles or component not in ("api", "worker"):
            continue
        profile = profiles[str(recorded)]
        wanted = profile.api if component == "api" else profile.workers
        if wanted > 0 and row["min"] != wanted:
            out.append(
                f"{row['name']} has a floor of {row['min']}, not the {wanted} of profile "
                f"{recorded} recorded on it (reset since?): re-apply it with "
                f"`tradewise scale traffic {recorded}`"
            )
    return out


def _profile_text(profile: Mapping[str, Any]) -> str:
    name = profile.get("name")
    if name is None:
        return "none recorded (no `tradewise scale` has run here)"
    if name == "mixed":
        parts = ", ".join(f"{c}={p or 'none'}" for c, p in sorted(profile["by_component"].items()))
        return f"mixed ({parts})"
    return str(name)


def status_summary(report: Mapping[str, Any], now: datetime) -> list[str]:
    """The lines above the ``scale status`` tables: where, which profile, since when."""
    prof = report["profile"]
    applied = prof.get("applied_at")
    where = report["environment"]
    if report.get("namespace"):
        where += f" (namespace {report['namespace']})"
    lines = [f"environment: {where}", f"traffic profile: {_profile_text(prof)}"]
    if applied:
        lines.append(f"applied: {applied} ({age(applied, now)} ago)")
    if not report["events"]:
        lines.append("recent scaling events: none")
    lines.extend(f"warning: {w}" for w in report.get("warnings", []))
    return lines


def status_tables(report: Mapping[str, Any], now: datetime) -> list[Rows]:
    """The ``scale status`` report as tables: Deployments, HPAs, events (when there are any)."""
    tables = [
        Rows(
            "Deployments",
            ["NAME", "DESIRED", "UP-TO-DATE", "READY", "AVAILABLE", "PROFILE"],
            [
                [
                    d["name"],
                    d["desired"],
                    d["updated"],
                    d["ready"],
                    d["available"],
                    d["profile"] or "-",
                ]
                for d in report["deployments"]
            ],
        )
    ]
    hpa_rows = []
    for h in report["hpas"]:
        metrics = ", ".join(
            f"{m['name']} {m['current'] or '<unknown>'}/{m['target'] or '?'}" for m in h["metrics"]
        )
        last = h["last_scale_time"]
        hpa_rows.append(
            [
                h["name"],
                h["min"],
                h["max"],
                "-" if h["current"] is None else h["current"],
                "-" if h["desired"] is None else h["desired"],
                metrics or "-",
                f"{age(last, now)} ago" if last else "never",
            ]
        )
    if hpa_rows:
        tables.append(
            Rows(
                "Autoscalers",
                [
                    "NAME",
                    "MIN",
                    "MAX",
                    "CURRENT",
                    "DESIRED",
                    "METRICS (CURRENT/TARGET)",
                    "LAST SCALE",
                ],
                hpa_rows,
            )
        )
    if report["events"]:
        tables.append(
            Rows(
                "Recent scaling events",
                ["AGE", "TYPE", "OBJECT", "REASON", "MESSAGE"],
                [
                    [age(e["time"], now), e["type"], e["object"], e["reason"], e["message"]]
                    for e in report["events"]
                ],
            )
        )
    return tables


def local_status_report(
    env: Environment,
    processes: Mapping[str, int],
    profile: str | None,
    applied_at: str | None = None,
) -> dict[str, Any]:
    """The ``scale status`` document of a local or compose stack: process counts, no HPAs."""
    return {
        "environment": env.name,
        "namespace": None,
        "profile": {
            "name": profile,
            "applied_at": applied_at if profile else None,
            "by_component": {c: profile for c in ("api", "worker") if c in processes},
        },
        "deployments": [
            {
                "name": f"{comp} processes",
                "component": comp,
                "desired": n,
                "updated": n,
                "ready": n,
                "available": n,
                "profile": profile,
                "profile_applied_at": None,
            }
            for comp, n in processes.items()
        ],
        "hpas": [],
        "events": [],
        "warnings": [],
    }
