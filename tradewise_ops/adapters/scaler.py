"""Scaling a running environment: read what runs, carry out a ``core.scaling.ScalePlan``.

One interface, two places: ``ClusterScaler`` (a Kubernetes namespace, through ``KubeGateway``) and
``StackScaler`` (the ``local`` / ``compose`` stack). A command reads, plans in ``core`` and
applies, and never needs to know which one it has::

    with scaler_for(env, config) as scaler:
        plan = plan_profile(env, profile, scaler.read(), now)
        scaler.check(plan)
        scaler.apply(plan)

On a cluster the order of the writes is the rule that makes a choice stick: the maintenance
Ingress first (the pods that stay are not hit harder while the others go), then each component's
HPA bounds (so the HPA does not undo the change), then its scale subresource, then the annotations
that record the profile on the Deployment.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tradewise_ops.adapters.live import maintenance_page_deployed
from tradewise_ops.core.scaling import (
    APPLIED_AT_ANNOTATION,
    DEPLOYMENTS,
    HPAS,
    PROFILE_ANNOTATION,
    LiveComponent,
    ScalePlan,
    live_component,
    local_status_report,
    status_report,
)
from tradewise_ops.errors import (
    AbortedError,
    BadInputError,
    NotFoundError,
    Terminated,
    UnreachableError,
)

if TYPE_CHECKING:
    from tradewise_ops.adapters.kube import KubeGateway
    from tradewise_ops.core.config import Config, Environment, Profile

PART_OF = "app.kubernetes.io/part-of=tradewise"
# the local stacks scale the API and the workers; precompute is not scaled on its own
STACK_COMPONENTS = ("api", "worker")


class Scaler(ABC):
    """Reads and changes the replicas of one environment's components."""

    environment: Environment

    @abstractmethod
    def read(self) -> dict[str, LiveComponent]:
        """The live replicas, HPA bounds and recorded profile of each scaled component."""

    @abstractmethod
    def status(self, profiles: Mapping[str, Profile]) -> dict[str, Any]:
        """What ``tradewise scale status`` shows, as data (``core.scaling``'s status report)."""

    def nodes(self) -> list[dict[str, Any]] | None:
        """The cluster's Node objects (what a plan's pod requests must fit on); None: no nodes.

        ``ForbiddenError`` when the user may not list Nodes (a ClusterRole many users lack).
        """
        return None

    def check(self, plan: ScalePlan) -> None:  # noqa: B027 - a hook: nothing to check by default
        """Refuse ``plan`` before anything changes when the environment cannot carry it out."""

    @abstractmethod
    def apply(self, plan: ScalePlan) -> None:
        """Carry out ``plan``, its steps in order."""

    def close(self) -> None:  # noqa: B027 - a hook: nothing to release by default
        """Release connections."""

    def __enter__(self) -> Scaler:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class ClusterScaler(Scaler):
    """Scaling in a Kubernetes namespace: Deployments through their HPAs, HPA-first."""

    def __init__(
        self,
        gateway: KubeGateway,
        env: Environment,
        config: Config,
        on_step: Callable[[str], None] | None = None,
    ) -> None:
        self.gateway = gateway
        self.environment = env
        self.config = config
        self._step = on_step or (lambda _m: None)

    def read(self) -> dict[str, LiveComponent]:
        """Each component's HPA and the Deployment it targets: only ``get`` by name (the
        CronJobs' Role grants get and patch, no list)."""
        live = {}
        for component, name in DEPLOYMENTS.items():
            hpa_name = HPAS.get(component)
            hpa = self.gateway.find("HorizontalPodAutoscaler", hpa_name) if hpa_name else None
            # an HPA names the Deployment it scales (after a blue-green switch, the live slot,
            # e.g. tradewise-api-deployment-blue); without one, the Deployment goes by its name
            target = ((hpa or {}).get("spec") or {}).get("scaleTargetRef") or {}
            dep = self.gateway.find("Deployment", target.get("name") or name)
            live[component] = live_component(component, dep, hpa)
        return live

    def status(self, profiles: Mapping[str, Profile]) -> dict[str, Any]:
        """Deployments, HPAs and events of the namespace: three reads."""
        deployments = self.gateway.list("Deployment", PART_OF)
        hpas = self.gateway.list("HorizontalPodAutoscaler", PART_OF)
        events = self.gateway.events()
        return status_report(self.environment, deployments, hpas, events, profiles=profiles)

    def nodes(self) -> list[dict[str, Any]] | None:
        """Every Node: one list (a known kind, so no discovery request)."""
        return self.gateway.list("Node", api_version="v1")

    def check(self, plan: ScalePlan) -> None:
        """With maintenance (emergency-down --maintenance): the page must be deployed, as
        ``tradewise maintenance on`` requires; never point the Ingress at a page that is not."""
        env = self.environment
        if plan.maintenance and not maintenance_page_deployed(self.gateway):
            raise NotFoundError(
                f"the maintenance page is not deployed in {env.name} ({env.namespace}): "
                "nothing was changed",
                hint=f"run `tradewise deploy {env.name}` first, or leave out --maintenance",
            )

    def apply(self, plan: ScalePlan) -> None:
        """Maintenance first (the Ingress alone, as ``tradewise maintenance on``), then per
        component: HPA bounds, the scale subresource, the profile's annotations."""
        if plan.maintenance:
            from tradewise_ops.core.render import render_ingress

            self.gateway.apply(render_ingress(self.config, self.environment, maintenance=True))
            self._step(f"maintenance mode on for {self.environment.name}")
        annotations = plan.annotations()
        done: list[str] = []
        try:
            for step in plan.steps:
                patch = step.hpa_patch(annotations)
                if patch is not None and step.hpa is not None:
                    self.gateway.patch("HorizontalPodAutoscaler", step.hpa, patch)
                    done.append(f"HorizontalPodAutoscaler/{step.hpa} bounds")
                self.gateway.scale("Deployment", step.target, step.replicas)
                done.append(f"Deployment/{step.target} to {step.replicas}")
                self.gateway.patch(
                    "Deployment", step.target, {"metadata": {"annotations": annotations}}
                )
                done.append(f"Deployment/{step.target} profile")
        except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM (``errors.Terminated``)
            why = "SIGTERM" if isinstance(exc, Terminated) else "Ctrl-C"
            raise AbortedError(
                f"interrupted ({why}) while scaling {self.environment.name}: applied "
                + (", ".join(done) or "nothing")
                + f"; {plan.action} is incomplete: run it again"
            ) from None

    def close(self) -> None:
        """Release the gateway's connections."""
        self.gateway.close()


class StackScaler(Scaler):
    """Scaling the local stack (processes or compose services) of a ``local``/``compose`` env.

    There are no objects to annotate: the profile goes into the stack's state dir with the counts
    it set, so a profile is shown only while those counts still hold.
    """

    def __init__(self, stack: Any, env: Environment) -> None:
        self.stack = stack
        self.environment = env

    def read(self) -> dict[str, LiveComponent]:
        """The API's and the workers' process counts, with the profile while it still holds."""
        counts = self.stack.counts()
        profile = self._record(counts).get(PROFILE_ANNOTATION)
        return {c: LiveComponent(c, int(counts.get(c, 0)), None, profile) for c in STACK_COMPONENTS}

    def status(self, profiles: Mapping[str, Profile]) -> dict[str, Any]:
        """Process counts and the recorded profile."""
        counts = self.stack.counts()
        record = self._record(counts)
        return local_status_report(
            self.environment,
            {c: int(counts.get(c, 0)) for c in ("api", "worker", "precompute")},
            record.get(PROFILE_ANNOTATION),
            record.get(APPLIED_AT_ANNOTATION),
        )

    def apply(self, plan: ScalePlan) -> None:
        """Record the profile with the counts it sets, then scale each component's processes.

        The record first: it is what the stack should run (a monitor's ``wanted``), the
        processes follow; ``scale status`` shows the profile once the counts hold.
        """
        for step in plan.steps:
            if step.component not in STACK_COMPONENTS:
                raise BadInputError(
                    f"the {self.environment.name} stack cannot scale {step.component} on its own"
                )
        from tradewise_ops.adapters.local.common import write_profile_record

        counts = {**self.stack.wanted(), **{s.component: s.replicas for s in plan.steps}}
        write_profile_record(self._state_dir(), plan.annotations(), counts)
        for step in plan.steps:
            self.stack.scale(step.component, step.replicas, record=False)

    def _state_dir(self) -> Path:
        return Path(self.stack.state_dir)

    def _record(self, counts: dict[str, int]) -> dict[str, str]:
        """The recorded profile annotations, empty when the counts it set no longer hold."""
        from tradewise_ops.adapters.local.common import read_profile_record

        return read_profile_record(self._state_dir(), counts)


def scaler_for(
    env: Environment,
    config: Config,
    *,
    on_step: Callable[[str], None] | None = None,
    must_run: bool = True,
) -> Scaler:
    """The scaler of ``env``: its cluster namespace, or its local stack.

    ``must_run``: a local stack that is not running is ``UnreachableError`` (nothing to scale);
    without it (``scale status``) an idle stack reads as zero processes.
    """
    if env.is_kubernetes:
        from tradewise_ops.adapters.kube import KubeGateway

        return ClusterScaler(KubeGateway.from_environment(env), env, config, on_step)
    from tradewise_ops.adapters.local import stack_for

    stack = stack_for(env)
    if must_run and not stack.is_up():
        raise UnreachableError(
            f"the {env.name} stack is not running: nothing to scale",
            hint=f"start it with: tradewise local up --env {env.name}",
        )
    return StackScaler(stack, env)
