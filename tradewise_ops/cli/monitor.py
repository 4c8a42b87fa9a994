"""``tradewise monitor [SECONDS]``: live HPAs, pods and events; scale-up latency at the end.

Also the helpers ``load-test --monitor`` uses to watch while it loads (``BackgroundMonitor``).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from tradewise_ops.cli.state import State, get_state
from tradewise_ops.cli.terminal import TableData, Terminal
from tradewise_ops.errors import GoalMissedError, TradewiseError, UnreachableError

DEFAULT_SECONDS = "300"
RECORD_OPTION = typer.Option(
    None, "--record", help="Write the timeline as JSON lines to this file.", dir_okay=False
)
REPORT_OPTION = typer.Option(
    None,
    "--report",
    help="Write the HTML report (replicas and events over time) here.",
    dir_okay=False,
)

if TYPE_CHECKING:
    from tradewise_ops.core.config import Environment


def register(app: typer.Typer) -> None:
    """Add ``monitor`` to the root app."""
    app.command("monitor")(monitor)


def monitor(
    ctx: typer.Context,
    seconds: str = typer.Argument(
        DEFAULT_SECONDS, metavar="[SECONDS]", help="How long to watch (300, 90s, 5m)."
    ),
    record: Path | None = RECORD_OPTION,
    report: Path | None = REPORT_OPTION,
) -> None:
    """Watch the HPAs, Deployments, pods and events; end with the scale-up latencies.

    Ends after SECONDS or at Ctrl-C, with the summary either way. Exit 1 when a scale-up or a
    recovery from a pod failure missed its SLO, 3 when the cluster (or local app) is unreachable.
    """
    from tradewise_ops.core.units import parse_duration

    state = get_state(ctx)
    env = state.environment()
    duration = parse_duration(seconds, what="SECONDS")
    term = state.terminal
    mon = BackgroundMonitor(state, env, record)
    interrupted = False
    lost: UnreachableError | None = None
    try:
        mon.prime()
        term.step(f"monitoring {mon.where} for {duration:g}s (Ctrl-C ends early)")
        with live_display(term, mon, duration):
            try:
                mon.watcher.run(duration)
            except KeyboardInterrupt:
                interrupted = True
            except UnreachableError as exc:  # lost mid-way: show what was seen, then exit 3
                lost = exc
    finally:
        mon.close()
    if lost is not None:
        with contextlib.suppress(GoalMissedError):
            finish(state, mon, interrupted=True, report=report)
        raise lost
    finish(state, mon, interrupted=interrupted, report=report)


class BackgroundMonitor:
    """A monitoring session for an environment: the cluster's watches, or the local stack."""

    def __init__(self, state: State, env: Environment, record: Path | None) -> None:
        from tradewise_ops.adapters.monitor import ClusterWatcher, LocalWatcher, MonitorSession

        self.env = env
        self.started = time.time()
        self.gateway: Any = None
        self.session = MonitorSession(record)
        self.watcher: Any
        try:
            if env.is_kubernetes:
                from tradewise_ops.adapters.kube import KubeGateway

                self.gateway = KubeGateway.from_environment(env)
                self.watcher = ClusterWatcher(self.gateway, self.session)
                self.where = f"namespace {self.gateway.namespace} at {self.gateway.where}"
            else:
                from tradewise_ops.adapters.local import stack_for

                stack = stack_for(env)
                wanted = {"api": env.local.api_processes, "worker": env.local.worker_processes}
                url = env.target_url or stack.url
                self.watcher = LocalWatcher(stack, self.session, url, wanted=wanted)
                self.where = f"the {env.name} stack at {url}"
        except BaseException:
            self.session.close()
            raise

    def prime(self) -> None:
        """The current state; ``UnreachableError`` when there is nothing to watch."""
        self.watcher.prime()

    def start(self, seconds: float) -> None:
        """Watch in a background thread."""
        self.watcher.start(seconds)

    def stop(self) -> None:
        """Stop watching; re-raise what the background watch failed with."""
        self.watcher.stop()
        if self.watcher.error is not None:
            raise self.watcher.error

    def close(self) -> None:
        """Close the record file and the connections."""
        self.session.close()
        if self.gateway is not None:
            self.gateway.close()


@contextlib.contextmanager
def live_display(term: Terminal, mon: BackgroundMonitor, seconds: float) -> Iterator[None]:
    """A refreshing table on an interactive stderr; otherwise one line per notable change."""
    if term.interactive and not term.machine_output:
        from rich.console import Group
        from rich.live import Live
        from rich.text import Text

        from tradewise_ops.cli.terminal import render_table
        from tradewise_ops.core.monitor_report import live_tables

        def renderable() -> Any:
            view, events, warnings = mon.session.snapshot()
            elapsed = time.time() - mon.started
            header = Text(f"{mon.where}: {elapsed:.0f}s of {seconds:g}s (Ctrl-C ends)")
            tables = [
                render_table(TableData(t["columns"], t["rows"], title=t["title"]))
                for t in live_tables(view, events, warnings, mon.session.started)
            ]
            return Group(header, *tables)

        live = Live(
            get_renderable=renderable, console=term.err, refresh_per_second=2, transient=True
        )
        with live:
            yield
        return

    lines = line_listener(term)

    mon.session.listeners.append(lines)
    try:
        yield
    finally:
        mon.session.listeners.remove(lines)


def line_listener(term: Terminal) -> Any:
    """A session listener printing notable events, warnings and rescales as lines on stderr."""

    def lines(records: list[Any]) -> None:
        from tradewise_ops.core.timeline import EventRecord, HpaSample, WarningRecord

        for r in records:
            if isinstance(r, EventRecord) and r.notable and not r.listed:
                term.info(f"event {r.reason} {r.object_kind}/{r.object_name}: {r.message}")
            elif isinstance(r, WarningRecord):
                term.warn(r.message)
            elif isinstance(r, HpaSample) and not r.deleted:
                metrics = ", ".join(m.describe() for m in r.metrics)
                line = f"hpa {r.name}: {r.current} -> {r.desired} replicas ({metrics})"
                if r.current != r.desired:
                    term.info(line)
                else:
                    term.debug(line)

    return lines


def finish(
    state: State,
    mon: BackgroundMonitor,
    *,
    interrupted: bool,
    report: Path | None = None,
) -> dict[str, Any]:
    """Analyse the timeline, write the HTML report, show the summary; the data shown.

    Raises ``GoalMissedError`` (exit 1) when a scaling SLO was missed, after showing it.
    """
    data, human = summarize(state, mon, interrupted=interrupted, report=report)
    term = state.terminal
    if interrupted:
        term.info("interrupted: the summary covers what was seen until then")
    term.result(data, human)
    if mon.session.record_path:
        term.info(f"timeline recorded in {mon.session.record_path}")
    if report is not None:
        term.info(f"report written to {report}")
    if data["verdict"] == "fail":
        raise GoalMissedError(data["sentence"])
    return data


def summarize(
    state: State,
    mon: BackgroundMonitor,
    *,
    interrupted: bool,
    report: Path | None = None,
    load: dict[str, Any] | None = None,
    title: str | None = None,
) -> tuple[dict[str, Any], Any]:
    """The analysis as data and as tables; writes the HTML report to ``report`` when given."""
    from tradewise_ops.core.monitor_report import (
        combined_html,
        combined_report,
        deployment_rows,
        event_data,
        event_rows,
        hpa_rows,
        process_rows,
        state_data,
        summary_tables,
        verdict_sentence,
    )
    from tradewise_ops.core.timeline import analyze

    slo = state.config().slo
    records = mon.session.records()
    analysis = analyze(records, slo, end=time.time())
    sentence = verdict_sentence(analysis, slo)
    view, events, _ = mon.session.snapshot()
    news = [e for e in events if e.notable and not e.listed]
    data: dict[str, Any] = {
        "environment": mon.env.name,
        "watched": mon.where,
        "interrupted": interrupted,
        "records": len(records),
        "record_file": str(mon.session.record_path) if mon.session.record_path else None,
        "sentence": sentence,
        **analysis.to_dict(),
        "state": state_data(view),
        "events": event_data(news),
    }
    if report is not None:
        doc = combined_report(
            records,
            analysis,
            slo,
            title=title or f"tradewise monitor: {mon.env.name}",
            load=load,
        )
        try:
            report.write_text(combined_html(doc), encoding="utf-8")
        except OSError as exc:
            from tradewise_ops.errors import BadInputError

            raise BadInputError(f"cannot write the report {report}: {exc.strerror}") from None
        data["report_file"] = str(report)
    tables = summary_tables(analysis)
    if view.processes:
        tables.append(process_rows(view))
    else:
        tables += [hpa_rows(view), deployment_rows(view)]
    tables.append(event_rows(news, mon.session.started))
    shown = [TableData(t["columns"], t["rows"], title=t["title"]) for t in tables if t["rows"]]
    return data, _group(shown, sentence)


def _group(tables: list[TableData], sentence: str) -> Any:
    from rich.console import Group
    from rich.text import Text

    from tradewise_ops.cli.terminal import render_table

    return Group(*(render_table(t) for t in tables), Text(sentence))


# --------------------------------------------------------------------------------------------
# load-test --monitor / performance-test --monitor
# --------------------------------------------------------------------------------------------
# after the load stops, watch a little longer: pods asked for during the load come up after it
SETTLE_SECONDS = 2.0


class LoadMonitor:
    """Watches the environment while a load test runs; joins both on one time axis at the end.

    ``on_interval`` takes the load runner's intervals; ``finish`` stops watching, writes
    ``monitor.html`` (load and replicas over time, scale-up latencies) and ``timeline.jsonl``
    into the load test's report directory, and shows the scaling summary.
    """

    def __init__(self, state: State, duration: float, report_dir: Path | None) -> None:
        self.state = state
        self.report_dir = report_dir
        self.data: dict[str, Any] = {}
        self.summary: Any = None
        record = report_dir / "timeline.jsonl" if report_dir is not None else None
        self.mon = BackgroundMonitor(state, state.environment(), record)
        try:
            self.mon.prime()
            self.mon.session.listeners.append(line_listener(state.terminal))
            # a generous bound: finish() stops it long before
            self.mon.start(duration * 2 + 600)
        except BaseException:
            self.mon.close()
            raise
        state.terminal.step(f"monitoring {self.mon.where} during the load")

    def on_interval(self, interval: Any) -> None:
        """Add a load-test interval (``core.loadreport.Interval``) to the timeline."""
        from tradewise_ops.core.timeline import LoadSample

        row = interval.row()
        self.mon.session.add(
            LoadSample(
                t=time.time(),
                rps=row["rps"],
                p95_ms=row["p95_ms"],
                error_rate=row["error_rate"],
                users=row["users"],
                source="load-test",
            )
        )

    def finish(self, load: dict[str, Any], interrupted: bool) -> dict[str, Any]:
        """Stop watching; the scaling summary as data (``GoalMissedError`` on a missed SLO)."""
        try:
            if not interrupted:
                time.sleep(SETTLE_SECONDS)
            self.mon.stop()
        except TradewiseError as exc:  # the load test's result still counts
            self.state.terminal.warn(f"monitoring stopped before the load did: {exc.message}")
            interrupted = True
        finally:
            self.mon.close()
        report = self.report_dir / "monitor.html" if self.report_dir is not None else None
        data, self.summary = summarize(
            self.state,
            self.mon,
            interrupted=interrupted,
            report=report,
            load=load,
            title=f"tradewise {load.get('kind', 'load-test')} with monitoring: {self.mon.env.name}",
        )
        self.data = data
        return data

    @property
    def breached(self) -> bool:
        """True when a scale-up or a recovery missed its SLO (after ``finish``)."""
        return bool(self.data) and self.data["verdict"] == "fail"

    def show(self) -> None:
        """The scaling summary after the load test's own (tables on stdout unless -o json|yaml)."""
        term = self.state.terminal
        if self.summary is not None and not term.machine_output:
            term.out.print(self.summary)
        if self.data.get("report_file"):
            term.info(f"load and replicas over time: {self.data['report_file']}")
