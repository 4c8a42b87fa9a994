"""``tradewise compare BASE NEW``: two load results side by side; exit 1 when NEW regressed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from tradewise_ops.cli.state import State, get_state
from tradewise_ops.cli.terminal import TableData
from tradewise_ops.errors import GoalMissedError

_WHAT = "report.json (or its directory), or ENV@REVISION: the load result of a release record."


def register(app: typer.Typer) -> None:
    """Add ``compare`` to the root app."""
    app.command("compare")(compare)


def compare(
    ctx: typer.Context,
    base: str = typer.Argument(..., help="The earlier run: " + _WHAT),
    new: str = typer.Argument(..., help="The later run: " + _WHAT),
    p95_percent: float = typer.Option(None, "--p95-percent", help="p95 may rise this much (%)."),
    p99_percent: float = typer.Option(None, "--p99-percent", help="p99 may rise this much (%)."),
    p50_percent: float = typer.Option(None, "--p50-percent", help="p50 may rise this much (%)."),
    rps_percent: float = typer.Option(None, "--rps-percent", help="req/s may fall this much (%)."),
    error_rate_points: float = typer.Option(
        None, "--error-rate-points", help="Error rate may rise this many percentage points."
    ),
) -> None:
    """Compare two load results per endpoint and in total, against the run-to-run noise.

    Exit 0 within the thresholds (compare: in tradewise.yaml), 1 when NEW regressed, 2 when the
    two cannot be compared.
    """
    from tradewise_ops.core.compare import (
        COLUMNS,
        check_comparable,
        comparison_rows,
        read_run,
        with_overrides,
    )
    from tradewise_ops.core.compare import compare as compare_runs

    state = get_state(ctx)
    thresholds = with_overrides(
        state.config().compare,
        p50_percent=p50_percent,
        p95_percent=p95_percent,
        p99_percent=p99_percent,
        rps_percent=rps_percent,
        error_rate_points=error_rate_points,
    )
    base_run = read_run(_load(state, base), base)
    new_run = read_run(_load(state, new), new)
    check_comparable(base_run, new_run)
    result = compare_runs(base_run, new_run, thresholds)
    term = state.terminal
    term.result(
        result.to_dict(),
        TableData(COLUMNS, comparison_rows(result), title=f"{base} (BASE) vs {new} (NEW)"),
    )
    for note in result.notes:
        term.warn(note)
    if result.regressed:
        raise GoalMissedError(result.sentence())
    term.success(result.sentence())


def _load(state: State, ref: str) -> Any:
    """A report file, or the verification load result of ``ENV@REVISION``'s release record."""
    from tradewise_ops.adapters.evidence import read_release_load, read_report_file
    from tradewise_ops.core.compare import parse_ref

    release = None if Path(ref).exists() else parse_ref(ref)
    if release is None:
        return read_report_file(ref)
    from tradewise_ops.adapters.kube import KubeGateway
    from tradewise_ops.errors import BadInputError

    env = state.config().environment(release[0])
    if not env.is_kubernetes:
        raise BadInputError(
            f"{ref}: {env.name} is a {env.kind} environment; release records live in a "
            "Kubernetes cluster"
        )
    namespace = state.namespace or env.namespace
    gateway = KubeGateway.from_environment(env, context=state.context, namespace=namespace)
    try:
        return read_release_load(gateway, env.name, namespace, release[1])
    finally:
        gateway.close()
