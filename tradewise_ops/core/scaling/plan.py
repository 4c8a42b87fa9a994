"""The plans of ``tradewise scale api|workers|traffic|emergency-down``, and what they start from.

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
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from tradewise_ops.core.config import Environment, Profile
from tradewise_ops.core.scaling.objects import (
    APPLIED_AT_ANNOTATION,
    COMMAND_COMPONENTS,
    DEPLOYMENTS,
    EMERGENCY_DOWN,
    HPAS,
    MANUAL,
    PROFILE_ANNOTATION,
    annotations_of,
    iso_utc,
)
from tradewise_ops.errors import BadInputError, NotFoundError

_WHOLE = re.compile(r"^\d+$")


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


def _profile_of(obj: Mapping[str, Any] | None) -> str | None:
    return annotations_of(obj).get(PROFILE_ANNOTATION)


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
