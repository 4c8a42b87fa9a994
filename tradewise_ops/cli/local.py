"""``tradewise local up|down|ps|logs|scale``: the local stack (kind ``local`` or ``compose``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

from tradewise_ops.cli.state import State, get_state
from tradewise_ops.cli.terminal import TableData

if TYPE_CHECKING:
    from tradewise_ops.adapters.local import ComposeStack, LocalStack

local_app = typer.Typer(
    help="The local stack: processes (kind local) or docker-compose (kind compose).",
    no_args_is_help=True,
)


def register(app: typer.Typer) -> None:
    """Add the ``local`` command group."""
    app.add_typer(local_app, name="local")


def _stack(ctx: typer.Context) -> tuple[State, LocalStack | ComposeStack]:
    from tradewise_ops.adapters.local import stack_for

    state = get_state(ctx)
    return state, stack_for(state.environment(), progress=state.terminal.info)


@local_app.command("up")
def up(
    ctx: typer.Context,
    timeout: float = typer.Option(90.0, "--timeout", help="Seconds to wait for readiness."),
) -> None:
    """Start the stack (what is not running) and wait until the API is ready."""
    state, stack = _stack(ctx)
    result = stack.up(timeout=timeout)
    if result.started:
        state.terminal.success(
            f"the local stack is up at {result.url} in {result.seconds:.1f}s "
            f"(started {', '.join(result.started)})"
        )
    else:
        state.terminal.success(f"the local stack was already up at {result.url}")
    data = {
        "environment": stack.env.name,
        "url": result.url,
        "started": result.started,
        "already_running": result.already_running,
        "seconds": round(result.seconds, 2),
    }
    state.terminal.result(data, f"{result.url}")


@local_app.command("down")
def down(
    ctx: typer.Context,
    grace: float = typer.Option(10.0, "--grace", help="Seconds between TERM and KILL."),
    volumes: bool = typer.Option(False, "--volumes", help="compose: drop the database volume."),
) -> None:
    """Stop everything the stack started."""
    from tradewise_ops.adapters.local import ComposeStack

    state, stack = _stack(ctx)
    if isinstance(stack, ComposeStack):
        stopped = stack.down(grace=grace, volumes=volumes)
    else:
        stopped = stack.down(grace=grace)
    if stopped:
        state.terminal.success(f"stopped {', '.join(stopped)}")
    else:
        state.terminal.info("nothing was running")
    state.terminal.result({"environment": stack.env.name, "stopped": stopped}, "")


def _uptime(seconds: float | None) -> str:
    from tradewise_ops.core.units import format_duration

    return "-" if seconds is None else format_duration(int(seconds))


@local_app.command("ps")
def ps(ctx: typer.Context) -> None:
    """Each process: pid, state (running, or exited with its code), uptime, port."""
    state, stack = _stack(ctx)
    infos = stack.status()
    rows = [
        [
            i.name,
            i.pid or "-",
            i.state if i.exit_code is None else f"{i.state} ({i.exit_code})",
            _uptime(i.uptime_seconds),
            i.port or "-",
            i.detail,
        ]
        for i in infos
    ]
    broker = stack.broker
    if not infos:
        state.terminal.info(f"the local stack of {stack.env.name} is not running")
    elif broker == "sqlite":
        state.terminal.info("no redis: Celery uses the SQLite broker, analyses are uncached")
    state.terminal.result(
        {
            "environment": stack.env.name,
            "url": stack.url,
            "broker": broker,
            "processes": [i.as_dict() for i in infos],
        },
        TableData(["name", "pid", "state", "uptime", "port", "detail"], rows),
    )


@local_app.command("logs")
def logs(
    ctx: typer.Context,
    service: str = typer.Argument(None, help="redis, api, worker, worker-N, precompute (all)."),
    follow: bool = typer.Option(False, "--follow", "-f", help="Keep printing new lines."),
    lines: int = typer.Option(100, "--lines", "-n", help="Lines of history per service."),
) -> None:
    """Show the logs of one service or all; -f follows them until Ctrl-C."""
    state, stack = _stack(ctx)
    try:
        for line in stack.logs(service, follow=follow, lines=lines):
            state.terminal.raw(line + "\n")
    except KeyboardInterrupt:
        if not follow:
            raise


@local_app.command("scale")
def scale(
    ctx: typer.Context,
    component: str = typer.Argument(..., help="api or workers."),
    count: int = typer.Argument(..., help="API processes or worker processes."),
) -> None:
    """Change the API's or the workers' process count at run time."""
    from tradewise_ops.errors import BadInputError

    if component not in ("api", "workers", "worker"):
        raise BadInputError(f"cannot scale {component!r}: use api or workers")
    state, stack = _stack(ctx)
    counts = stack.scale(component, count)
    state.terminal.success(
        f"{stack.env.name}: api {counts.get('api', 0)}, workers {counts.get('worker', 0)}"
    )
    state.terminal.result(
        {"environment": stack.env.name, "counts": counts},
        TableData(["component", "running"], [[k, v] for k, v in counts.items()]),
    )
