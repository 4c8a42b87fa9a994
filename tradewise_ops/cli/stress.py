"""``tradewise stress cpu|memory|db``: one bounded stress scenario, one verdict.

Each scenario loads the environment's own URL (``--host`` may only repeat it), for at most
``--duration`` (default ``stress.duration`` in the config), stops on Ctrl-C or SIGTERM with a
verdict on what ran (exit 130), and exits 1 when an SLO was missed. ``-o json`` prints one
document (``scenario``, ``verdict``, ``slo``, ``checks``, ``figures``, ``findings``);
``--report DIR`` writes it as ``report.json`` beside the load's CSV and HTML.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from tradewise_ops.cli.state import State, get_state
from tradewise_ops.cli.terminal import TableData
from tradewise_ops.errors import AbortedError, GoalMissedError

if TYPE_CHECKING:
    from tradewise_ops.adapters.loadtest import RunResult
    from tradewise_ops.core.config import Slo
    from tradewise_ops.core.loadplan import LoadSpec
    from tradewise_ops.core.loadreport import LoadReport
    from tradewise_ops.core.stress import StressOutcome

stress_app = typer.Typer(
    help="Stress scenarios with a verdict: cpu (the autoscaler), memory (OOM), db (the pool).",
    no_args_is_help=True,
)
_DURATION_OPT = typer.Option(
    None, "--duration", help="The scenario's bound: 90, 60s, 5m (default stress.duration)."
)
_REPORT_OPT = typer.Option(None, "--report", help="Write report.json, CSV and HTML here.")
_HOST_OPT = typer.Option(None, "--host", help="Only the environment's own URL is accepted.")


def register(app: typer.Typer) -> None:
    """Add the ``stress`` command group."""
    app.add_typer(stress_app, name="stress")


@stress_app.command("db")
def db(
    ctx: typer.Context,
    duration: str = _DURATION_OPT,
    report: str = _REPORT_OPT,
    host: str = _HOST_OPT,
    users: int = typer.Option(
        None, "--users", help="Concurrent users (default stress.db_users, else 2x the pools)."
    ),
) -> None:
    """More concurrent uncached analyses than the database pools hold: p95, errors, the pool.

    Reads the pools from the app's /metrics before, during and after the load; a finding
    names environments.ENV.database_pool when calls waited for a connection.
    """
    from tradewise_ops.adapters.stress import DbStress
    from tradewise_ops.core import stress as core
    from tradewise_ops.core.loadreport import run_totals

    state = get_state(ctx)
    cfg, env = state.config(), state.environment()
    target = core.stress_target(env, host)
    seconds = core.scenario_seconds(cfg.stress, "db", duration)
    report_dir = _report_dir(report)
    side = DbStress(target)
    before = side.prepare()
    capacity = int(before.capacity) if before is not None and before.published else 0
    n = min(users, cfg.stress.max_users) if users else core.db_users(cfg.stress, capacity, env)
    uncached = "uncached" in env.faults
    spec = core.db_spec(target, cfg.performance_test, seconds, max(n, 1), uncached)
    state.terminal.step(
        f"stress db: {spec.users} users of uncached analyses against {target} for "
        f"{seconds:g}s" + (f" (the pools hold {capacity} connection(s))" if capacity else "")
    )
    run = side.run(spec, before, on_interval=_progress(state, seconds))
    totals = run_totals(run.result.intervals)
    ran = sum(iv.seconds for iv in run.result.intervals)
    outcome = core.db_outcome(
        env,
        cfg.slo,
        target,
        requests=totals.requests,
        failures=totals.failures,
        p95_ms=totals.latency.percentile(95),
        rps=totals.requests / ran if ran else 0.0,
        users=spec.users,
        pool=core.pool_figures(run.before, run.after, run.samples),
        uncached=uncached,
        interrupted=run.interrupted,
    )
    load = _load_report(spec, [run.result], run.result.intervals, cfg.slo)
    start = run.result.started_at
    doc = {**outcome.to_dict(), "pool_series": core.pool_series(run.samples, start)}
    doc["load"] = load.to_dict()
    _finish(state, outcome, doc, load, report_dir, {"pool.csv": _csv(doc["pool_series"])})


@stress_app.command("cpu")
def cpu(
    ctx: typer.Context,
    duration: str = _DURATION_OPT,
    report: str = _REPORT_OPT,
    host: str = _HOST_OPT,
    through_scale_down: bool = typer.Option(
        False, "--through-scale-down", help="After the load, wait for the return to the floor."
    ),
) -> None:
    """Push the API's CPU past the HPA target; verdict on trigger -> rescale -> ready.

    Users double every stress.step_seconds (uncached analyses of the cold symbols) until the
    CPU is above target, then hold until the scale-up is ready. Also judged: p95 and errors
    during the climb, and with --through-scale-down the return to the floor within the HPA's
    scale-down window. The local stack's API processes stand in for pods.
    """
    from tradewise_ops.adapters.loadtest import probe
    from tradewise_ops.adapters.stress import CpuStress
    from tradewise_ops.core import stress as core
    from tradewise_ops.errors import BadInputError

    state = get_state(ctx)
    cfg, env = state.config(), state.environment()
    if env.kind == "compose":
        raise BadInputError(
            f"{env.name} is a compose environment: its containers have no CPU target to cross; "
            "run stress cpu against a kubernetes or local environment"
        )
    target = core.stress_target(env, host)
    bound = core.scenario_seconds(cfg.stress, "cpu", duration)
    report_dir = _report_dir(report)
    probe(target + "/api/health")
    climb = core.cpu_climb_spec(
        target, cfg.performance_test, cfg.stress, bound, "uncached" in env.faults
    )
    hpa = core.API_HPA if env.is_kubernetes else core.LOCAL_HPA
    scaling = env.components["api"].autoscaling
    cpu_target = float(scaling.cpu_percent) if scaling else None
    state.terminal.step(
        f"stress cpu: {', '.join(str(s.users) for s in climb.stages)} users, "
        f"{cfg.stress.step_seconds:g}s a step, until the API's CPU is above "
        f"{cpu_target or 0:g}% (at most {bound:g}s)"
    )
    side = CpuStress(env, cfg.slo, target, report_dir, state.terminal, hpa=hpa, bound=bound)
    run = side.run(climb, through_scale_down, on_interval=_progress(state, bound))
    results = [r for r in (run.climb_result, run.hold_result) if r is not None]
    load = _load_report(
        climb, results, run.intervals, cfg.slo, planned=bound, users=run.crossed_users
    )
    scaling_doc = run.monitor.finish(load.to_dict(), run.interrupted)
    outcome = core.cpu_outcome(
        env,
        cfg.slo,
        target,
        analysis=scaling_doc,
        hpa=hpa,
        cpu_target=cpu_target,
        peak_cpu=run.peak_cpu,
        crossed_users=run.crossed_users,
        climb=core.climb_intervals(run.intervals, run.started_at, run.ready_at),
        scale_down=run.scale_down,
        interrupted=run.interrupted,
    )
    doc = {**outcome.to_dict(), "load": load.to_dict(), "monitor": scaling_doc}
    summary = run.monitor.summary
    if summary is not None and not state.terminal.machine_output:
        state.terminal.out.print(state.tables_view(summary.tables, summary.sentence))
    _finish(state, outcome, doc, load, report_dir)


@stress_app.command("memory")
def memory(
    ctx: typer.Context,
    duration: str = _DURATION_OPT,
    report: str = _REPORT_OPT,
    host: str = _HOST_OPT,
    target: str = typer.Option("both", "--target", help="Grow the api, the worker, or both."),
    i_mean_prod: bool = typer.Option(
        False, "--i-mean-prod", help="Allow it in production (it OOM-kills pods there)."
    ),
) -> None:
    """Grow an API process and a worker toward their memory limits; verdict on OOM handling.

    Needs the memory fault knob (faults: [memory] in the environment's config). Judged: each
    target OOM-killed (its pod, not the node) and back within slo.recovery_seconds, no task
    lost (tasks queued behind the worker's fault all done), errors of a light load during it
    all under the error objective. Locally each target process gets an address-space limit
    (RLIMIT_AS) instead of a cgroup limit.
    """
    from tradewise_ops.adapters.loadtest import probe
    from tradewise_ops.adapters.stress import MemoryStress
    from tradewise_ops.core import stress as core
    from tradewise_ops.core.loadreport import run_totals
    from tradewise_ops.errors import BadInputError

    state = get_state(ctx)
    cfg, env = state.config(), state.environment()
    targets = core.MEMORY_TARGETS if target == "both" else (target,)
    if not set(targets) <= set(core.MEMORY_TARGETS):
        raise BadInputError(f"--target {target!r}: use api, worker or both")
    if env.kind == "compose":
        raise BadInputError(f"{env.name} is a compose environment: use a local or kubernetes one")
    core.memory_allowed(env, i_mean_prod)
    state.confirm(env, "stress memory (OOM-kills processes)")
    url = core.stress_target(env, host)
    bound = core.scenario_seconds(cfg.stress, "memory", duration)
    report_dir = _report_dir(report)
    probe(url + "/api/health")
    spec = core.memory_load_spec(url, cfg.performance_test, bound)
    state.terminal.step(
        f"stress memory: growing the {' and the '.join(targets)} by "
        f"{cfg.stress.memory_step_mb} MiB every {cfg.stress.memory_step_seconds:g}s toward "
        f"their limits, {spec.users} users of traffic, at most {bound:g}s"
    )
    side = MemoryStress(
        env, cfg.slo, url, report_dir, state.terminal, targets=targets, bound=bound,
        step_mb=cfg.stress.memory_step_mb, step_seconds=cfg.stress.memory_step_seconds,
        symbols=cfg.performance_test.cold_symbols,
    )  # fmt: skip
    run = side.run(spec, on_interval=_progress(state, bound))
    load = _load_report(spec, [run.result], run.result.intervals, cfg.slo)
    scaling_doc = run.monitor.finish(load.to_dict(), run.interrupted)
    totals = run_totals(run.result.intervals)
    outcome = core.memory_outcome(
        env,
        cfg.slo,
        url,
        analysis=scaling_doc,
        targets=targets,
        tasks=run.tasks,
        requests=totals.requests,
        failures=totals.failures,
        p95_ms=totals.latency.percentile(95),
        limits=run.limits,
        interrupted=run.interrupted,
    )
    if run.error is not None:
        hint = getattr(run.error, "hint", None)
        outcome.notes.append(
            f"the fault stopped early: {run.error}" + (f" ({hint})" if hint else "")
        )
    doc = {**outcome.to_dict(), "load": load.to_dict(), "monitor": scaling_doc}
    summary = run.monitor.summary
    if summary is not None and not state.terminal.machine_output:
        state.terminal.out.print(state.tables_view(summary.tables, summary.sentence))
    _finish(state, outcome, doc, load, report_dir)


# --------------------------------------------------------------------------------------------
# shared by the scenarios
# --------------------------------------------------------------------------------------------
def _report_dir(report: str | None) -> Path | None:
    if report is None:
        return None
    from tradewise_ops.adapters.stress import prepare_dir

    path = Path(report)
    prepare_dir(path)
    return path


def _progress(state: State, planned: float) -> Any:
    """An ``on_interval`` that says how the load goes, a line every 5 s (each with --verbose)."""
    from tradewise_ops.core.loadreport import live_line

    last = [0.0]

    def show(interval: Any) -> None:
        now = time.monotonic()
        if state.terminal.verbose or now - last[0] >= 5:
            last[0] = now
            state.terminal.info(live_line(interval, planned))

    return show


def _load_report(
    spec: LoadSpec,
    results: list[RunResult],
    intervals: list[Any],
    slo: Slo,
    *,
    planned: float | None = None,
    users: int | None = None,
) -> LoadReport:
    """The load of a scenario (one run, or several on the first one's clock) as a report."""
    from tradewise_ops.core.loadreport import LoadReport, run_totals
    from tradewise_ops.core.redact import mask_credentials
    from tradewise_ops.core.slo import evaluate

    totals = run_totals(intervals)
    last = results[-1]
    generator: dict[str, Any] = {}
    for r in results:
        for key, value in r.generator().items():
            generator[key] = generator.get(key, 0) + value
    if len(results) > 1:
        cpu = sum(r.cpu_seconds + r.worker_cpu_seconds for r in results)
        ran = sum(r.ran_seconds for r in results)
        generator["cpu_percent"] = round(100.0 * cpu / max(ran, 1e-9), 1)
    return LoadReport(
        target=mask_credentials(spec.host),
        kind=spec.kind,
        started_at=results[0].started_at,
        planned_seconds=spec.duration_seconds if planned is None else planned,
        users=max([iv.users for iv in intervals], default=users or spec.users),
        spawn_rate=spec.spawn_rate,
        workers=spec.workers,
        intervals=intervals,
        verdict=evaluate(
            requests=totals.requests,
            failures=totals.failures,
            p95_ms=totals.latency.percentile(95),
            max_p95_ms=slo.p95_ms,
            max_error_rate=slo.error_rate,
        ),
        aborted=any(r.aborted for r in results),
        stopped_by=last.stopped_by,
        errors=[e for r in results for e in r.errors],
        generator=generator,
        settings=spec.settings(),
    )


def _csv(rows: list[dict[str, Any]]) -> str:
    import csv
    import io

    buf = io.StringIO()
    if rows:
        writer = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    return buf.getvalue()


def _finish(
    state: State,
    outcome: StressOutcome,
    doc: dict[str, Any],
    load: LoadReport,
    report_dir: Path | None,
    extra_files: dict[str, str] | None = None,
) -> None:
    """Write the report files, show the verdict, exit as it says (130, 1 or 0)."""
    from tradewise_ops.core.stress import CHECK_COLUMNS, PASS

    term = state.terminal
    if report_dir is not None:
        from tradewise_ops.adapters.stress import json_text, write_files
        from tradewise_ops.core.loadreport import report_html, timeseries_csv

        files = {
            "report.json": json_text(doc),
            "timeseries.csv": timeseries_csv(load),
            "report.html": report_html(load),
            **(extra_files or {}),
        }
        write_files(report_dir, files)
        names = sorted(p.name for p in report_dir.iterdir() if p.is_file())
        term.info(f"report written to {report_dir}/ ({', '.join(names)})")
    title = f"stress {outcome.scenario} against {outcome.target}"
    term.result(doc, TableData(CHECK_COLUMNS, outcome.rows(), title=title))
    for note in outcome.notes:
        term.info(note)
    for finding in outcome.findings:
        term.warn(finding.message)
    if outcome.interrupted:
        raise AbortedError(f"interrupted: partial verdict: {outcome.sentence()}")
    if outcome.verdict != PASS:
        raise GoalMissedError(outcome.sentence())
    term.success(outcome.sentence())
