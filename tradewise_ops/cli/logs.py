"""``tradewise logs [COMPONENT] [-f] [--since D] [--tail N]``: the logs of a component's pods."""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator
from typing import TYPE_CHECKING

import typer

from tradewise_ops.cli.state import State, get_state
from tradewise_ops.core.units import parse_duration
from tradewise_ops.errors import BadInputError

if TYPE_CHECKING:
    from tradewise_ops.core.config import Environment


def register(app: typer.Typer) -> None:
    """Add ``logs`` to the root app."""
    app.command("logs")(logs)


class _Terminated(Exception):
    """SIGTERM arrived while following: end like Ctrl-C does."""


@contextlib.contextmanager
def _ends_on_sigterm() -> Iterator[None]:
    """Turn SIGTERM into ``_Terminated`` in the main thread for the duration."""

    def raise_terminated(_signum: int, _frame: object) -> None:
        raise _Terminated

    try:
        previous = signal.signal(signal.SIGTERM, raise_terminated)
    except ValueError:  # not the main thread (an embedding caller): Ctrl-C / stop only
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def logs(
    ctx: typer.Context,
    component: str = typer.Argument(
        None,
        metavar="[api|worker|precompute|postgres|redis|...]",
        help="Whose pods (default: every tradewise pod). Local: api, worker, worker-N, "
        "precompute, redis.",
    ),
    follow: bool = typer.Option(
        False, "--follow", "-f", help="Keep printing new lines, from new pods too, until Ctrl-C."
    ),
    since: str = typer.Option(None, "--since", help="Only lines newer than this (10m, 1h)."),
    tail: int = typer.Option(100, "--tail", help="Lines of history per pod (-1: all)."),
) -> None:
    """The logs of every pod of a component, each line prefixed with its pod's name.

    Like `kubectl logs -f deployment/...` but across all replicas, and following the pods that
    appear (a rollout, a scale-up). -f ends on Ctrl-C or SIGTERM.
    """
    state = get_state(ctx)
    env = state.environment()
    if tail < -1:
        raise BadInputError(f"--tail {tail}: give a number of lines, or -1 for all")
    since_seconds = None
    if since is not None:
        since_seconds = max(1, int(parse_duration(since, what="--since") + 0.999))
    if follow and state.terminal.machine_output:
        raise BadInputError(
            "-f prints lines as they come: it cannot be one JSON/YAML document (drop -o, or -f)"
        )
    try:
        with _ends_on_sigterm():
            if env.is_kubernetes:
                _kube_logs(state, env, component, follow, since_seconds, tail)
            else:
                _local_logs(state, env, component, follow, since_seconds, tail)
    except (KeyboardInterrupt, _Terminated):
        if not follow:
            raise KeyboardInterrupt from None


def _kube_logs(
    state: State,
    env: Environment,
    component: str | None,
    follow: bool,
    since_seconds: int | None,
    tail: int,
) -> None:
    from tradewise_ops.adapters.podlogs import PodLogReader
    from tradewise_ops.core.podlogs import selector_for

    selector = selector_for(component)
    reader = PodLogReader(state.kube_gateway(env), env.namespace, on_notice=state.terminal.info)
    tail_lines = None if tail < 0 else tail
    if follow:
        lines = reader.follow(selector, since_seconds=since_seconds, tail_lines=tail_lines)
        try:
            for line in lines:
                state.terminal.raw(line.prefixed() + "\n")
        finally:
            lines.close()
        return
    read = reader.read(selector, since_seconds=since_seconds, tail_lines=tail_lines)
    if state.terminal.machine_output:
        state.terminal.result(
            [{"pod": ln.pod, "container": ln.container, "line": ln.text} for ln in read]
        )
        return
    for line in read:
        state.terminal.raw(line.prefixed() + "\n")


def _local_logs(
    state: State,
    env: Environment,
    component: str | None,
    follow: bool,
    since_seconds: int | None,
    tail: int,
) -> None:
    from tradewise_ops.adapters.local import stack_for
    from tradewise_ops.adapters.local.compose import ComposeStack

    stack = stack_for(env, progress=state.terminal.info)
    count = 10**9 if tail < 0 else tail
    if isinstance(stack, ComposeStack):
        lines = stack.logs(component, follow=follow, lines=count, since_seconds=since_seconds)
    elif since_seconds is not None:
        raise BadInputError(
            f"--since works on Kubernetes and compose environments; the {env.kind} stack's log "
            "files have no time on every line: use --tail"
        )
    else:
        lines = stack.logs(component, follow=follow, lines=count)
    if state.terminal.machine_output:
        state.terminal.result({"environment": env.name, "lines": list(lines)})
        return
    for line in lines:
        state.terminal.raw(line + "\n")
