"""The CLI's layering, read from the source: a command module imports no other command module.

What two commands share lives on the CLI state object (``cli/state.py``) or behind an adapter; a
command module may import ``cli.state``, ``cli.terminal``, ``core``, ``adapters`` and libraries.
Every import statement counts, at the top of a module or inside a function (where the CLI keeps
its imports, for start-up time), absolute or relative, under ``TYPE_CHECKING`` too.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

CLI = Path(__file__).resolve().parents[2] / "tradewise_ops" / "cli"
# what commands may share, besides core and adapters: the state, the terminal, and the help
# table (data that `--help` and the docs read, no command)
ALLOWED = {"state", "terminal", "helpdocs"}
# the root (main.py) composes the commands (it registers every one and starts completion), so
# it is the one module that imports command modules; it is not itself a command
MODULES = sorted(p for p in CLI.glob("*.py") if p.name not in ("__init__.py", "main.py"))


def cli_imports(path: Path) -> list[tuple[int, str]]:
    """``(line, module)`` of every ``tradewise_ops.cli.X`` that ``path`` imports."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                found.extend(_cli_module(node.lineno, alias.name))
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: from . import x, from .x import y
                base = "tradewise_ops.cli" if node.level == 1 else "tradewise_ops"
                module = f"{base}.{node.module}" if node.module else base
            else:
                module = node.module or ""
            if module == "tradewise_ops.cli":  # from tradewise_ops.cli import deploy
                for alias in node.names:
                    found.extend(_cli_module(node.lineno, f"{module}.{alias.name}"))
            else:
                found.extend(_cli_module(node.lineno, module))
    return found


def _cli_module(line: int, module: str) -> list[tuple[int, str]]:
    parts = module.split(".")
    if parts[:2] == ["tradewise_ops", "cli"] and len(parts) > 2:
        return [(line, parts[2])]
    return []


def test_every_cli_module_is_checked() -> None:
    names = {p.stem for p in MODULES}
    assert {"state", "terminal", "deploy", "scale", "monitor", "loadtest", "helpdocs"} <= names


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.stem)
def test_a_cli_module_imports_no_command_module(path: Path) -> None:
    wrong = [
        f"{path.name}:{line} imports tradewise_ops.cli.{name}"
        for line, name in cli_imports(path)
        if name not in ALLOWED and name != path.stem
    ]
    assert wrong == [], "; ".join(wrong)


def test_the_check_sees_each_form_of_import(tmp_path: Path) -> None:
    """The parser behind the test above finds every way of writing such an import."""
    source = tmp_path / "sample.py"
    source.write_text(
        "from __future__ import annotations\n"
        "import tradewise_ops.cli.deploy\n"
        "from tradewise_ops.cli import monitor\n"
        "from tradewise_ops.cli.scale import _run\n"
        "from . import status\n"
        "from .diff import diff\n"
        "from tradewise_ops.cli.state import get_state\n"
        "from tradewise_ops.core import scaling\n"
        "def f() -> None:\n"
        "    from tradewise_ops.cli.loadtest import load_test\n",
        encoding="utf-8",
    )
    names = [name for _line, name in cli_imports(source)]
    assert names == ["deploy", "monitor", "scale", "status", "diff", "state", "loadtest"]
