"""``tradewise rightsize``: configured requests and limits against real usage, and the cost."""

from __future__ import annotations

import typer

from tradewise_ops.cli.state import get_state

SOURCES = ("auto", "metrics-api", "prometheus")


def register(app: typer.Typer) -> None:
    """Add ``rightsize`` to the root app."""
    app.command("rightsize")(rightsize)


def rightsize(
    ctx: typer.Context,
    since: str = typer.Option("7d", "--since", help="Window of usage: 7d, 24h, 30m."),
    source: str = typer.Option(
        "auto", "--source", help="auto (Prometheus when configured), metrics-api or prometheus."
    ),
    write: bool = typer.Option(False, "--write", help="Write the recommendation to the config."),
) -> None:
    """Per component: requests/limits vs p95 and max use, a recommendation, the monthly cost.

    Exit 1 when a component is over-provisioned by more than cost.margin_percent.
    """
    from pathlib import Path

    from tradewise_ops.adapters import usage as real
    from tradewise_ops.core.rightsize import build_report, parse_window
    from tradewise_ops.errors import BadInputError, GoalMissedError

    state = get_state(ctx)
    env = state.environment()
    config = state.config()
    seconds = parse_window(since)
    if source not in SOURCES:
        raise BadInputError(f"--source {source!r}: use one of {', '.join(SOURCES)}")
    gw = state.kube_gateway(env)
    warnings = []
    if source == "prometheus" or (source == "auto" and env.prometheus_url):
        if not env.prometheus_url:
            raise BadInputError(f"--source prometheus: set monitoring.prometheus_url of {env.name}")
        used = real.prometheus_usage(env.prometheus_url, env.namespace, seconds)
        origin = f"Prometheus {env.prometheus_url}"
    else:
        used = real.metrics_api_usage(gw, env.namespace)
        origin = "metrics API"
        warnings.append(
            "the metrics API gives one sample per pod, now, not p95 over --since: set "
            "monitoring.prometheus_url for the window"
        )
    vpa = real.vpa_recommendations(gw, env.namespace)
    report = build_report(
        env, config.profiles, used, config.cost, since=since, source=origin, vpa=vpa,
        warnings=warnings,
    )  # fmt: skip
    for warning in report.warnings:
        state.terminal.warn(warning)
    for sizing in report.sizings:
        for note in sizing.notes:
            state.terminal.info(f"{sizing.component}: {note}")
    state.terminal.result(report.to_dict(), state.tables_view(report.tables()))
    if write:
        from tradewise_ops.adapters.config_file import write_config
        from tradewise_ops.core.config_edit import set_resources

        path = Path(config.source)
        changes = {s.component: s.recommended for s in report.sizings if s.recommended}
        write_config(path, set_resources(path.read_text(encoding="utf-8"), env.name, changes))
        state.terminal.success(
            f"wrote {len(changes)} components' resources for {env.name} to {path}"
        )
    if report.over_provisioned:
        raise GoalMissedError(
            f"over-provisioned by more than {config.cost.margin_percent:g}%: "
            + ", ".join(report.over_provisioned)
        )
