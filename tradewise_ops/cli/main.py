"""The ``tradewise`` command: global options, command registration, errors to exit codes."""

from __future__ import annotations

import importlib
import os
import sys
from typing import Any

import typer
from typer.core import TyperGroup

from tradewise_ops import __version__
from tradewise_ops.cli.state import State
from tradewise_ops.cli.terminal import OUTPUT_FORMATS, Terminal
from tradewise_ops.core.redact import mask_credentials
from tradewise_ops.errors import BadInputError, TradewiseError

# global options that take a value / that are flags; they work before or after the command
_GLOBAL_VALUED = ("--config", "--env", "-e", "--context", "--namespace", "-o", "--output")
_GLOBAL_FLAGS = ("--yes", "-y", "--verbose")

# command modules, each with ``register(app)``; imported at start-up, so they import nothing heavy
_COMMAND_MODULES: tuple[str, ...] = (
    "loadtest",
    "render",
    "lint",
    "scale",
    "build",
    "monitor",
    "deploy",
    "status",
    "maintenance",
    "diff",
    "local",
    "compare",
    "capacity",
    "release",
)


def hoist_global_options(args: list[str]) -> list[str]:
    """Move global options found after the command to the front, as kubectl accepts them anywhere.

    ``tradewise scale status --env prod`` becomes ``tradewise --env prod scale status``.
    Stops at ``--``. Handles ``--env=prod`` and ``-ojson`` forms.
    """
    front: list[str] = []
    rest: list[str] = []
    seen_command = False
    i = 0
    while i < len(args):
        token = args[i]
        if token == "--":
            rest.extend(args[i:])
            break
        if not seen_command and not token.startswith("-"):
            seen_command = True
        if seen_command:
            name = token.split("=", 1)[0]
            if name in _GLOBAL_VALUED and "=" in token:
                front.append(token)
            elif name in _GLOBAL_VALUED and i + 1 < len(args):
                front.extend(args[i : i + 2])
                i += 2
                continue
            elif token in _GLOBAL_FLAGS:
                front.append(token)
            elif len(token) > 2 and token[:2] in ("-o", "-e") and not token.startswith("--"):
                front.append(token)
            else:
                rest.append(token)
        else:
            # before the command: an option's value must stay with it
            rest.append(token)
            if token in _GLOBAL_VALUED and i + 1 < len(args):
                rest.append(args[i + 1])
                i += 2
                continue
        i += 1
    if not seen_command:
        return args
    # global options before the command keep their place; hoisted ones go right before the command
    cut = _command_index(rest)
    return rest[:cut] + front + rest[cut:]


def _command_index(args: list[str]) -> int:
    i = 0
    while i < len(args):
        token = args[i]
        if token in _GLOBAL_VALUED:
            i += 2
            continue
        if not token.startswith("-"):
            return i
        i += 1
    return len(args)


class _RootGroup(TyperGroup):
    """The root group: accepts global options anywhere, turns project errors into exit codes."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        return super().parse_args(ctx, hoist_global_options(list(args)))

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except TradewiseError as exc:
            _report(ctx, exc)
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt:
            _terminal(ctx).error("interrupted")
            raise typer.Exit(130) from None


def _terminal(ctx: Any) -> Terminal:
    obj = ctx.find_root().obj
    return obj.terminal if isinstance(obj, State) else Terminal()


def _report(ctx: Any, exc: TradewiseError) -> None:
    term = _terminal(ctx)
    term.error(exc.message)
    if exc.hint:
        term.info(exc.hint)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"tradewise {__version__}")
        raise typer.Exit(0)


app = typer.Typer(
    cls=_RootGroup,
    name="tradewise",
    help="Deploy, scale, load-test and watch the TradeWise AI service.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


@app.callback()
def root(
    ctx: typer.Context,
    config: str = typer.Option(
        None, "--config", envvar="TRADEWISE_CONFIG", help="Config file (default ./tradewise.yaml)."
    ),
    env: str = typer.Option(
        None, "--env", "-e", envvar="TRADEWISE_ENV", help="Environment (default from the config)."
    ),
    context: str = typer.Option(None, "--context", help="Kubernetes context to use."),
    namespace: str = typer.Option(None, "--namespace", help="Kubernetes namespace to use."),
    output: str = typer.Option("table", "--output", "-o", help="table, json or yaml."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
    verbose: bool = typer.Option(False, "--verbose", help="Say more."),
    version: bool = typer.Option(
        False, "--version", is_eager=True, callback=_version, help="Show the version and exit."
    ),
) -> None:
    """Deploy, scale, load-test and watch the TradeWise AI service."""
    terminal = Terminal(output=output, verbose=verbose)
    ctx.obj = State(
        terminal=terminal,
        config_path=config,
        env_name=env,
        context=context,
        namespace=namespace,
        output=output,
        yes=yes,
        verbose=verbose,
    )
    if output not in OUTPUT_FORMATS:
        raise BadInputError(f"output format {output!r} is not one of: {', '.join(OUTPUT_FORMATS)}")


for _name in _COMMAND_MODULES:
    importlib.import_module(f"tradewise_ops.cli.{_name}").register(app)


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: run the app, map what escaped to an exit code."""
    try:
        # without standalone mode, click returns the code of a ``typer.Exit`` instead of raising
        code = app(args=argv, prog_name="tradewise", standalone_mode=False)
        if isinstance(code, int) and code:
            sys.exit(code)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        print("error: aborted", file=sys.stderr)
        sys.exit(130)
    except typer.TyperException as exc:  # usage errors (exit 2)
        show = getattr(exc, "show", None)
        if show is not None:
            show()
        else:
            print(f"error: {exc}", file=sys.stderr)
        sys.exit(getattr(exc, "exit_code", 2))
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        sys.exit(130)
    except BrokenPipeError:
        sys.exit(1)
    except Exception as exc:  # an unexpected failure: a short traceback, exit 1
        import traceback  # here, not at the top: it costs start-up time on every run

        tb = traceback.extract_tb(exc.__traceback__)[-3:]
        print("error: unexpected failure (a bug in tradewise):", file=sys.stderr)
        for line in traceback.format_list(tb):
            print(line.rstrip(), file=sys.stderr)
        print(f"{type(exc).__name__}: {mask_credentials(str(exc))}", file=sys.stderr)
        if os.environ.get("TRADEWISE_DEBUG"):
            traceback.print_exc()
        sys.exit(1)
    sys.exit(0)
