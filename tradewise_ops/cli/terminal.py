"""The one console of a tradewise run: data on stdout, messages on stderr.

Built once in the root callback and carried in the typer context (``ctx.obj.terminal``).
``NO_COLOR`` or a non-TTY stream gives plain output; ``-o json``/``-o yaml`` print exactly one
document on stdout and send every message to stderr. Credentials in URLs are masked in every
message and result (``tradewise_ops.core.redact``).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Any

from tradewise_ops.core.redact import mask_credentials, mask_data

if TYPE_CHECKING:  # rich is imported when a Terminal is built, not at start-up (--help)
    from rich.console import RenderableType
    from rich.table import Table

    from tradewise_ops.core.rollout import WorkloadStatus

OUTPUT_FORMATS = ("table", "json", "yaml")


@dataclass(frozen=True)
class TableData:
    """Rows to show as a table: what formatters return so they are testable without a terminal."""

    columns: Sequence[str]
    rows: Sequence[Sequence[Any]]
    title: str | None = None


def _plain(stream: IO[str]) -> bool:
    return bool(os.environ.get("NO_COLOR")) or not stream.isatty()


class Terminal:
    """Prints results and messages; the only place tradewise writes to the screen."""

    def __init__(
        self,
        output: str = "table",
        verbose: bool = False,
        stdout: IO[str] | None = None,
        stderr: IO[str] | None = None,
    ) -> None:
        self.output = output
        self.verbose = verbose
        from rich.console import Console

        out = stdout if stdout is not None else sys.stdout
        err = stderr if stderr is not None else sys.stderr
        self.out = Console(
            file=out,
            no_color=_plain(out),
            highlight=False,
            soft_wrap=True,
            force_terminal=False if _plain(out) else None,
            width=None if out.isatty() else 120,
        )
        self.err = Console(
            file=err,
            no_color=_plain(err),
            highlight=False,
            soft_wrap=True,
            force_terminal=False if _plain(err) else None,
            width=None if err.isatty() else 120,
        )

    # -- messages (stderr) -------------------------------------------------------------------
    @property
    def machine_output(self) -> bool:
        """True when stdout carries one JSON/YAML document and nothing else."""
        return self.output in ("json", "yaml")

    @property
    def interactive(self) -> bool:
        """True when live displays (spinners, refreshing tables) make sense on stderr."""
        return self.err.is_terminal

    def info(self, message: str) -> None:
        self.err.print(mask_credentials(message), markup=False)

    def step(self, message: str) -> None:
        self.err.print(f"[bold]==>[/bold] {_escape(message)}")

    def success(self, message: str) -> None:
        self.err.print(f"[green]✔[/green] {_escape(message)}")

    def warn(self, message: str) -> None:
        self.err.print(f"[yellow]warning:[/yellow] {_escape(message)}")

    def error(self, message: str) -> None:
        self.err.print(f"[red]error:[/red] {_escape(message)}")

    def debug(self, message: str) -> None:
        if self.verbose:
            self.err.print(f"[dim]{_escape(message)}[/dim]")

    # -- results (stdout) --------------------------------------------------------------------
    def result(self, data: Any, human: RenderableType | TableData | str | None = None) -> None:
        """Show a command's result: ``data`` as JSON/YAML under ``-o json|yaml``, else ``human``."""
        data = mask_data(data)
        if isinstance(human, str):
            human = mask_credentials(human)
        elif isinstance(human, TableData):
            human = TableData(
                human.columns, mask_data(human.rows), human.title and mask_credentials(human.title)
            )
        if self.output == "json":
            self.out.file.write(json.dumps(data, indent=2, sort_keys=False, default=str) + "\n")
            self.out.file.flush()
            return
        if self.output == "yaml":
            import yaml

            self.out.file.write(yaml.safe_dump(data, sort_keys=False, default_flow_style=False))
            self.out.file.flush()
            return
        shown = human if human is not None else data
        if isinstance(shown, TableData):
            self.out.print(render_table(shown))
        elif isinstance(shown, str):
            self.out.print(shown, markup=False)
        elif isinstance(shown, (dict, list)):
            import yaml

            self.out.print(yaml.safe_dump(shown, sort_keys=False).rstrip(), markup=False)
        else:
            self.out.print(shown)

    def raw(self, text: str) -> None:
        """Write text to stdout exactly as given (rendered manifests, reports)."""
        self.out.file.write(text)
        self.out.file.flush()


def render_table(data: TableData) -> Table:
    """Turn ``TableData`` into a rich table."""
    from rich.table import Table

    table = Table(title=data.title, title_justify="left", show_edge=False, pad_edge=False)
    for column in data.columns:
        table.add_column(column)
    for row in data.rows:
        table.add_row(*("" if v is None else str(v) for v in row))
    return table


def _escape(message: str) -> str:
    from rich.markup import escape

    return escape(mask_credentials(message))


class RolloutProgress:
    """Per-workload progress on stderr: a refreshing table on a terminal, else one line per change.

    Use as a context manager around the wait so the live table is always closed.
    """

    def __init__(self, terminal: Terminal) -> None:
        self.term = terminal
        self.rows: dict[tuple[str, str], WorkloadStatus] = {}
        self._live: Any = None

    def __call__(self, status: WorkloadStatus) -> None:
        if not self.term.interactive or self.term.machine_output:
            self.term.info("  " + status.line())
            return
        self.rows[(status.kind, status.name)] = status
        if self._live is None:
            from rich.live import Live

            self._live = Live(console=self.term.err, refresh_per_second=8, transient=True)
            self._live.start()
        self._live.update(self._table())

    def _table(self) -> Any:
        return render_table(
            TableData(
                ["WORKLOAD", "READY", "UP-TO-DATE", "AVAILABLE", "STATUS"],
                [
                    [
                        f"{w.kind}/{w.name}",
                        f"{w.ready}/{w.desired}",
                        w.updated,
                        w.available,
                        w.state,
                    ]
                    for w in self.rows.values()
                ],
            )
        )

    def close(self) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None

    def __enter__(self) -> RolloutProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
