"""``tradewise load-test`` and ``tradewise performance-test``: Locust load with an SLO verdict."""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from tradewise_ops.cli.state import State, get_state
from tradewise_ops.cli.terminal import TableData
from tradewise_ops.core.redact import mask_credentials
from tradewise_ops.errors import AbortedError, BadInputError, GoalMissedError

if TYPE_CHECKING:
    from tradewise_ops.core.loadplan import LoadSpec
    from tradewise_ops.core.loadreport import LoadReport

_HOST_HELP = "Target base URL (default: the environment's url, or https://DOMAIN)."
_IMAGE_HELP = "--in-cluster: image with tradewise and Locust (default REGISTRY/API_IMAGE:latest)."
_MONITOR_HELP = "Watch HPAs, pods and events too; report load and replicas on one time axis."
# the options load-test and performance-test share
_HOST_OPT = typer.Option(None, "--host", help=_HOST_HELP)
_P95_OPT = typer.Option(None, "--p95", help="p95 objective in ms (default slo.p95_ms).")
_REPORT_OPT = typer.Option(None, "--report", help="Write report.json, CSV and HTML here.")
_WORKERS_OPT = typer.Option(0, "--workers", help="Local Locust worker processes (0: one).")
_IN_CLUSTER_OPT = typer.Option(False, "--in-cluster", help="Run Locust as Kubernetes Jobs.")
_DRY_RUN_OPT = typer.Option(False, "--dry-run", help="With --in-cluster: print the Jobs.")
_INTERVAL_OPT = typer.Option(1.0, "--interval", help="Seconds per time-series interval.")
_MONITOR_OPT = typer.Option(False, "--monitor", help=_MONITOR_HELP)
_IMAGE_OPT = typer.Option(None, "--image", help=_IMAGE_HELP)
_MAX_ERROR_RATE_OPT = typer.Option(
    None, "--max-error-rate", help="Error-rate objective, 0-1 (default slo.error_rate)."
)


def register(app: typer.Typer) -> None:
    """Add ``load-test`` and ``performance-test`` to the root app."""
    app.command("load-test")(load_test)
    app.command("performance-test")(performance_test)


def load_test(
    ctx: typer.Context,
    duration: str = typer.Argument(None, help="How long: 90, 60s, 5m (default from config)."),
    users: int = typer.Argument(None, help="Concurrent users (default from config)."),
    endpoint: str = typer.Argument(
        None, help="Path to load, e.g. /api/stock-analysis?symbol=AAPL."
    ),
    host: str = _HOST_OPT,
    spawn_rate: float = typer.Option(None, "--spawn-rate", "-r", help="Users started per second."),
    wait: str = typer.Option("0", "--wait", help="Wait between a user's requests: 0, 2s, 1-3."),
    rate: float = typer.Option(None, "--rate", help="Hold this many requests/s in total."),
    p95: float = _P95_OPT,
    max_error_rate: float = _MAX_ERROR_RATE_OPT,
    report: str = _REPORT_OPT,
    workers: int = _WORKERS_OPT,
    in_cluster: bool = _IN_CLUSTER_OPT,
    dry_run: bool = _DRY_RUN_OPT,
    interval: float = _INTERVAL_OPT,
    monitor: bool = _MONITOR_OPT,
    image: str = _IMAGE_OPT,
) -> None:
    """Load one endpoint with Locust; live progress; exit 1 when the SLOs are missed."""
    from tradewise_ops.core.loadplan import load_test_spec, parse_wait

    state = get_state(ctx)
    cfg = state.config()
    n_users = cfg.load_test.users if users is None else users
    spec = load_test_spec(
        host=_target(state, host, in_cluster),
        duration=duration or cfg.load_test.duration,
        users=n_users,
        endpoint=endpoint or cfg.load_test.endpoint,
        spawn_rate=cfg.load_test.spawn_rate if spawn_rate is None else spawn_rate,
        wait=parse_wait(wait, rate=rate, users=max(n_users, 1)),
        workers=workers,
        interval_seconds=_check_interval(interval),
    )
    _execute(state, spec, p95, max_error_rate, _dir(report), in_cluster, dry_run, monitor, image)


def performance_test(
    ctx: typer.Context,
    host: str = _HOST_OPT,
    scale_duration: float = typer.Option(
        1.0, "--scale-duration", help="Multiply every stage's duration (0.1: ten times shorter)."
    ),
    wait: str = typer.Option("0.5-1.5", "--wait", help="Wait between a user's requests."),
    p95: float = _P95_OPT,
    max_error_rate: float = _MAX_ERROR_RATE_OPT,
    report: str = _REPORT_OPT,
    workers: int = _WORKERS_OPT,
    in_cluster: bool = _IN_CLUSTER_OPT,
    dry_run: bool = _DRY_RUN_OPT,
    interval: float = _INTERVAL_OPT,
    monitor: bool = _MONITOR_OPT,
    image: str = _IMAGE_OPT,
) -> None:
    """The mixed workload of tradewise.yaml (health, hot/cold analyses, stats) in stages."""
    from tradewise_ops.core.loadplan import parse_wait, performance_test_spec

    state = get_state(ctx)
    spec = performance_test_spec(
        host=_target(state, host, in_cluster),
        perf=state.config().performance_test,
        scale=scale_duration,
        wait=parse_wait(wait),
        workers=workers,
        interval_seconds=_check_interval(interval),
    )
    _execute(state, spec, p95, max_error_rate, _dir(report), in_cluster, dry_run, monitor, image)


def _target(state: State, host: str | None, in_cluster: bool) -> str | None:
    """``--host``; else in-cluster the API Service's cluster address; else the env's URL."""
    if host:
        return host
    env = state.environment()
    if in_cluster:
        return f"http://tradewise-api-service.{env.namespace}.svc"
    return env.target_url


def _dir(report: str | None) -> Path | None:
    return Path(report) if report else None


def _check_interval(interval: float) -> float:
    if not 0.1 <= interval <= 60:
        raise BadInputError(f"--interval must be between 0.1 and 60 seconds (got {interval:g})")
    return interval


def _objectives(
    state: State, p95: float | None, max_error_rate: float | None
) -> tuple[float, float]:
    slo = state.config().slo
    p95_ms = slo.p95_ms if p95 is None else p95
    error_rate = slo.error_rate if max_error_rate is None else max_error_rate
    if not p95_ms > 0:
        raise BadInputError(f"--p95 must be above 0 ms (got {p95_ms:g})")
    if not 0 < error_rate <= 1:
        raise BadInputError(f"--max-error-rate must be above 0 and at most 1 (got {error_rate:g})")
    return p95_ms, error_rate


def _execute(
    state: State,
    spec: LoadSpec,
    p95: float | None,
    max_error_rate: float | None,
    report_dir: Path | None,
    in_cluster: bool,
    dry_run: bool,
    monitor: bool = False,
    image: str | None = None,
) -> None:
    from tradewise_ops.adapters.loadtest import LoadRunner, probe
    from tradewise_ops.core.loadreport import LoadReport, run_totals
    from tradewise_ops.core.slo import evaluate

    term = state.terminal
    objectives = _objectives(state, p95, max_error_rate)
    if in_cluster:
        if monitor:
            raise BadInputError(
                "--monitor cannot be combined with --in-cluster yet: run `tradewise monitor` "
                "beside the in-cluster load test instead"
            )
        _in_cluster(state, spec, dry_run, objectives, report_dir, image)
        return
    if dry_run:
        raise BadInputError("--dry-run goes with --in-cluster (a local run has nothing to plan)")
    if report_dir is not None:
        _prepare_dir(report_dir)
    status = probe(spec.host + spec.probe_path)
    if status >= 500:
        term.warn(f"{spec.host}{spec.probe_path} answered {status}; loading it anyway")
    term.step(
        f"{spec.kind}: {spec.users} users against {spec.host} for {spec.duration_seconds:g}s"
        + (f" on {spec.workers} workers" if spec.workers else "")
    )
    runner = LoadRunner()
    watch = _load_monitor(state, spec.duration_seconds, report_dir) if monitor else None
    with _LiveView(term, spec.duration_seconds) as view:
        on_interval = view.update if watch is None else _both(view.update, watch.on_interval)
        try:
            result = runner.run(spec, on_interval=on_interval)
        except BaseException:
            if watch is not None:
                watch.mon.watcher.stop()
                watch.mon.close()
            raise
    intervals = result.intervals
    totals = run_totals(intervals)
    verdict = evaluate(
        requests=totals.requests,
        failures=totals.failures,
        p95_ms=totals.latency.percentile(95),
        max_p95_ms=objectives[0],
        max_error_rate=objectives[1],
    )
    report = LoadReport(
        target=mask_credentials(spec.host),  # the report files travel
        kind=spec.kind,
        started_at=result.started_at,
        planned_seconds=spec.duration_seconds,
        users=spec.users,
        spawn_rate=spec.spawn_rate,
        workers=spec.workers,
        intervals=intervals,
        verdict=verdict,
        aborted=result.aborted,
        stopped_by=result.stopped_by,
        errors=result.errors,
        generator=result.generator(),
        settings=spec.settings(),
    )
    scaling = watch.finish(report.to_dict(), result.aborted) if watch is not None else None
    if report_dir is not None:
        _write_reports(report_dir, report)
        term.info(f"report written to {report_dir}/ (report.json, timeseries.csv, report.html)")
    _show(state, report, scaling)
    if watch is not None:
        watch.show()
    if result.aborted:
        raise AbortedError(
            f"interrupted: load stopped after {report.ran_seconds:.1f}s of "
            f"{spec.duration_seconds:g}s; partial run: {verdict.sentence()}"
        )
    if not verdict.met:
        raise GoalMissedError(verdict.sentence())
    if watch is not None and watch.breached:
        raise GoalMissedError(f"{verdict.sentence()}; {watch.data['sentence']}")
    term.success(verdict.sentence())


def _show(state: State, report: LoadReport, scaling: dict[str, Any] | None = None) -> None:
    from tradewise_ops.core.loadreport import SUMMARY_COLUMNS, summary_rows

    term = state.terminal
    gen = report.generator
    title = f"{report.kind} {report.target}: {report.ran_seconds:.1f}s, {report.users} users" + (
        f", generator CPU {gen.get('cpu_percent', 0):.0f}%" if gen else ""
    )
    data = report.to_dict()
    if scaling is not None:
        data["monitor"] = scaling  # --monitor: the scaling summary (tradewise monitor's JSON)
    term.result(data, TableData(SUMMARY_COLUMNS, summary_rows(report), title=title))
    for err in report.errors[:5]:
        term.warn(f"{err.get('occurrences')}x {err.get('name')}: {err.get('error')}")


def _load_monitor(state: State, duration: float, report_dir: Path | None) -> Any:
    from tradewise_ops.cli.monitor import LoadMonitor

    return LoadMonitor(state, duration, report_dir)


def _both(first: Any, second: Any) -> Any:
    def call(interval: Any) -> None:
        first(interval)
        second(interval)

    return call


def _prepare_dir(path: Path) -> None:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BadInputError(
            f"--report {path}: cannot create the directory ({exc.strerror})"
        ) from None
    if not path.is_dir():
        raise BadInputError(f"--report {path} is not a directory")


def _write_reports(path: Path, report: LoadReport) -> None:
    import json

    from tradewise_ops.core.loadreport import report_html, timeseries_csv

    (path / "report.json").write_text(json.dumps(report.to_dict(), indent=2) + "\n")
    (path / "timeseries.csv").write_text(timeseries_csv(report))
    (path / "report.html").write_text(report_html(report))


def _in_cluster(
    state: State,
    spec: LoadSpec,
    dry_run: bool,
    objectives: tuple[float, float],
    report_dir: Path | None,
    image: str | None,
) -> None:
    import json

    from tradewise_ops.core.loadplan import render_locust_jobs
    from tradewise_ops.core.slo import evaluate

    term = state.terminal
    env = state.environment()
    if not env.is_kubernetes:
        raise BadInputError(
            f"--in-cluster needs a Kubernetes environment; {env.name} is {env.kind} (use --env)"
        )
    workers = max(spec.workers, 1)
    objects = render_locust_jobs(
        spec,
        namespace=env.namespace,
        environment=env.name,
        image=image or f"{env.registry}/{env.api_image}:latest",
        run_id=time.strftime("%Y%m%d%H%M%S") + "-" + uuid.uuid4().hex[:6],
        workers=workers,
    )
    if dry_run:
        import yaml

        if term.machine_output:
            term.result(objects)
        else:
            term.raw(yaml.safe_dump_all(objects, sort_keys=False))
        return
    if report_dir is not None:
        _prepare_dir(report_dir)
    from tradewise_ops.adapters.kube import KubeGateway
    from tradewise_ops.adapters.loadtest import run_in_cluster

    gateway = KubeGateway.from_environment(env)
    term.step(
        f"{spec.kind} in {env.name}: Locust master + {workers} workers as Jobs in "
        f"{env.namespace}, {spec.users} users against {spec.host} for {spec.duration_seconds:g}s"
    )
    last = [0.0]

    def progress(master: dict[str, Any], workers_status: dict[str, Any]) -> None:
        if time.monotonic() - last[0] >= 10:
            last[0] = time.monotonic()
            term.info(
                f"master {'running' if master.get('active') else 'starting'}, "
                f"{workers_status.get('active', 0)} of {workers} workers running"
            )

    run = run_in_cluster(
        gateway, objects, timeout_seconds=spec.duration_seconds + 300, on_progress=progress
    )
    logs = f"kubectl logs -n {run.namespace} job/{run.master_job}"
    if run.aborted:
        raise AbortedError(f"interrupted: deleted the Locust Jobs of run {run.run_id}")
    summary = run.summary
    total = summary["total"]
    verdict = evaluate(
        requests=int(total["requests"]),
        failures=int(total["failures"]),
        p95_ms=total.get("p95_ms"),
        max_p95_ms=objectives[0],
        max_error_rate=objectives[1],
    )
    doc = {
        "kind": spec.kind,
        "target": spec.host,
        "in_cluster": {
            "run_id": run.run_id,
            "namespace": run.namespace,
            "master_job": run.master_job,
            "worker_job": run.worker_job,
            "intervals": logs,
        },
        "planned_seconds": spec.duration_seconds,
        "ran_seconds": summary.get("ran_seconds"),
        "stopped_by": summary.get("stopped_by"),
        "users": spec.users,
        "workers": workers,
        "total": total,
        "endpoints": summary.get("endpoints", {}),
        "verdict": verdict.to_dict(),
        "errors": summary.get("errors", []),
    }
    if report_dir is not None:
        (report_dir / "report.json").write_text(json.dumps(doc, indent=2) + "\n")
        term.info(f"report written to {report_dir}/report.json (time series: {logs})")
    from tradewise_ops.core.loadreport import SUMMARY_COLUMNS

    rows = [
        (
            name,
            str(s["requests"]),
            f"{s['failures']} ({s['error_rate'] * 100:.2f}%)",
            f"{s['rps']:.1f}",
            *(f"{s[k]:.1f}" if s.get(k) is not None else "-" for k in _PCTL),
        )
        for name, s in [*doc["endpoints"].items(), ("total", total)]
    ]
    term.result(doc, TableData(SUMMARY_COLUMNS, rows, title=f"{spec.kind} in {env.name}"))
    if not verdict.met:
        raise GoalMissedError(verdict.sentence())
    term.success(verdict.sentence())


_PCTL = ("p50_ms", "p95_ms", "p99_ms", "max_ms")


class _LiveView:
    """Progress on stderr: a refreshing line on a terminal, a line every few seconds otherwise."""

    def __init__(self, term: Any, planned: float) -> None:
        self.term = term
        self.planned = planned
        self.live: Any = None
        self.last_print = 0.0

    def __enter__(self) -> _LiveView:
        if self.term.interactive:
            from rich.live import Live
            from rich.text import Text

            self.live = Live(
                Text("starting..."), console=self.term.err, refresh_per_second=4, transient=False
            )
            self.live.__enter__()
        return self

    def update(self, interval: Any) -> None:
        from tradewise_ops.core.loadreport import live_line

        if self.live is not None:
            from rich.text import Text

            from tradewise_ops.core.loadreport import live_lines

            self.live.update(Text("\n".join(live_lines(interval, self.planned))))
            return
        now = time.monotonic()
        if self.term.verbose or now - self.last_print >= 5:
            self.last_print = now
            self.term.info(live_line(interval, self.planned))

    def __exit__(self, *exc: object) -> None:
        if self.live is not None:
            self.live.__exit__(None, None, None)
