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
        f"{seconds:g}s" + (f" (the pools hold {capacity} connections)" if capacity else "")
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
    load = _load_report(spec, run.result, outcome)
    start = run.result.started_at
    doc = {**outcome.to_dict(), "pool_series": core.pool_series(run.samples, start)}
    doc["load"] = load.to_dict()
    _finish(state, outcome, doc, load, report_dir, {"pool.csv": _csv(doc["pool_series"])})


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


def _load_report(spec: LoadSpec, result: RunResult, outcome: StressOutcome) -> LoadReport:
    from tradewise_ops.core.loadreport import LoadReport, run_totals
    from tradewise_ops.core.redact import mask_credentials
    from tradewise_ops.core.slo import evaluate

    totals = run_totals(result.intervals)
    slo = outcome.slo
    return LoadReport(
        target=mask_credentials(spec.host),
        kind=spec.kind,
        started_at=result.started_at,
        planned_seconds=spec.duration_seconds,
        users=spec.users,
        spawn_rate=spec.spawn_rate,
        workers=spec.workers,
        intervals=result.intervals,
        verdict=evaluate(
            requests=totals.requests,
            failures=totals.failures,
            p95_ms=totals.latency.percentile(95),
            max_p95_ms=float(slo["p95_ms"]),
            max_error_rate=float(slo["error_rate"]),
        ),
        aborted=result.aborted,
        stopped_by=result.stopped_by,
        errors=result.errors,
        generator=result.generator(),
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
        term.info(f"report written to {report_dir}/ ({', '.join(sorted(files))})")
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
