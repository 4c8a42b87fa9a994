"""``tradewise --help`` and a completion request, timed against ``python -c pass`` in one run.

With ``--baseline REV`` the same commands also run from the sources of git revision REV (exported
to a temp dir, put first on ``PYTHONPATH``), so a change's start-up cost is a ratio measured in
the same minutes on the same machine. Whole processes, round-robin (noise from other work spreads
over all of them), medians; CPU time (user + system of the child) beside the wall time.

Bytecode is written and used (``PYTHONDONTWRITEBYTECODE`` is dropped for the children), as it is
for an installed tradewise.

Usage: python bench/help_startup.py [--runs 11] [--baseline REV]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _time(cmd: list[str], env: dict[str, str]) -> tuple[float, float]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({done.returncode}): {done.stderr.decode()}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def _export(rev: str, into: Path) -> Path:
    archive = into / "src.tar"
    subprocess.run(
        ["git", "-C", str(ROOT), "archive", "-o", str(archive), rev, "tradewise_ops"], check=True
    )
    with tarfile.open(archive) as tar:
        tar.extractall(into / "src", filter="data")
    return into / "src"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=11)
    parser.add_argument("--baseline", help="a git revision to time beside the working tree")
    args = parser.parse_args()

    cli = [sys.executable, "-c", "from tradewise_ops.cli.main import main; main()"]
    # with bytecode, as an installed tradewise runs (pip compiles it; this machine's shells set
    # PYTHONDONTWRITEBYTECODE, which would time the compilation of every module on every run)
    skip = ("TRADEWISE_", "_TRADEWISE", "PYTHONDONTWRITEBYTECODE")
    base_env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(skip)},
        "TRADEWISE_CONFIG": str(ROOT / "tradewise.yaml"),
    }
    here = {**base_env, "PYTHONPATH": str(ROOT)}
    completing = {
        **here,
        "_TRADEWISE_COMPLETE": "complete_bash",
        "COMP_WORDS": "tradewise scale traffic ",
        "COMP_CWORD": "3",
    }
    cases: list[tuple[str, list[str], dict[str, str]]] = [
        ("python -c pass", [sys.executable, "-c", "pass"], base_env),
        ("tradewise --help", [*cli, "--help"], here),
        ("complete `scale traffic <TAB>`", cli, completing),
    ]
    with tempfile.TemporaryDirectory(prefix="tradewise-help-bench-") as tmp:
        if args.baseline:
            src = _export(args.baseline, Path(tmp))
            cases.insert(
                1,
                (
                    f"tradewise --help @ {args.baseline}",
                    [*cli, "--help"],
                    {**base_env, "PYTHONPATH": str(src)},
                ),
            )
        for _, cmd, env in cases:  # warm-up: page cache, bytecode
            _time(cmd, env)
        walls: dict[str, list[float]] = {name: [] for name, *_ in cases}
        cpus: dict[str, list[float]] = {name: [] for name, *_ in cases}
        for _ in range(args.runs):
            for name, cmd, env in cases:
                wall, cpu = _time(cmd, env)
                walls[name].append(wall)
                cpus[name].append(cpu)

    base = statistics.median(walls["python -c pass"])
    print(f"{'command':38} {'wall ms':>8} {'cpu ms':>8} {'x pass':>7}")
    for name, *_ in cases:
        wall = statistics.median(walls[name])
        cpu = statistics.median(cpus[name])
        print(f"{name:38} {wall * 1000:8.0f} {cpu * 1000:8.0f} {wall / base:7.1f}")
    print(f"({args.runs} runs each, round-robin, medians; load average {os.getloadavg()[0]:.1f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
