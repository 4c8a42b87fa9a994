"""The shape of ``tradewise_ops.core``: every module imports, no import cycle, no cli or adapters.

Read from the source with ``ast``: every import statement counts, also one inside a function or
under ``TYPE_CHECKING`` (hiding an import in a function does not undo a cycle).
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import pkgutil
from pathlib import Path

import tradewise_ops.core

CORE = "tradewise_ops.core"


def _modules() -> dict[str, Path]:
    """Every module of tradewise_ops.core (packages as their ``__init__``) -> its file."""
    out = {CORE: Path(tradewise_ops.core.__file__ or "")}
    for info in pkgutil.walk_packages(tradewise_ops.core.__path__, prefix=CORE + "."):
        spec = importlib.util.find_spec(info.name)
        assert spec is not None and spec.origin is not None, info.name
        out[info.name] = Path(spec.origin)
    return out


def _imported(name: str, path: Path, known: set[str]) -> set[str]:
    """The modules of tradewise_ops that the source of module ``name`` imports."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                parts = parts[: len(parts) - node.level + 1]
                base = ".".join([*parts, base] if base else parts)
            out.add(base)
            for alias in node.names:  # ``from tradewise_ops.core import scaling``: a module
                if f"{base}.{alias.name}" in known:
                    out.add(f"{base}.{alias.name}")
    return {m for m in out if m == "tradewise_ops" or m.startswith("tradewise_ops.")}


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    known = set(modules)
    return {name: _imported(name, path, known) for name, path in modules.items()}


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle among the modules of ``graph`` (as a path), None when there is none."""
    state: dict[str, int] = {}  # 1 on the current path, 2 done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in graph:
                continue
            if state.get(nxt) == 1:
                return path[path.index(nxt) :] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state:
            found = visit(start)
            if found:
                return found
    return None


def test_every_core_module_imports() -> None:
    modules = _modules()
    for name in modules:
        importlib.import_module(name)
    # the packages split out of the old single modules are there
    for name in ("timeline.analysis", "timeline.readers", "scaling.plan", "scaling.status"):
        assert f"{CORE}.{name}" in modules


def test_core_has_no_import_cycle() -> None:
    assert _cycle(_graph()) is None


def test_core_imports_neither_cli_nor_adapters() -> None:
    bad = {
        (name, target)
        for name, targets in _graph().items()
        for target in targets
        if target.startswith(("tradewise_ops.cli", "tradewise_ops.adapters"))
    }
    assert bad == set()


def test_the_cycle_check_finds_a_cycle_and_a_hidden_import(tmp_path: Path) -> None:
    # the checker itself: a cycle through a function-level import is found
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None
    source = tmp_path / "probe.py"
    source.write_text(
        "def f():\n    from tradewise_ops.core import render\n    from . import units\n",
        encoding="utf-8",
    )
    found = _imported("tradewise_ops.core.probe", source, {"tradewise_ops.core.render"})
    assert found == {"tradewise_ops.core", "tradewise_ops.core.render"}
