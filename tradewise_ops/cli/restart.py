"""``tradewise restart [api|worker|precompute|all]``: a rolling restart, honest about its end."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

from tradewise_ops.cli.state import State, get_state
from tradewise_ops.cli.terminal import RolloutProgress, TableData
from tradewise_ops.core.units import parse_duration
from tradewise_ops.errors import BadInputError, GoalMissedError

if TYPE_CHECKING:
    from tradewise_ops.adapters.restarter import RestartOutcome
    from tradewise_ops.core.config import Environment
    from tradewise_ops.core.restart import RestartPlan


def register(app: typer.Typer) -> None:
    """Add ``restart`` to the root app."""
    app.command("restart")(restart)


def restart(
    ctx: typer.Context,
    target: str = typer.Argument(
        "all", metavar="[api|worker|precompute|all]", help="What to restart (default: all)."
    ),
    wait: bool = typer.Option(True, "--wait/--no-wait", help="Wait until the new pods are ready."),
    timeout: str = typer.Option("5m", "--timeout", help="How long to wait for the new pods."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the plan; change nothing."),
) -> None:
    """Rolling restart: new pods (or processes) replace the old ones, no request dropped.

    Kubernetes: the pod template gets `kubectl.kubernetes.io/restartedAt` (as `kubectl rollout
    restart`), on the live blue-green slot's API Deployment; waits like deploy and names the new
    pods. Local: the API by gunicorn's graceful reload, each worker and the scheduler in turn.
    Compose: the same, container by container (HUP to the API's gunicorn, `docker restart`).
    """
    from tradewise_ops.core.restart import components_for

    state = get_state(ctx)
    env = state.environment()
    components = components_for(target)
    seconds = parse_duration(timeout, what="--timeout")
    if env.kind in ("local", "compose"):
        _restart_local(state, env, components, seconds, dry_run)
        return
    if not env.is_kubernetes:
        raise BadInputError(f"restart of a {env.kind} environment is not supported")
    from tradewise_ops.adapters.restarter import Restarter

    gw = state.kube_gateway(env)
    progress = RolloutProgress(state.terminal)
    restarter = Restarter(
        gw,
        env.name,
        env.namespace,
        on_step=state.terminal.step,
        on_progress=progress,
        # the release lock (a Lease), as deploy and scale hold it: one writer at a time
        lock=lambda what: state.release_lock(env, gw),
    )
    plan = restarter.plan(components)
    if dry_run:
        _show_plan(state, plan)
        return
    state.confirm(env, f"restart {', '.join(s.name for s in plan.steps)}")
    with progress:
        outcome = restarter.apply(plan, wait=wait, timeout=seconds)
    _show_outcome(state, outcome)


def _restart_local(
    state: State, env: Environment, components: tuple[str, ...], seconds: float, dry_run: bool
) -> None:
    from tradewise_ops.adapters.local import LocalStack
    from tradewise_ops.adapters.local.compose import ComposeStack
    from tradewise_ops.adapters.restarter import apply_local, plan_local

    stack: LocalStack | ComposeStack
    if env.kind == "compose":
        stack = ComposeStack(env)
    else:
        stack = LocalStack(env, progress=state.terminal.info)
    plan = plan_local(stack, components)
    if dry_run:
        _show_plan(state, plan)
        return
    outcome = apply_local(stack, plan, timeout=seconds, on_step=state.terminal.step)
    _show_outcome(state, outcome)


def _show_plan(state: State, plan: RestartPlan) -> None:
    where = f"{plan.environment}" + (f" ({plan.namespace})" if plan.namespace else "")
    title = f"restart plan for {where}: {len(plan.steps)} steps, in order"
    if plan.slot:
        title += f"; the API serves from blue-green slot {plan.slot}"
    state.terminal.result(
        {**plan.to_dict(), "dry_run": True},
        TableData(["ACTION", "OBJECT", "DETAIL"], plan.rows(), title=title),
    )
    state.terminal.info("dry run: nothing was changed")


def _show_outcome(state: State, outcome: RestartOutcome) -> None:
    rows = [w.row() for w in outcome.workloads]
    title = f"{outcome.plan.environment}: {outcome.message}"
    state.terminal.result(
        outcome.to_dict(), TableData(["COMPONENT", "WORKLOAD", "STATE", "NEW PODS"], rows, title)
    )
    if outcome.ok:
        state.terminal.success(outcome.message)
        return
    raise GoalMissedError(outcome.message)
