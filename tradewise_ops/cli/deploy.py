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
    from tradewise_ops.core.canary import CanaryAnalysis
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
_VERIFY_URL = typer.Option(
    None,
    "--verify-url",
    metavar="URL",
    help="Blue-green: verify the new slot at this http(s) URL (a preview host, a port-forward) "
    "instead of the preview Ingress host or an in-cluster Job.",
)
_NO_VERIFY = typer.Option(
    False,
    "--no-verify",
    help="Blue-green: switch once the new slot is ready, without smoke checks and load test "
    "(the release record says so).",
)
_CANARY_STEPS = typer.Option(
    None,
    "--canary-steps",
    metavar="10,25,50,100",
    help="Canary: the traffic weights in percent, going up to 100 (default release.canary.steps).",
)
_CANARY_HOLD = typer.Option(
    None, "--canary-hold", help="Canary: how long each weight holds (default release.canary.hold)."
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
        on_info=term.info,
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
        metavar="rolling|blue-green|canary",
        help="rolling: update the API in place; blue-green: start the new version beside the "
        "live one, verify it through a preview, switch the Service, keep the old slot for "
        "release.keep_previous; canary: as blue-green, but real traffic moves in weighted "
        "steps, each judged from Prometheus (default: the running release's strategy, else "
        "rolling).",
    ),
    verify_url: str = _VERIFY_URL,
    no_verify: bool = _NO_VERIFY,
    canary_steps: str = _CANARY_STEPS,
    canary_hold: str = _CANARY_HOLD,
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
    releases = deployer.records.list()
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
    from tradewise_ops.core.release_options import (
        canary_plan,
        check_verify_options,
        release_options,
    )

    check_verify_options(strategy, verify_url, no_verify)
    canary = canary_plan(
        state.config(),
        env,
        strategy,
        tag,
        running.tag if running is not None else None,
        steps=canary_steps,
        hold=canary_hold,
        verify_url=verify_url,
        no_verify=no_verify,
    )
    # Prometheus answers (else exit 3) and takes every query (else exit 2) before anything changes
    prometheus = _prometheus(canary.analysis) if canary and canary.analysis else None
    if not dry_run:  # one writer at a time: refused (or waits) before anything changes
        _take_lock(state, env, gw, wait_for_lock)
        releases = deployer.records.list()  # as they stand now that this run holds the lock
        _say_interrupted(state, releases)
    if canary is not None and canary.analysis is None:
        term.info("no monitoring.prometheus_url: each canary step is judged by the verification "
                  "load against the canary's preview")  # fmt: skip
    digests = _build(state, env, tag) if build and not dry_run else None
    if digests is None and not no_pin:  # after `tradewise push`: pin by the recorded digests
        digests = state.pinned_digests(env, tag)
    maintenance = maintenance_is_on(gw)
    if maintenance:
        if canary is not None:
            raise BadInputError(
                "maintenance is on: a canary would take its share of traffic past the "
                "maintenance page; turn maintenance off first, or deploy blue-green"
            )
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
        release=release_options(
            state.config(),
            env,
            strategy,
            tag,
            api_digest=(digests or {}).get("api"),
            verify_url=verify_url,
            no_verify=no_verify,
            canary=canary,
        ),
    )
    if dry_run:
        _show_plan(state, plan, atomic=atomic)
        return
    state.confirm(env, f"deploy {tag or 'latest'}")
    cause = change_cause or " ".join(
        ["tradewise deploy", env.name, *(["--tag", tag] if tag else [])]
    )
    deployer.verifier = _verifier(state, env, gw)
    deployer.prometheus = prometheus
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


def _prometheus(analysis: CanaryAnalysis) -> Any:
    """A client of the analysis's Prometheus, checked before anything changes: it answers
    (else exit 3) and takes every query (else exit 2)."""
    from tradewise_ops.adapters.prometheus import PrometheusClient

    client = PrometheusClient(analysis.prometheus_url)
    client.ready()
    for query in analysis.canary_queries.values():
        client.query(query)
    return client


def _verifier(state: State, env: Environment, gw: KubeGateway) -> Any:
    """The verifier of the release's verify steps: its progress on stderr (a line every few
    seconds, every second with --verbose)."""
    import time

    from tradewise_ops.adapters.verifier import ReleaseVerifier
    from tradewise_ops.core.loadreport import live_line

    term = state.terminal
    planned = env.release.verify.duration_seconds
    last = [0.0]

    def on_interval(interval: Any) -> None:
        now = time.monotonic()
        if term.verbose or now - last[0] >= 5:
            last[0] = now
            term.info("  " + live_line(interval, planned))

    return ReleaseVerifier(gw, env.name, env.namespace, on_line=term.info, on_interval=on_interval)


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
    if plan.verification is not None:
        term.info(f"verification: {plan.verification.describe()}")
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
    steps = (outcome.verification or {}).get("steps") if outcome.plan.canary else None
    if steps:
        human = state.tables_view(
            [
                {"columns": list(human.columns), "rows": list(human.rows), "title": title},
                {
                    "columns": ["STEP", "WEIGHT", "CANARY", "STABLE", "VERDICT"],
                    "rows": _canary_rows(steps),
                    "title": "canary steps",
                },
            ]
        ) if rows else TableData(["STEP", "WEIGHT", "CANARY", "STABLE", "VERDICT"],
                                 _canary_rows(steps), title)  # fmt: skip
    term.result(outcome.to_dict(), human)
    for ref in outcome.progress.pruned:
        term.info(f"pruned {ref}")
    if outcome.verification and not term.machine_output:
        from tradewise_ops.core.release import verification_cell

        term.info(f"verification: {verification_cell(outcome.verification)}")
    if outcome.status == "deployed":
        term.success(outcome.message)
        return
    back = outcome.rolled_back
    if back is not None:
        verdict = "and is healthy" if back.status == "deployed" else f"but it {back.status}"
        term.warn(f"rolled back as revision {back.revision} ({back.tag}) {verdict}")
    raise GoalMissedError(f"revision {outcome.revision} failed: {outcome.message}")


def _canary_rows(steps: list[dict[str, Any]]) -> list[list[Any]]:
    from tradewise_ops.core.canary import Numbers

    def text(numbers: dict[str, Any]) -> str:
        return Numbers(numbers.get("error_rate"), numbers.get("p95_ms"), numbers.get("rps")).text()

    return [
        [
            s["step"],
            f"{s['weight']}%",
            text(s["canary"]),
            text(s["stable"]) if s.get("source") == "prometheus" else "-",
            "ok" if s["passed"] else "BREACH: " + "; ".join(s["breaches"]),
        ]
        for s in steps
    ]


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
    instant: bool = typer.Option(
        True,
        "--instant/--no-instant",
        help="Within release.keep_previous of a blue-green switch, only move the Service and "
        "HPA back to the kept previous slot (seconds, no new pods); --no-instant restores the "
        "whole release.",
    ),
) -> None:
    """Restore a whole earlier release (images, config, HPA settings) and wait like deploy.

    A traffic profile in effect keeps its HPA bounds, as with deploy, unless --reset-scaling.
    Within release.keep_previous of a blue-green switch the previous slot still runs: the
    rollback only switches back to it.
    """
    from tradewise_ops.core.bluegreen import SLOTTED
    from tradewise_ops.core.release import rollback_target

    state = get_state(ctx)
    env = state.environment(env_name)
    seconds = parse_duration(timeout, what="--timeout")
    gw = state.kube_gateway(env)
    progress = RolloutProgress(state.terminal)
    deployer = deployer_for(state, env, gw, progress)
    _take_lock(state, env, gw, wait_for_lock)
    releases = deployer.records.list()
    target = rollback_target(releases, to_revision)
    if target.strategy in SLOTTED and not wait:
        raise BadInputError(
            f"rollback --no-wait cannot restore revision {target.revision}: it is a blue-green "
            "release, switched to only once its slot is ready"
        )
    term = state.terminal
    plan = None
    if instant and not reset_scaling:
        plan, why = deployer.instant_plan(
            target, keep_seconds=env.release.keep_previous_seconds, releases=releases
        )
        if plan is None:
            term.debug(f"no instant rollback: {why}")
    state.confirm(env, f"roll back to revision {target.revision} ({target.tag or 'latest'})")
    if plan is not None:
        term.step(
            f"instant rollback of {env.name} to revision {target.revision} ({target.tag}): {why}; "
            "only the Service and the HPA move back (no new pods; workers and config stay)"
        )
        outcome = deployer.apply(
            plan, f"instant rollback to revision {target.revision}", timeout=seconds
        )
        _show_outcome(state, outcome)
        return
    term.step(f"rolling back {env.name} to revision {target.revision} ({target.tag})")
    with progress:
        outcome = deployer.rollback_to(
            target, wait=wait, timeout=seconds, reset_scaling=reset_scaling
        )
    _show_outcome(state, outcome)


def history(ctx: typer.Context, env_name: str = _ENV_ARG) -> None:
    """Every release of ENV: revision, time, status, tag, who, change cause."""
    from tradewise_ops.core.release import history_entry, history_rows

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
        [history_entry(r) for r in releases],
        TableData(
            ["REVISION", "TIME", "STATUS", "TAG", "USER", "VERIFIED", "CHANGE-CAUSE"],
            history_rows(releases),
            title=f"releases of {env.name} ({env.namespace})",
        ),
    )
