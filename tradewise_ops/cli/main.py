"""The ``tradewise`` command: global options, command registration, errors to exit codes."""

from __future__ import annotations

import importlib
import os
import re
import sys
from typing import Any

import typer
from typer.core import TyperGroup

from tradewise_ops import __version__
from tradewise_ops.cli import completion, helpdocs
from tradewise_ops.cli.state import State
from tradewise_ops.cli.terminal import OUTPUT_FORMATS, Terminal
from tradewise_ops.core.redact import mask_credentials
from tradewise_ops.errors import BadInputError, Terminated, TradewiseError

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
    "unlock",
    "status",
    "maintenance",
    "diff",
    "local",
    "compare",
    "capacity",
    "completion",
    "rightsize",  # issue 16
    "restart",
    "logs",
    "doctor",
    "db",
    "stress",
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


# options whose value may be left out: alone they mean this value (``--wait-for-lock`` = 30m);
# ``--wait-for-lock=5m`` and ``--wait-for-lock 5m`` give one (typer has no optional values)
_OPTIONAL_VALUES = {"--wait-for-lock": "30m"}
_DURATION_TOKEN = re.compile(r"^(?:\d+|(?:\d+h)?(?:\d+m)?(?:\d+s)?)$")


def fill_optional_values(args: list[str]) -> list[str]:
    """``--wait-for-lock`` without a value becomes ``--wait-for-lock=30m``; a following
    duration (``5m``, ``90``) is its value. Stops at ``--``."""
    out: list[str] = []
    i = 0
    while i < len(args):
        token = args[i]
        if token == "--":
            out.extend(args[i:])
            break
        if token in _OPTIONAL_VALUES:
            following = args[i + 1] if i + 1 < len(args) else ""
            if following and _DURATION_TOKEN.match(following):
                out.append(f"{token}={following}")
                i += 2
                continue
            out.append(f"{token}={_OPTIONAL_VALUES[token]}")
        else:
            out.append(token)
        i += 1
    return out


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
    """The root group: accepts global options anywhere, turns project errors into exit codes.

    Typer builds it with every registered command in place; the help (task panels, one-line
    summaries, examples: ``helpdocs``) and the shell completers (``completion``) go onto those
    commands here, so the command modules carry neither.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        helpdocs.apply(self)
        completion.attach(self)

    def format_commands(self, ctx: Any, formatter: Any) -> None:
        """The commands grouped by task (release, scale, load, ...), each with its summary."""
        panels: dict[str, list[tuple[str, str]]] = {}
        for name in sorted(self.list_commands(ctx), key=helpdocs.order_of):
            command = self.get_command(ctx, name)
            if command is None or command.hidden:
                continue
            summary = command.short_help or command.get_short_help_str(limit=200)
            panels.setdefault(helpdocs.panel_of(command), []).append((name, summary))
        for panel in (*helpdocs.PANELS, helpdocs.OTHER_PANEL):
            if panels.get(panel):
                with formatter.section(panel):
                    formatter.write_dl(panels[panel])

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        ctx.meta["tradewise.argv"] = tuple(args)
        return super().parse_args(ctx, fill_optional_values(hoist_global_options(list(args))))

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except TradewiseError as exc:
            _report(ctx, exc)
            raise typer.Exit(exit_code(exc.exit_code)) from None
        except KeyboardInterrupt:
            _terminal(ctx).error("terminated (SIGTERM)" if _TERMINATED else "interrupted")
            raise typer.Exit(exit_code(130)) from None


# -- signals: SIGTERM ends a run the way Ctrl-C does, with exit 143 ----------------------------
_TERMINATED: list[int] = []  # set once SIGTERM arrived in this process
SIGTERM_EXIT = 143  # 128 + SIGTERM, as a shell reports a process ended by it


def _on_sigterm(signum: int, frame: Any) -> None:
    """SIGTERM (a CI cancel, a job timeout, ``timeout``): raise ``Terminated`` in the main
    thread, a ``KeyboardInterrupt``, so each command's Ctrl-C path runs (records, reports)."""
    _TERMINATED.append(signum)
    raise Terminated()


def handle_sigterm() -> None:
    """Install the SIGTERM handler (main thread only; the console script does it first)."""
    import signal
    import threading

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _on_sigterm)


def exit_code(code: int) -> int:
    """The code to exit with: 143 once SIGTERM arrived (whatever the command made of it, even
    a summary and a normal return), else ``code`` (Ctrl-C stays 130)."""
    return SIGTERM_EXIT if _TERMINATED else code


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
    epilog="Run `tradewise COMMAND --help` for a command's options and examples.",
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
    ctx.obj = state = State(
        terminal=terminal,
        config_path=config,
        env_name=env,
        context=context,
        namespace=namespace,
        output=output,
        yes=yes,
        verbose=verbose,
        argv=tuple(ctx.meta.get("tradewise.argv", ())),
    )
    ctx.call_on_close(state.close)
    if output not in OUTPUT_FORMATS:
        raise BadInputError(f"output format {output!r} is not one of: {', '.join(OUTPUT_FORMATS)}")


for _name in _COMMAND_MODULES:
    importlib.import_module(f"tradewise_ops.cli.{_name}").register(app)


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: run the app, map what escaped to an exit code."""
    if completion.COMPLETE_VAR in os.environ:  # the shell asks for completions (completion.py)
        completion.init()
    handle_sigterm()
    try:
        # without standalone mode, click returns the code of a ``typer.Exit`` instead of raising
        code = app(args=argv, prog_name="tradewise", standalone_mode=False)
        if isinstance(code, int) and code:
            sys.exit(exit_code(code))
    except typer.Exit as exc:
        sys.exit(exit_code(exc.exit_code))
    except typer.Abort:
        print("error: aborted", file=sys.stderr)
        sys.exit(exit_code(130))
    except typer.TyperException as exc:  # usage errors (exit 2)
        show = getattr(exc, "show", None)
        if show is not None:
            show()
        else:
            print(f"error: {exc}", file=sys.stderr)
        sys.exit(getattr(exc, "exit_code", 2))
    except KeyboardInterrupt:
        print(
            "error: terminated (SIGTERM)" if _TERMINATED else "error: interrupted", file=sys.stderr
        )
        sys.exit(exit_code(130))
    except BrokenPipeError:
        sys.exit(exit_code(1))
    except Exception as exc:  # an unexpected failure: a short traceback, exit 1
        import traceback  # here, not at the top: it costs start-up time on every run

        tb = traceback.extract_tb(exc.__traceback__)[-3:]
        print("error: unexpected failure (a bug in tradewise):", file=sys.stderr)
        for line in traceback.format_list(tb):
            print(line.rstrip(), file=sys.stderr)
        print(f"{type(exc).__name__}: {mask_credentials(str(exc))}", file=sys.stderr)
        if os.environ.get("TRADEWISE_DEBUG"):
            traceback.print_exc()
        sys.exit(exit_code(1))
    sys.exit(exit_code(0))
