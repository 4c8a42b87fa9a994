"""``tradewise scale``: status, api N, workers N, traffic PROFILE, emergency-down (HPA-aware)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import typer

from tradewise_ops.cli.state import State, get_state
from tradewise_ops.cli.terminal import TableData

if TYPE_CHECKING:  # core.scaling and the config model load when a command runs, not for --help
    from types import ModuleType

    from tradewise_ops.core.config import Environment, Profile
    from tradewise_ops.core.scaling import ScalePlan


def _scaling() -> ModuleType:
    from tradewise_ops.core import scaling

    return scaling


# ``scale api -1`` must reach our own check (one sentence, exit 2), not click's "no such option"
_NUMBER_ARG = {"ignore_unknown_options": True}


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
    group.command("suggest")(suggest)  # issue 16
    app.add_typer(group, name="scale")


_DRY_RUN = typer.Option(False, "--dry-run", help="Print the plan; change nothing.")
_WAIT_FOR_LOCK = typer.Option(
    None,
    "--wait-for-lock",
    metavar="[=DURATION]",
    help="When a deploy, rollback or other scale of the environment holds its lock, wait for it "
    "(up to DURATION, alone 30m) and plan again from what it left, instead of failing.",
)


def status(ctx: typer.Context) -> None:
    """Deployments, HPAs (bounds, metrics, last scale), the traffic profile, recent events."""
    from tradewise_ops.adapters.scaler import scaler_for

    state = get_state(ctx)
    env = state.environment()
    with scaler_for(env, state.config(), must_run=False) as scaler:
        report = scaler.status(state.config().profiles)
    now = datetime.now(UTC)
    tables = [
        TableData(t.columns, t.rows, title=t.title) for t in _scaling().status_tables(report, now)
    ]
    state.terminal.result(report, _group(_scaling().status_summary(report, now), tables))


def api(
    ctx: typer.Context,
    replicas: str = typer.Argument(..., metavar="N", help="API replicas (0 to the cap)."),
    dry_run: bool = _DRY_RUN,
    wait_for_lock: str | None = _WAIT_FOR_LOCK,
) -> None:
    """Scale the API to N replicas; where an HPA manages it, its floor moves to N."""
    _manual(ctx, "api", replicas, dry_run, wait_for_lock)


def workers(
    ctx: typer.Context,
    replicas: str = typer.Argument(..., metavar="N", help="Worker replicas (0 to the cap)."),
    dry_run: bool = _DRY_RUN,
    wait_for_lock: str | None = _WAIT_FOR_LOCK,
) -> None:
    """Scale the workers to N replicas; where an HPA manages them, its floor moves to N."""
    _manual(ctx, "worker", replicas, dry_run, wait_for_lock)


def traffic(
    ctx: typer.Context,
    profile: str = typer.Argument(..., metavar="PROFILE", help="low, medium, high or peak."),
    dry_run: bool = _DRY_RUN,
    schedule: str | None = typer.Option(
        None, "--schedule", metavar="NAME", help="Run as this schedule's CronJob: by its calendar."
    ),
    early_close: bool = typer.Option(False, "--early-close", help="The early-close CronJob."),
    now: str | None = typer.Option(None, "--now", hidden=True, help="ISO time (tests)."),
    wait_for_lock: str | None = _WAIT_FOR_LOCK,
) -> None:
    """Apply a traffic profile from the config to the API, the workers and their HPAs."""
    state = get_state(ctx)
    env = state.environment()
    if schedule is not None:  # a CronJob's run: the market's calendar decides (issue 16)
        from tradewise_ops.core.schedule_runs import decide_now

        decision = decide_now(state.config().schedules, schedule, profile, early_close, now)
        if not decision.run:
            state.terminal.info(f"skipped: {decision.reason}")
            return
        state.terminal.info(decision.reason)
        profile = decision.profile
    if profile == _scaling().EMERGENCY_DOWN:  # schedules may name it (config allows it)
        _run(
            state,
            env,
            dry_run,
            lambda live, now: _scaling().plan_emergency_down(env, live, now),
            wait_for_lock=wait_for_lock,
        )
        return
    chosen = state.config().profile(profile)
    _run(
        state,
        env,
        dry_run,
        lambda live, now: _scaling().plan_profile(env, chosen, live, now),
        profile=chosen,
        wait_for_lock=wait_for_lock,
    )


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
    wait_for_lock: str | None = _WAIT_FOR_LOCK,
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
        wait_for_lock=wait_for_lock,
    )


def suggest(
    ctx: typer.Context,
    source: str = typer.Option(..., "--from", metavar="FILE|prometheus", help="Recorded load."),
    since: str = typer.Option("7d", "--since", help="With --from prometheus: the window."),
    per_replica_rps: float | None = typer.Option(
        None, "--per-replica-rps", help="What one API replica serves (`tradewise capacity`)."
    ),
    bucket: int = typer.Option(60, "--bucket-minutes", help="Slot of the day, in minutes."),
) -> None:
    """The time-of-day pattern of recorded load and the schedules block that would serve it."""
    from tradewise_ops.adapters.usage import load_samples
    from tradewise_ops.core.rightsize import parse_window
    from tradewise_ops.core.suggest import suggest as suggest_schedules

    state = get_state(ctx)
    env, config = state.environment(), state.config()
    samples = load_samples(
        source, env.prometheus_url, env.namespace, parse_window(since), max(1, bucket * 60 // 4)
    )
    result = suggest_schedules(
        samples, config.profiles, per_replica_rps=per_replica_rps,
        headroom_percent=config.capacity.headroom_percent, bucket_minutes=bucket,
    )  # fmt: skip
    for warning in result.warnings:
        state.terminal.warn(warning)
    state.terminal.result(result.to_dict(), result.yaml())


# --------------------------------------------------------------------------------------------
def _manual(
    ctx: typer.Context, component: str, text: str, dry_run: bool, wait_for_lock: str | None
) -> None:
    state = get_state(ctx)
    env = state.environment()
    word = "workers" if component == "worker" else component
    replicas = _scaling().parse_replicas(text, env.max_replicas, f"{word} replicas")
    _run(
        state,
        env,
        dry_run,
        lambda live, now: _scaling().plan_manual(env, component, replicas, live, now),
        wait_for_lock=wait_for_lock,
    )


def _run(
    state: State,
    env: Environment,
    dry_run: bool,
    build: Any,
    profile: Profile | None = None,
    wait_for_lock: str | None = None,
) -> None:
    """Read the live state, build the plan, show it, and (unless ``--dry-run``) apply it.

    The dry run of a traffic ``profile`` also places its pods' requests on the cluster's nodes.
    With ``--wait-for-lock`` the plan is built again from the live state once the lock is held:
    the deploy waited for may have changed it.
    """
    from tradewise_ops.adapters.scaler import scaler_for
    from tradewise_ops.core.units import parse_duration

    wait = parse_duration(wait_for_lock, what="--wait-for-lock") if wait_for_lock else 0.0
    term = state.terminal
    with scaler_for(env, state.config(), on_step=term.step) as scaler:
        now = datetime.now(UTC)
        plan: ScalePlan = build(scaler.read(), now)
        for warning in plan.warnings:
            term.warn(warning)
        columns, rows = plan.rows()
        if dry_run:
            fit = _allocatable(state, scaler, env, profile) if profile is not None else {}
            term.result(
                {**plan.to_dict(), "dry_run": True, "applied": False, **fit},
                TableData(columns, rows, title=f"Plan: {plan.action} on {env.name} (dry run)"),
            )
            for note in plan.notes:
                term.info(note)
            return
        scaler.check(plan)
        state.confirm(env, plan.action)
        gateway = getattr(scaler, "gateway", None)
        with state.release_lock(env, gateway, wait=wait):  # one writer at a time
            if wait and gateway is not None:
                plan = build(scaler.read(), datetime.now(UTC))
                scaler.check(plan)
                columns, rows = plan.rows()
            scaler.apply(plan)
    term.result(
        {**plan.to_dict(), "dry_run": False, "applied": True},
        TableData(columns, rows, title=f"{plan.action} on {env.name}"),
    )
    for note in plan.notes:
        term.info(note)
    term.success(f"{plan.action}: done on {env.name} (recorded as {plan.profile!r})")


def _allocatable(state: State, scaler: Any, env: Environment, profile: Profile) -> dict[str, Any]:
    """Would ``profile``'s pods find room on the nodes? Said in a sentence; as data for -o json.

    Empty for an environment without nodes (a local stack); a user who may not list Nodes gets a
    warning and no check.
    """
    from tradewise_ops.core.capacity import allocatable_check
    from tradewise_ops.errors import ForbiddenError

    try:
        nodes = scaler.nodes()
    except ForbiddenError as exc:
        skipped = f"the nodes cannot be read, so requests are not checked against them: {exc}"
        state.terminal.warn(skipped)
        return {"allocatable_skipped": skipped}
    if nodes is None:
        return {}
    check = allocatable_check(profile, env, nodes)
    (state.terminal.info if check.fits else state.terminal.warn)(check.sentence())
    return {"allocatable": check.to_dict()}


def _group(lines: list[str], tables: list[TableData]) -> Any:
    from rich.console import Group
    from rich.text import Text

    from tradewise_ops.cli.terminal import render_table

    return Group(*(Text(line) for line in lines), *(render_table(t) for t in tables))
