"""``tradewise --help`` groups the commands by task; every command's help ends with examples.

The panels, summaries and examples live in ``tradewise_ops/cli/helpdocs.py``. A command registered
without an entry there fails ``test_every_command_has_a_panel_summary_and_examples`` (naming it),
while the CLI itself keeps working and lists it under "Other commands".
"""

from __future__ import annotations

import re
import shlex
from typing import Any

import pytest
import typer
import typer.main
from typer.core import TyperGroup
from typer.testing import CliRunner

from tradewise_ops.cli import helpdocs
from tradewise_ops.cli.main import _RootGroup, app

# the widest top-level name (performance-test) and the help's 80 columns leave this much
SUMMARY_MAX = 58


def _commands() -> dict[str, Any]:
    return dict(helpdocs.walk(typer.main.get_command(app)))


def _parse(line: str) -> tuple[str, Any]:
    """Parse an example with the CLI's own parsers (types, counts, options); nothing runs.

    Returns the command path it reaches and that command's context.
    """
    words = shlex.split(line)
    assert words[0] == "tradewise", line
    root = typer.main.get_command(app)
    ctx = root.make_context("tradewise", words[1:])  # the root group hoists global options
    path: list[str] = []
    while isinstance(ctx.command, TyperGroup):
        rest = [*ctx._protected_args, *ctx.args]
        assert rest, f"{line!r} names no command"
        name, command, rest = ctx.command.resolve_command(ctx, rest)
        assert name is not None and command is not None, line
        path.append(name)
        ctx = command.make_context(name, rest, parent=ctx)
    assert not ctx.args, f"{line!r}: left over {ctx.args}"
    return " ".join(path), ctx


def test_every_command_has_a_panel_summary_and_examples() -> None:
    commands = _commands()
    missing = sorted(set(commands) - set(helpdocs.DOCS))
    assert not missing, (
        f"commands without help entries: {missing}; add each to DOCS in "
        "tradewise_ops/cli/helpdocs.py (panel for a top-level command, a one-sentence summary, "
        "2 or 3 examples)"
    )
    stale = sorted(set(helpdocs.DOCS) - set(commands))
    assert not stale, f"helpdocs.DOCS describes commands that do not exist: {stale}"
    for key, doc in helpdocs.DOCS.items():
        if " " not in key:
            assert doc.panel in helpdocs.PANELS, f"{key}: panel {doc.panel!r}"
        else:
            assert doc.panel is None, f"{key}: a subcommand is listed by its group, not a panel"
        assert 2 <= len(doc.examples) <= 3, f"{key}: {len(doc.examples)} examples"
        assert re.fullmatch(r"[A-Z][^\n]*[A-Za-z0-9)]\.", doc.summary), f"{key}: {doc.summary!r}"
        assert len(doc.summary) <= SUMMARY_MAX, f"{key}: summary longer than one line"
        for line, what in doc.examples:
            assert what and "\n" not in what, f"{key}: {line!r} needs a one-line comment"


@pytest.mark.parametrize(
    "key,line",
    [(key, line) for key, doc in helpdocs.DOCS.items() for line, _ in doc.examples],
)
def test_every_example_parses_as_the_command_it_documents(key: str, line: str) -> None:
    path, _ = _parse(line)
    assert path == key or path.startswith(key + " "), f"{line!r} runs {path!r}, not {key!r}"


def test_a_bad_example_would_fail_the_parse() -> None:
    """The control for the test above: the parser does reject what the CLI rejects."""
    from typer._click.exceptions import UsageError

    for bad in (
        "tradewise deploy staging --no-such-option",
        "tradewise load-test 60s 50 /api/health --workers many",
        "tradewise scale traffic",  # PROFILE missing
        "tradewise no-such-command",
    ):
        with pytest.raises(UsageError):
            _parse(bad)
    path, ctx = _parse("tradewise scale status --env prod -o json")
    assert path == "scale status"
    assert ctx.find_root().params["env"] == "prod"  # the global options were hoisted


def test_root_help_lists_the_commands_by_task_one_line_each() -> None:
    result = CliRunner().invoke(app, ["--help"])
    assert result.exit_code == 0, result.output
    out = result.output
    headings = [line[:-1] for line in out.splitlines() if re.fullmatch(r"[A-Z][a-z ]+:", line)]
    panels = [h for h in headings if h not in ("Usage", "Options")]
    assert panels == [p for p in helpdocs.PANELS if p in panels]  # in the task order
    assert {"Release", "Scale", "Load", "Observe", "Local", "Images"} <= set(panels)
    assert "Commands:" not in out and helpdocs.OTHER_PANEL not in out
    sections = re.split(r"^([A-Z][a-z ]+):$", out, flags=re.M)
    listed = {sections[i]: sections[i + 1] for i in range(1, len(sections) - 1, 2)}
    for name, command in typer.main.get_command(app).commands.items():
        doc = helpdocs.DOCS[name]
        assert doc.panel is not None
        # the summary sits whole on the command's own line, under its panel
        assert re.search(
            rf"^  {re.escape(name)} +{re.escape(doc.summary)}$", listed[doc.panel], re.M
        ), (
            name,
            listed[doc.panel],
        )
        assert command.short_help == doc.summary


@pytest.mark.parametrize("key", sorted(helpdocs.DOCS))
def test_each_command_help_ends_with_its_examples(key: str) -> None:
    result = CliRunner().invoke(app, [*key.split(), "--help"])
    assert result.exit_code == 0, result.output
    tail = result.output[result.output.rindex("Examples:") :]
    expected: list[str] = []
    for line, what in helpdocs.DOCS[key].examples:
        expected += [f"# {what}", line]
    assert [x.strip() for x in tail.splitlines()[1:] if x.strip()] == expected


def test_a_command_without_an_entry_still_works_under_other_commands() -> None:
    extra = typer.Typer(cls=_RootGroup, add_completion=False, rich_markup_mode=None)

    @extra.callback()
    def root() -> None:
        """A root."""

    @extra.command("frobnicate")
    def frobnicate() -> None:
        """Frobnicate the widgets."""
        typer.echo("frobnicated")

    @extra.command("render")
    def render() -> None:
        """Render."""

    runner = CliRunner()
    helped = runner.invoke(extra, ["--help"])
    assert helped.exit_code == 0, helped.output
    assert f"{helpdocs.OTHER_PANEL}:\n  frobnicate  Frobnicate the widgets." in helped.output
    assert "Release:\n  render" in helped.output
    ran = runner.invoke(extra, ["frobnicate"])
    assert ran.exit_code == 0 and ran.output == "frobnicated\n"
