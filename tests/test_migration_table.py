"""docs/migration.md: every command line of the guide, and the tradewise command that replaces it.

The table cannot rot: its guide column must hold exactly the guide's command lines (SEED.md, every
``./deploy.sh``, ``./scale.sh``, ``docker-compose`` and ``kubectl`` line, in order), and every
command of its tradewise column runs here as its "run by the test" column says:

- ``emulator``: against one Kubernetes API emulator over real HTTP (a first release of prod is
  deployed before the table's commands run, in table order);
- ``local``: against a real local stack (processes, on free ports, in a temp state dir);
- ``dry-run``: with ``--dry-run`` added;
- ``parsed``: through the CLI's own parser only (it needs a Docker engine or a registry); the
  notes name the test that runs it for real, and that test must exist;
- ``(Ctrl-C)``: the command runs until interrupted; it is sent SIGINT after its first output
  and must then exit 0, as it does for a person.

Every command is a separate ``tradewise`` process, as a person runs it.
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from tests.helpers import free_port, require
from tests.k8s_emulator import Emulator

pytest_plugins = ["tests.k8s_emulator.fixtures"]

ROOT = Path(__file__).resolve().parents[1]
TABLE = ROOT / "docs" / "migration.md"
# the operations guide: the project's shared/ design folder, beside the checkout (as in CI) or
# above it, or where TRADEWISE_GUIDE points
SEED_CANDIDATES = (
    *([Path(os.environ["TRADEWISE_GUIDE"])] if os.environ.get("TRADEWISE_GUIDE") else []),
    *(parent / "shared" / "design" / "SEED.md" for parent in ROOT.parents),
    Path("/work/shared/design/SEED.md"),
)
TRADEWISE = Path(sys.executable).parent / "tradewise"
MODES = (
    "emulator",
    "emulator (Ctrl-C)",
    "local",
    "local (Ctrl-C)",
    "dry-run",
    "parsed",
    "not replaced",
    "not replaced yet",
)
# the guide lines the table must hold: commands of these tools, at the start of a shell line
GUIDE_COMMAND = re.compile(r"^(\./deploy\.sh|\./scale\.sh|docker-compose|kubectl)\b")


@dataclass(frozen=True)
class Row:
    guide: str
    tradewise: str
    mode: str
    notes: str

    @property
    def argv(self) -> list[str]:
        words = shlex.split(self.tradewise)
        assert words[0] == "tradewise", self.tradewise
        return words[1:]


def _cells(line: str) -> list[str]:
    """The cells of a markdown table line (a ``|`` inside backticks is not a separator)."""
    cells, cell, code = [], "", False
    for ch in line.strip()[1:-1]:
        if ch == "`":
            code = not code
        if ch == "|" and not code:
            cells.append(cell.strip())
            cell = ""
        else:
            cell += ch
    cells.append(cell.strip())
    return cells


def _unquote(cell: str) -> str:
    return cell[1:-1] if cell.startswith("`") and cell.endswith("`") else cell


def read_table() -> list[Row]:
    lines = TABLE.read_text(encoding="utf-8").splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("| guide | tradewise |"))
    assert _cells(lines[start]) == ["guide", "tradewise", "run by the test", "notes"]
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        guide, tradewise, mode, notes = _cells(line)
        rows.append(Row(_unquote(guide), _unquote(tradewise), mode, notes))
    return rows


def guide_lines() -> list[str]:
    """Every command line of the guide's shell blocks, continuation lines joined."""
    seed = next((p for p in SEED_CANDIDATES if p.is_file()), None)
    where = [str(p) for p in SEED_CANDIDATES]
    # the guide lives beside the checkout (../shared/design), not in it; TRADEWISE_GUIDE=PATH
    require(seed is not None, f"the guide (SEED.md) at one of {where}")
    assert seed is not None
    found: list[str] = []
    in_shell = False
    pending = ""
    for raw in seed.read_text(encoding="utf-8").splitlines():
        if raw.startswith("```"):
            in_shell = raw.strip() == "```bash" and not in_shell
            continue
        if not in_shell:
            continue
        line = raw.strip()
        if pending:
            line = pending + " " + line
            pending = ""
        if line.endswith("\\"):
            pending = line[:-1].strip()
            continue
        if GUIDE_COMMAND.match(line):
            found.append(re.sub(r"\s+", " ", line))
    return found


ROWS = read_table()


def _distinct(mode_prefixes: tuple[str, ...]) -> list[Row]:
    """The rows of these modes, each command once (where the guide repeats a line), in order."""
    seen: set[str] = set()
    rows = []
    for row in ROWS:
        if row.mode.startswith(mode_prefixes) and row.tradewise not in seen:
            seen.add(row.tradewise)
            rows.append(row)
    return rows


def test_the_table_holds_every_guide_command_line_once_in_order() -> None:
    guide = guide_lines()
    assert len(guide) >= 40, guide
    table = [row.guide for row in ROWS]
    missing = Counter(guide) - Counter(table)
    extra = Counter(table) - Counter(guide)
    assert not missing and not extra, (
        f"missing from the table: {missing}; not in the guide: {extra}"
    )
    assert table == guide, "the table follows the guide's order"


def test_each_row_is_complete() -> None:
    import typer.main

    from tradewise_ops.cli.main import app

    commands = set(typer.main.get_command(app).commands)
    for row in ROWS:
        assert row.mode in MODES, f"{row.guide}: mode {row.mode!r}"
        if row.mode.startswith("not replaced"):
            assert row.tradewise == "", f"{row.guide}: {row.mode} but names {row.tradewise!r}"
            assert row.notes, f"{row.guide}: say why (not replaced) or what is planned"
            if row.mode == "not replaced yet":
                planned = re.match(r"planned: `tradewise ([a-z-]+)`", row.notes)
                assert planned, row.notes
                assert planned.group(1) not in commands, (
                    f"`tradewise {planned.group(1)}` exists now: put it in the row of "
                    f"{row.guide!r} in docs/migration.md, with how the test runs it"
                )
        else:
            assert row.tradewise.startswith("tradewise "), f"{row.guide}: {row.tradewise!r}"
        if row.mode == "parsed":
            named = re.findall(r"`(tests/[\w/]+\.py)`", row.notes)
            assert named and all((ROOT / n).is_file() for n in named), row.notes


def test_every_tradewise_command_parses() -> None:
    """The CLI's own parser accepts each command (options, argument counts, types)."""
    import typer.main
    from typer.core import TyperGroup

    from tradewise_ops.cli.main import app

    for row in ROWS:
        if not row.tradewise:
            continue
        root = typer.main.get_command(app)
        ctx = root.make_context("tradewise", row.argv)
        while isinstance(ctx.command, TyperGroup):
            rest = [*ctx._protected_args, *ctx.args]
            name, command, rest = ctx.command.resolve_command(ctx, rest)
            assert command is not None, row.tradewise
            ctx = command.make_context(name, rest, parent=ctx)
        assert not ctx.args, f"{row.tradewise}: left over {ctx.args}"


# -- running them ----------------------------------------------------------------------------
def _run(argv: list[str], env: dict[str, str], timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(TRADEWISE), *argv], env=env, cwd=ROOT, capture_output=True, text=True, timeout=timeout
    )


def _run_until_interrupted(argv: list[str], env: dict[str, str], settle: float) -> tuple[int, str]:
    """Start it, wait for its first output (and ``settle`` s more), send SIGINT, collect."""
    proc = subprocess.Popen(
        [str(TRADEWISE), *argv],
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.stdout is not None
    out: list[str] = []
    first = threading.Event()

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            out.append(line)
            first.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        assert first.wait(60), f"{argv}: no output in 60 s"
        time.sleep(settle)
        assert proc.poll() is None, f"{argv} ended by itself ({proc.returncode}): {''.join(out)}"
        proc.send_signal(signal.SIGINT)
        code = proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    reader.join(5)
    return code, "".join(out)


def _check(row: Row, argv: list[str], env: dict[str, str], failures: list[str]) -> None:
    if row.mode.endswith("(Ctrl-C)"):
        code, output = _run_until_interrupted(argv, env, settle=2.0)
    else:
        done = _run(argv, env)
        code, output = done.returncode, done.stdout + done.stderr
    if code != 0:
        failures.append(f"{row.tradewise!r} ({row.mode}) exited {code}:\n{output[-2000:]}")


@pytest.fixture
def environ(tmp_path: Path) -> dict[str, str]:
    """A config with the local stack on free ports in a temp dir; prod and staging as shipped."""
    doc = yaml.safe_load((ROOT / "tradewise.yaml").read_text(encoding="utf-8"))
    api_port = free_port()
    local = doc["environments"]["local"]
    local["url"] = f"http://127.0.0.1:{api_port}"
    local["local"].update(
        api_port=api_port, redis_port=free_port(), state_dir=str(tmp_path / "local-state")
    )
    config = tmp_path / "tradewise.yaml"
    config.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRADEWISE_")}
    env.update(TRADEWISE_CONFIG=str(config), NO_COLOR="1", TRADEWISE_NO_CACHE="1")
    return env


@pytest.mark.slow
def test_the_emulator_and_dry_run_commands_run(
    emulator: Emulator, kubeconfig: Path, environ: dict[str, str]
) -> None:
    emulator.controllers.auto(delay=0.01)
    env = {**environ, "KUBECONFIG": str(kubeconfig)}
    first = _run(["deploy", "prod", "--tag", "v1.0", "--yes", "--timeout", "60s"], env)
    assert first.returncode == 0, first.stderr
    failures: list[str] = []
    rows = _distinct(("emulator", "dry-run"))
    assert len(rows) >= 20
    for row in rows:
        argv = [*row.argv, "--dry-run"] if row.mode == "dry-run" else row.argv
        _check(row, argv, env, failures)
    assert not failures, "\n\n".join(failures)
    # they really acted on the cluster: the last traffic profile, the releases
    hpa = emulator.get("HorizontalPodAutoscaler", "tradewise-ai", "tradewise-api-hpa")
    assert hpa is not None
    history = _run(["history", "prod", "-o", "json"], env)
    assert history.returncode == 0, history.stderr
    import json

    tags = [r["tag"] for r in json.loads(history.stdout)]
    # (v2.0, the verified blue-green line, runs for real in tests/cli/test_deploy_verified.py)
    assert tags[:1] == ["v1.0"] and {"v2.1", "v2.2"} <= set(tags), tags


@pytest.mark.slow
def test_the_local_stack_commands_run(environ: dict[str, str]) -> None:
    failures: list[str] = []
    rows = _distinct(("local",))
    assert len(rows) >= 6
    try:
        for row in rows:
            _check(row, row.argv, environ, failures)
        # the last one, `deploy local`, left a stack that answers on the config's port
        if not failures:
            url = yaml.safe_load(Path(environ["TRADEWISE_CONFIG"]).read_text(encoding="utf-8"))[
                "environments"
            ]["local"]["url"]
            with urllib.request.urlopen(f"{url}/api/health/ready", timeout=10) as answer:
                assert answer.status == 200
    finally:
        _run(["local", "down"], environ, timeout=60)
    assert not failures, "\n\n".join(failures)
