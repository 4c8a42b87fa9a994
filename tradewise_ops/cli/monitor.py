"""``tradewise monitor [SECONDS]``: live HPAs, pods and events; scale-up latency at the end."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from tradewise_ops.cli.state import State, get_state
from tradewise_ops.cli.terminal import TableData, Terminal
from tradewise_ops.errors import GoalMissedError, UnreachableError

if TYPE_CHECKING:
    from tradewise_ops.adapters.monitor import BackgroundMonitor

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
    from tradewise_ops.adapters.monitor import BackgroundMonitor
    from tradewise_ops.core.units import parse_duration

    state = get_state(ctx)
    env = state.environment()
    duration = parse_duration(seconds, what="SECONDS")
    term = state.terminal
    mon = BackgroundMonitor(env, record)
    interrupted = False
    lost: UnreachableError | None = None
    try:
        mon.prime()
        term.step(f"monitoring {mon.where} for {duration:g}s (Ctrl-C ends early)")
        with live_display(term, mon, duration):
            try:
                mon.run(duration)
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

    from tradewise_ops.adapters.monitor import line_listener

    lines = line_listener(term, mon.session.snapshot()[0])
    mon.session.listeners.append(lines)
    try:
        yield
    finally:
        mon.session.listeners.remove(lines)


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
    summary = mon.summary(state.config().slo, interrupted=interrupted, report=report)
    data = summary.data
    term = state.terminal
    if interrupted:
        term.info("interrupted: the summary covers what was seen until then")
    term.result(data, state.tables_view(summary.tables, summary.sentence))
    if mon.session.record_path:
        term.info(f"timeline recorded in {mon.session.record_path}")
    if report is not None:
        term.info(f"report written to {report}")
    if summary.failed:
        raise GoalMissedError(data["sentence"])
    return data
