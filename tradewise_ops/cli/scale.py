"""``tradewise scale``: status, api N, workers N, traffic PROFILE, emergency-down (HPA-aware)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from tradewise_ops.cli.state import State, get_state
from tradewise_ops.cli.terminal import TableData
from tradewise_ops.errors import BadInputError, NotFoundError, UnreachableError

if TYPE_CHECKING:  # core.scaling and the config model load when a command runs, not for --help
    from types import ModuleType

    from tradewise_ops.core.config import Environment
    from tradewise_ops.core.scaling import LiveComponent, ScalePlan


def _scaling() -> ModuleType:
    from tradewise_ops.core import scaling

    return scaling


# ``scale api -1`` must reach our own check (one sentence, exit 2), not click's "no such option"
_NUMBER_ARG = {"ignore_unknown_options": True}
MAINTENANCE_DEPLOYMENT = "tradewise-maintenance-deployment"


def register(app: typer.Typer) -> None:
    """Add the ``scale`` group to the root app."""
    group = typer.Typer(
        name="scale",
        help="Scaling, HPA-aware: status, api N, workers N, traffic PROFILE, emergency-down.",
        no_args_is_help=True,
        rich_markup_mode=None,
    )
    group.command("status")(status)
    group.command("api", context_settings=_NUMBER_ARG)(api)
    group.command("workers", context_settings=_NUMBER_ARG)(workers)
    group.command("traffic")(traffic)
    group.command("emergency-down")(emergency_down)
    app.add_typer(group, name="scale")


_DRY_RUN = typer.Option(False, "--dry-run", help="Print the plan; change nothing.")


def status(ctx: typer.Context) -> None:
    """Deployments, HPAs (bounds, metrics, last scale), the traffic profile, recent events."""
    state = get_state(ctx)
    env = state.environment()
    if env.is_kubernetes:
        report = _cluster_status(state, env)
    else:
        stack = _stack(env, must_run=False)
        counts = stack.counts()
        record = _local_record(stack, env, counts)
        report = _scaling().local_status_report(
            env,
            {c: int(counts.get(c, 0)) for c in ("api", "worker", "precompute")},
            record.get(_scaling().PROFILE_ANNOTATION),
            record.get(_scaling().APPLIED_AT_ANNOTATION),
        )
    now = datetime.now(UTC)
    tables = [
        TableData(t.columns, t.rows, title=t.title) for t in _scaling().status_tables(report, now)
    ]
    state.terminal.result(report, _group(_scaling().status_summary(report, now), tables))


def api(
    ctx: typer.Context,
    replicas: str = typer.Argument(..., metavar="N", help="API replicas (0 to the cap)."),
    dry_run: bool = _DRY_RUN,
) -> None:
    """Scale the API to N replicas; where an HPA manages it, its floor moves to N."""
    _manual(ctx, "api", replicas, dry_run)


def workers(
    ctx: typer.Context,
    replicas: str = typer.Argument(..., metavar="N", help="Worker replicas (0 to the cap)."),
    dry_run: bool = _DRY_RUN,
) -> None:
    """Scale the workers to N replicas; where an HPA manages them, its floor moves to N."""
    _manual(ctx, "worker", replicas, dry_run)


def traffic(
    ctx: typer.Context,
    profile: str = typer.Argument(..., metavar="PROFILE", help="low, medium, high or peak."),
    dry_run: bool = _DRY_RUN,
) -> None:
    """Apply a traffic profile from the config to the API, the workers and their HPAs."""
    state = get_state(ctx)
    env = state.environment()
    if profile == _scaling().EMERGENCY_DOWN:  # schedules may name it (config allows it)
        _run(state, env, dry_run, lambda live, now: _scaling().plan_emergency_down(env, live, now))
        return
    chosen = state.config().profile(profile)
    _run(state, env, dry_run, lambda live, now: _scaling().plan_profile(env, chosen, live, now))


def emergency_down(
    ctx: typer.Context,
    api_floor: str | None = typer.Option(
        None, "--api", metavar="N", help="API replicas instead of the floor."
    ),
    worker_floor: str | None = typer.Option(
        None, "--workers", metavar="N", help="Worker replicas instead of the floor."
    ),
    maintenance: bool = typer.Option(
        False, "--maintenance", help="Also switch the environment to maintenance mode."
    ),
    dry_run: bool = _DRY_RUN,
) -> None:
    """Overload response: precompute to 0, API and workers to their floors, HPAs pinned there.

    Undo it by applying a traffic profile (``tradewise scale traffic medium``).
    """
    state = get_state(ctx)
    env = state.environment()
    if maintenance:
        _scaling().check_maintenance(env)
    overrides: dict[str, int] = {}
    if api_floor is not None:
        overrides["api"] = _scaling().parse_replicas(api_floor, env.max_replicas, "--api")
    if worker_floor is not None:
        overrides["worker"] = _scaling().parse_replicas(worker_floor, env.max_replicas, "--workers")
    _run(
        state,
        env,
        dry_run,
        lambda live, now: _scaling().plan_emergency_down(env, live, now, overrides, maintenance),
    )


# --------------------------------------------------------------------------------------------
def _manual(ctx: typer.Context, component: str, text: str, dry_run: bool) -> None:
    state = get_state(ctx)
    env = state.environment()
    word = "workers" if component == "worker" else component
    replicas = _scaling().parse_replicas(text, env.max_replicas, f"{word} replicas")
    _run(
        state,
        env,
        dry_run,
        lambda live, now: _scaling().plan_manual(env, component, replicas, live, now),
    )


def _run(state: State, env: Environment, dry_run: bool, build: Any) -> None:
    """Read the live state, build the plan, show it, and (unless ``--dry-run``) apply it."""
    if env.is_kubernetes:
        gateway = _gateway(state, env)
        try:
            _plan_and_apply(state, env, dry_run, build, gateway, None)
        finally:
            gateway.close()
    else:
        _plan_and_apply(state, env, dry_run, build, None, _stack(env))


def _plan_and_apply(
    state: State, env: Environment, dry_run: bool, build: Any, gateway: Any, stack: Any
) -> None:
    term = state.terminal
    now = datetime.now(UTC)
    if gateway is not None:
        plan: ScalePlan = build(_cluster_live(gateway, env), now)
    else:
        plan = build(_local_live(stack, env), now)
    for warning in plan.warnings:
        term.warn(warning)
    columns, rows = plan.rows()
    if dry_run:
        term.result(
            {**plan.to_dict(), "dry_run": True, "applied": False},
            TableData(columns, rows, title=f"Plan: {plan.action} on {env.name} (dry run)"),
        )
        for note in plan.notes:
            term.info(note)
        return
    if plan.maintenance and gateway is not None:
        _check_maintenance_page(gateway, env)
    state.confirm(env, plan.action)
    if gateway is not None:
        _cluster_apply(state, gateway, env, plan)
    else:
        _local_apply(stack, env, plan)
    term.result(
        {**plan.to_dict(), "dry_run": False, "applied": True},
        TableData(columns, rows, title=f"{plan.action} on {env.name}"),
    )
    for note in plan.notes:
        term.info(note)
    term.success(f"{plan.action}: done on {env.name} (recorded as {plan.profile!r})")


def _group(lines: list[str], tables: list[TableData]) -> Any:
    from rich.console import Group
    from rich.text import Text

    from tradewise_ops.cli.terminal import render_table

    return Group(*(Text(line) for line in lines), *(render_table(t) for t in tables))


# -- Kubernetes --------------------------------------------------------------------------------
def _gateway(state: State, env: Environment) -> Any:
    from tradewise_ops.adapters.kube import KubeGateway

    return KubeGateway.from_environment(env)


def _cluster_live(gateway: Any, env: Environment) -> dict[str, LiveComponent]:
    # only `get` (by name): the CronJobs' Role grants get and patch, no list
    live = {}
    for component, name in _scaling().DEPLOYMENTS.items():
        hpa_name = _scaling().HPAS.get(component)
        hpa = gateway.find("HorizontalPodAutoscaler", hpa_name) if hpa_name else None
        # an HPA names the Deployment it scales (after a blue-green switch, the live slot,
        # e.g. tradewise-api-deployment-blue); without one, the Deployment goes by its name
        target = ((hpa or {}).get("spec") or {}).get("scaleTargetRef") or {}
        dep = gateway.find("Deployment", target.get("name") or name)
        live[component] = _scaling().live_component(component, dep, hpa)
    return live


def _check_maintenance_page(gateway: Any, env: Environment) -> None:
    # as `tradewise maintenance on`: never point the Ingress at a page that is not deployed
    if gateway.find("Deployment", MAINTENANCE_DEPLOYMENT) is None:
        raise NotFoundError(
            f"the maintenance page is not deployed in {env.name} ({env.namespace}): "
            "nothing was changed",
            hint=f"run `tradewise deploy {env.name}` first, or leave out --maintenance",
        )


def _cluster_apply(state: State, gateway: Any, env: Environment, plan: ScalePlan) -> None:
    # maintenance first (what `tradewise maintenance on` applies: the Ingress alone), so the pods
    # that stay are not hit harder while the others go
    if plan.maintenance:
        from tradewise_ops.core.render import render_ingress

        gateway.apply(render_ingress(state.config(), env, maintenance=True))
        state.terminal.step(f"maintenance mode on for {env.name}")
    # HPA bounds first (so the HPA does not undo the change), then the scale subresource, then
    # the annotations that record the profile on the Deployment
    annotations = plan.annotations()
    for step in plan.steps:
        patch = step.hpa_patch(annotations)
        if patch is not None and step.hpa is not None:
            gateway.patch("HorizontalPodAutoscaler", step.hpa, patch)
        gateway.scale("Deployment", step.target, step.replicas)
        gateway.patch("Deployment", step.target, {"metadata": {"annotations": annotations}})


def _cluster_status(state: State, env: Environment) -> dict[str, Any]:
    gateway = _gateway(state, env)
    try:
        selector = "app.kubernetes.io/part-of=tradewise"
        deployments = gateway.list("Deployment", selector)
        hpas = gateway.list("HorizontalPodAutoscaler", selector)
        events = gateway.events()
    finally:
        gateway.close()
    return _scaling().status_report(
        env, deployments, hpas, events, profiles=state.config().profiles
    )


# -- local and compose -------------------------------------------------------------------------
def _stack(env: Environment, must_run: bool = True) -> Any:
    from tradewise_ops.adapters.local import stack_for

    stack = stack_for(env)
    if must_run and not stack.is_up():
        raise UnreachableError(
            f"the {env.name} stack is not running: nothing to scale",
            hint=f"start it with: tradewise local up --env {env.name}",
        )
    return stack


def _local_live(stack: Any, env: Environment) -> dict[str, LiveComponent]:
    counts = stack.counts()
    profile = _local_record(stack, env, counts).get(_scaling().PROFILE_ANNOTATION)
    # the local stacks scale the API and the workers; precompute is not scaled on its own
    return {
        c: _scaling().LiveComponent(c, int(counts.get(c, 0)), None, profile)
        for c in ("api", "worker")
    }


def _local_apply(stack: Any, env: Environment, plan: ScalePlan) -> None:
    for step in plan.steps:
        if step.component not in ("api", "worker"):
            raise BadInputError(f"the {env.name} stack cannot scale {step.component} on its own")
        stack.scale(step.component, step.replicas)
    # no objects to annotate here: the profile goes into the stack's state dir, with the counts
    # it set, so a profile is shown only while those counts still hold
    from tradewise_ops.adapters.local.common import write_profile_record

    counts = {s.component: s.replicas for s in plan.steps}
    write_profile_record(_state_dir(stack, env), plan.annotations(), counts)


def _state_dir(stack: Any, env: Environment) -> Path:
    return Path(getattr(stack, "state_dir", None) or Path(env.local.state_dir).expanduser())


def _local_record(stack: Any, env: Environment, counts: dict[str, int]) -> dict[str, str]:
    """The recorded profile annotations, empty when the counts it set no longer hold."""
    from tradewise_ops.adapters.local.common import read_profile_record

    return read_profile_record(_state_dir(stack, env), counts)
