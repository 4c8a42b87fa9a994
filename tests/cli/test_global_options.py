"""The root command: global options anywhere, --version, output formats, errors to exit codes."""

from __future__ import annotations

import subprocess
import sys

import pytest
from typer.testing import CliRunner

from tradewise_ops import __version__
from tradewise_ops.cli.main import app, hoist_global_options


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["scale", "status", "--env", "prod"], ["--env", "prod", "scale", "status"]),
        (["--env", "prod", "scale", "status"], ["--env", "prod", "scale", "status"]),
        (
            ["scale", "status", "-e", "prod", "-o", "json"],
            ["-e", "prod", "-o", "json", "scale", "status"],
        ),
        (["render", "prod", "--tag", "v1", "-ojson"], ["-ojson", "render", "prod", "--tag", "v1"]),
        (["deploy", "prod", "--yes", "--env=prod"], ["--yes", "--env=prod", "deploy", "prod"]),
        (["--config", "x.yaml", "lint", "--verbose"], ["--config", "x.yaml", "--verbose", "lint"]),
        (["load-test", "--", "--env"], ["load-test", "--", "--env"]),
        (["--version"], ["--version"]),
    ],
)
def test_hoist_global_options(argv: list[str], expected: list[str]) -> None:
    assert hoist_global_options(argv) == expected


def test_version() -> None:
    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.stdout.strip() == f"tradewise {__version__}"


def test_unknown_command_is_usage_error() -> None:
    result = CliRunner().invoke(app, ["no-such-command"])
    assert result.exit_code == 2
    assert "No such command" in result.stderr


def test_console_script_help_does_not_import_heavy_modules() -> None:
    code = (
        "import sys\n"
        "from tradewise_ops.cli.main import app\n"
        "heavy = [m for m in ('kubernetes', 'docker', 'locust', 'gevent', 'flask', 'celery',"
        " 'kubernetes_validate') if m in sys.modules]\n"
        "print(','.join(heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_help_runs_as_a_process() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "tradewise_ops", "--help"], capture_output=True, text=True
    )
    assert out.returncode == 0
    assert "Deploy, scale, load-test and watch" in out.stdout
