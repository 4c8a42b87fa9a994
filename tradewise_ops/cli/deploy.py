"""``tradewise deploy``, ``rollback``, ``history``: releases on Kubernetes (or the local stack)."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

import typer

from tradewise_ops.cli.state import State, get_state
from tradewise_ops.cli.terminal import RolloutProgress, TableData
from tradewise_ops.core.units import parse_duration
from tradewise_ops.errors import BadInputError, GoalMissedError

if TYPE_CHECKING:
    from tradewise_ops.adapters.deployer import Deployer, DeployOutcome
    from tradewise_ops.adapters.kube import KubeGateway
    from tradewise_ops.core.config import Environment
    from tradewise_ops.core.plan import DeployPlan


def register(app: typer.Typer) -> None:
    """Add ``deploy``, ``rollback`` and ``history`` to the root app."""
    app.command("deploy")(deploy)
    app.command("rollback")(rollback)
    app.command("history")(history)


_ENV_ARG = typer.Argument(None, metavar="ENV", help="Environment (default: --env or the config's).")
_TIMEOUT = typer.Option("5m", "--timeout", help="How long to wait for a healthy rollout.")
_WAIT = typer.Option(True, "--wait/--no-wait", help="Wait until every workload is healthy.")
_WAIT_FOR_LOCK = typer.Option(
    None,
    "--wait-for-lock",
    metavar="[=DURATION]",
    help="When another deploy, rollback or scale of ENV holds its lock, wait for it (up to "
    "DURATION, alone 30m) instead of failing.",
)
_RESET_SCALING = typer.Option(
    False,
    "--reset-scaling",
    help="Apply the config's replica bounds even where `tradewise scale` set others (a traffic "
    "profile, scale api N, emergency-down), and drop the profile's annotations.",
)


def deployer_for(
    state: State, env: Environment, gw: KubeGateway, progress: RolloutProgress | None = None
) -> Deployer:
    """A ``Deployer`` that reports its steps and live progress on stderr (with --verbose, each
    step of the plan as it is carried out, numbered as the dry run prints them)."""
    from tradewise_ops.adapters.deployer import Deployer
    from tradewise_ops.core.plan import step_line

    term = state.terminal
    return Deployer(
        gw,
        env.name,
        namespace=env.namespace,
        user=os.environ.get("USER") or gw.user or "unknown",
        on_step=term.step,
        on_progress=progress if progress is not None else RolloutProgress(state.terminal),
        on_warning=term.warn,
        on_execute=lambda number, step: term.debug(step_line(number, step)),
    )


# -- deploy ----------------------------------------------------------------------------------
def deploy(
    ctx: typer.Context,
    env_name: str = _ENV_ARG,
    tag: str = typer.Option(
        None, "--tag", help="Image tag (default: the running release's tag, else latest)."
    ),
    build: bool = typer.Option(False, "--build", help="Build and push the images first."),
    wait: bool = _WAIT,
    timeout: str = _TIMEOUT,
    atomic: bool = typer.Option(
        False, "--atomic", help="Roll back to the previous release when the rollout fails."
    ),
    dry_run: bool = typer.Option(
        False,
        "--dry-run",
        help="Print the plan, step by step (create / change / prune); change nothing.",
    ),
    strict: bool = typer.Option(
        False, "--strict", help="Fail (before any change) when a kind is not served."
    ),
    change_cause: str = typer.Option(
        None, "--change-cause", help="Why (default: the command line); shown by history."
    ),
    reset_scaling: bool = _RESET_SCALING,
    wait_for_lock: str = _WAIT_FOR_LOCK,
    no_pin: bool = typer.Option(
        False, "--no-pin", help="Use the tag even where `tradewise push` recorded a digest."
    ),
    rollback_timeout: str = typer.Option(
        None,
        "--rollback-timeout",
        metavar="DURATION",
        help="With --atomic: how long the rollback may wait (default: --timeout), a budget of "
        "its own.",
    ),
    strategy: str = typer.Option(
        None,
        "--strategy",
        metavar="rolling|blue-green",
        help="rolling: update the API in place; blue-green: start the new version beside the "
        "live one, switch the Service once it is ready, delete the old (default: the running "
        "release's strategy, else rolling).",
    ),
) -> None:
    """Render, validate, apply in order (server-side apply), prune, wait for a healthy rollout.

    HPA bounds (and replicas) that `tradewise scale` set, e.g. a traffic profile, are kept
    unless --reset-scaling.
    """
    state = get_state(ctx)
    env = state.environment(env_name)
    seconds = parse_duration(timeout, what="--timeout")
    back = parse_duration(rollback_timeout, what="--rollback-timeout") if rollback_timeout else None
    if not env.is_kubernetes:
        _deploy_local(state, env, dry_run, seconds)
        return
    from tradewise_ops.adapters.live import maintenance_is_on

    term = state.terminal
    gw = state.kube_gateway(env)
    progress = RolloutProgress(state.terminal)
    deployer = deployer_for(state, env, gw, progress)
    if not dry_run:  # one writer at a time: refused (or waits) before anything changes
        _take_lock(state, env, gw, wait_for_lock)
    releases = deployer.records.list()
    if not dry_run:
        _say_interrupted(state, releases)
    from tradewise_ops.core.bluegreen import ROLLING, check_strategy
    from tradewise_ops.core.release import current

    running = current(releases)
    if tag is None:
        tag = running.tag if running is not None else None
        if tag:
            term.info(f"no --tag: keeping the running release's tag {tag}")
    if strategy is None:
        strategy = running.strategy if running is not None else ROLLING
        if strategy != ROLLING:
            term.info(f"no --strategy: keeping the running release's strategy {strategy}")
    if check_strategy(strategy) != ROLLING and not wait:
        raise BadInputError(f"--strategy {strategy} needs --wait: it switches only when ready")
    digests = _build(state, env, tag) if build and not dry_run else None
    if digests is None and not no_pin:  # after `tradewise push`: pin by the recorded digests
        digests = state.pinned_digests(env, tag)
    maintenance = maintenance_is_on(gw)
    if maintenance:
        term.warn("maintenance is on: the Ingress stays on the maintenance page")
    rendered = state.render_checked(env, tag, maintenance=maintenance, image_digests=digests)
    # one plan: the dry run prints its steps, a deploy carries out exactly those steps (the dry
    # run also reads each object, to say create / update / unchanged)
    plan = deployer.plan(
        rendered,
        tag,
        strict=strict,
        releases=releases,
        with_live=dry_run,
        reset_scaling=reset_scaling,
        strategy=strategy,
        wait=wait,
    )
    if dry_run:
        _show_plan(state, plan, atomic=atomic)
        return
    state.confirm(env, f"deploy {tag or 'latest'}")
    cause = change_cause or " ".join(
        ["tradewise deploy", env.name, *(["--tag", tag] if tag else [])]
    )
    with progress:
        outcome = deployer.apply(plan, cause, timeout=seconds, atomic=atomic, rollback_timeout=back)
    _show_outcome(state, outcome)


def _take_lock(state: State, env: Environment, gw: KubeGateway, wait_for: str | None) -> None:
    """Hold ``env``'s release lock for the rest of the command (``--wait-for-lock``: wait)."""
    wait = parse_duration(wait_for, what="--wait-for-lock") if wait_for else 0.0
    state.release_lock(env, gw, wait=wait)


def _say_interrupted(state: State, releases: list[Any]) -> None:
    """Pending releases whose deploy is gone (this run holds the lock now), said once each."""
    from tradewise_ops.core.lock import INTERRUPTED, mark_interrupted

    for r in mark_interrupted(releases, None):
        if r.status == INTERRUPTED:
            state.terminal.warn(
                f"revision {r.revision} ({r.tag or 'latest'}) was interrupted: {r.note}; "
                "it stays recorded as pending, this deploy replaces it"
            )


def _build(state: State, env: Environment, tag: str | None) -> dict[str, str]:
    try:
        from tradewise_ops.adapters import images
    except ImportError:
        raise BadInputError("--build is not available: the images adapter is missing") from None
    if not tag:
        raise BadInputError("--build needs --tag (the tag to build, push and deploy)")
    builder = images.ImageBuilder(env)
    state.terminal.step(f"building images {tag}")
    builder.build(tag, on_line=state.terminal.info)
    state.terminal.step(f"pushing images {tag}")
    builder.push(tag, on_line=state.terminal.info)
    digests, _left_out = images.pinnable_digests(env.name, tag, env.registry)
    return digests


def _deploy_local(state: State, env: Environment, dry_run: bool, seconds: float) -> None:
    try:
        from tradewise_ops.adapters.local import stack_for
    except ImportError:
        raise BadInputError(
            f"deploy {env.name}: the local stack adapter (tradewise_ops.adapters.local) is not "
            "available in this build; use `tradewise local up`"
        ) from None
    stack = stack_for(env, progress=state.terminal.info)
    if dry_run:
        state.terminal.result(
            {"environment": env.name, "kind": env.kind, "dry_run": True},
            f"would start the {env.kind} stack of {env.name} (what is running stays)",
        )
        return
    result = stack.up(timeout=seconds)
    data = {
        "environment": env.name,
        "kind": env.kind,
        "started": list(result.started),
        "already_running": list(result.already_running),
        "url": result.url,
        "seconds": round(result.seconds, 2),
    }
    state.terminal.success(f"{env.name} is up at {result.url}")
    state.terminal.result(data, f"started: {', '.join(result.started) or 'nothing'}")


def _show_plan(state: State, plan: DeployPlan, *, atomic: bool = False) -> None:
    """The plan's steps, one row each, in the order a deploy carries them out."""
    term = state.terminal
    counts = plan.counts()
    summary = ", ".join(f"{n} to {a}" for a, n in counts.items())
    if plan.slot is not None:
        summary += f"; blue-green into slot {plan.slot}"
    term.result(
        {**plan.to_dict(), "dry_run": True},
        TableData(
            ["#", "STEP", "OBJECT", "DETAIL"],
            plan.step_rows(),
            title=f"plan for {plan.environment} ({plan.tag or 'latest'}): {summary}; "
            f"{len(plan.steps)} steps",
        ),
    )
    for item in plan.skipped:
        term.warn(f"skipping {item.ref}: {item.reason}")
    for hold in plan.holds:
        term.info(f"{hold.kind}/{hold.name} {hold.sentence()}")
    if any(h.kept for h in plan.holds):
        term.info("(--reset-scaling applies the config's bounds instead)")
    if atomic and plan.wait:
        term.info("--atomic: if the rollout fails, the previous healthy release is restored")
    term.info("dry run: nothing was changed")


def _show_outcome(state: State, outcome: DeployOutcome) -> None:
    from tradewise_ops.core.rollout import summary_rows

    term = state.terminal
    rows = summary_rows(outcome.rollout.state) if outcome.rollout else []
    title = (
        f"{outcome.environment} revision {outcome.revision} ({outcome.tag or 'latest'}): "
        f"{outcome.status} in {outcome.seconds:.1f}s, {outcome.requests} API requests"
    )
    human: Any = TableData(["WORKLOAD", "READY", "UP-TO-DATE", "AVAILABLE", "STATUS"], rows, title)
    if not rows:
        human = title
    term.result(outcome.to_dict(), human)
    for ref in outcome.progress.pruned:
        term.info(f"pruned {ref}")
    if outcome.status == "deployed":
        term.success(outcome.message)
        return
    back = outcome.rolled_back
    if back is not None:
        verdict = "and is healthy" if back.status == "deployed" else f"but it {back.status}"
        term.warn(f"rolled back as revision {back.revision} ({back.tag}) {verdict}")
    raise GoalMissedError(f"revision {outcome.revision} failed: {outcome.message}")


# -- rollback / history ----------------------------------------------------------------------
def rollback(
    ctx: typer.Context,
    env_name: str = _ENV_ARG,
    to_revision: int = typer.Option(
        None, "--to-revision", min=1, help="Revision to restore (default: the previous one)."
    ),
    wait: bool = _WAIT,
    timeout: str = _TIMEOUT,
    reset_scaling: bool = _RESET_SCALING,
    wait_for_lock: str = _WAIT_FOR_LOCK,
) -> None:
    """Restore a whole earlier release (images, config, HPA settings) and wait like deploy.

    A traffic profile in effect keeps its HPA bounds, as with deploy, unless --reset-scaling.
    """
    from tradewise_ops.core.release import rollback_target

    state = get_state(ctx)
    env = state.environment(env_name)
    seconds = parse_duration(timeout, what="--timeout")
    gw = state.kube_gateway(env)
    progress = RolloutProgress(state.terminal)
    deployer = deployer_for(state, env, gw, progress)
    _take_lock(state, env, gw, wait_for_lock)
    target = rollback_target(deployer.records.list(), to_revision)
    state.confirm(env, f"roll back to revision {target.revision} ({target.tag or 'latest'})")
    state.terminal.step(f"rolling back {env.name} to revision {target.revision} ({target.tag})")
    with progress:
        outcome = deployer.rollback_to(
            target, wait=wait, timeout=seconds, reset_scaling=reset_scaling
        )
    _show_outcome(state, outcome)


def history(ctx: typer.Context, env_name: str = _ENV_ARG) -> None:
    """Every release of ENV: revision, time, status, tag, who, change cause."""
    from tradewise_ops.core.release import history_rows

    state = get_state(ctx)
    env = state.environment(env_name)
    gw = state.kube_gateway(env)
    releases = deployer_for(state, env, gw).records.list()
    if any(r.status == "pending" for r in releases):  # its deploy still running, or gone?
        from tradewise_ops.core.lock import mark_interrupted

        releases = mark_interrupted(releases, state.lock_holder(env, gw))
    if not releases:
        state.terminal.result([], f"no releases of {env.name} in namespace {env.namespace}")
        return
    state.terminal.result(
        [r.summary() for r in releases],
        TableData(
            ["REVISION", "TIME", "STATUS", "TAG", "USER", "CHANGE-CAUSE"],
            history_rows(releases),
            title=f"releases of {env.name} ({env.namespace})",
        ),
    )
